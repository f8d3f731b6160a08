package dev.hetmem.cli;

import dev.hetmem.UnifiedMemory;
import dev.hetmem.device.emulated.EmulatedDevice;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The benchmarks' charts and the residency map, drawn and looked at: size, colours, ink. */
class PicturesTest {

    static Map<String, Object> row(Object... kv) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            m.put((String) kv[i], kv[i + 1]);
        }
        return m;
    }

    /** One JSON object per bench, as --json prints it, with two rows each. */
    static List<Map<String, Object>> roots() {
        return List.of(
                row("bench", "migrate", "limits", row("memcpy_gbps", 9.0), "rows", List.of(
                        row("device", "emulated", "direction", "to_device", "page_bytes", 4096L, "total_bytes", 16L << 20,
                                "mode", "batched", "gbps", 3.1),
                        row("device", "emulated", "direction", "to_device", "page_bytes", 4096L, "total_bytes", 16L << 20,
                                "mode", "vanilla", "gbps", 0.6))),
                row("bench", "load", "limits", row("fio_gbps", 2.0), "rows", List.of(
                        row("file_bytes", 8L << 20, "target", "host", "scheme", "overlapped", "direct", true, "gbps", 1.5),
                        row("file_bytes", 8L << 20, "target", "host", "scheme", "buffered", "direct", false, "gbps", 1.1))),
                row("bench", "oversub", "limits", row("memcpy_gbps", 5.0), "rows", List.of(
                        row("pattern", "sequential", "ws_factor", 2.0, "mode", "explicit", "gbps", 1.3),
                        row("pattern", "sequential", "ws_factor", 2.0, "mode", "one_launch", "gbps", 1.2))),
                row("bench", "decode", "limits", row("memcpy_gbps", 5.0), "rows", List.of(
                        row("device", "emulated", "weights_factor", 2.0, "dtype", "F32", "mode", "explicit", "tokens_per_s", 3.0),
                        row("device", "emulated", "weights_factor", 2.0, "dtype", "F32", "mode", "one_launch", "tokens_per_s", 2.8))),
                row("bench", "fault", "limits", row("uffd_raw_ns", 9000L, "minor_fault_ns", 700L), "rows", List.of(
                        row("path", "host view", "granule_bytes", 4096L, "median_ns", 15000L),
                        row("path", "userfaultfd", "granule_bytes", 4096L, "median_ns", 12000L))),
                row("bench", "translate", "device", "opencl", "rows", List.of(
                        row("m", 512, "mode", "plain_buffer", "gflops", 15.0),
                        row("m", 512, "mode", "region_plain", "gflops", 14.8))),
                row("bench", "kernels", "limits", row("memcpy_gbps", 5.0), "rows", List.of(
                        row("kernel", "saxpy", "mode", "one_launch", "data_factor", 3.0, "gbps", 0.8),
                        row("kernel", "saxpy", "mode", "explicit", "data_factor", 3.0, "gbps", 2.0))));
    }

    @Test
    void everyBenchDrawsItsTableAsPngAndSvg(@TempDir Path dir) throws Exception {
        for (Map<String, Object> root : roots()) {
            String bench = (String) root.get("bench");
            Path png = dir.resolve(bench + ".png");
            ByteArrayOutputStream err = new ByteArrayOutputStream();
            BenchPlots.write(png.toString(), root, new PrintStream(err, true, StandardCharsets.UTF_8));
            assertTrue(err.toString(StandardCharsets.UTF_8).contains("chart written to"), bench);
            BufferedImage img = ImageIO.read(png.toFile());
            assertEquals(Chart.WIDTH, img.getWidth(), bench);
            assertEquals(Chart.HEIGHT, img.getHeight(), bench);
            assertNotBlank(img, bench, 6);
            Path svg = dir.resolve(bench + ".svg");
            BenchPlots.write(svg.toString(), root, new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8));
            String text = Files.readString(svg);
            assertTrue(text.contains("<svg") && text.contains("</svg>") && text.length() > 2000, bench + ": " + text.length());
        }
    }

    @Test
    void theResidencyMapShowsEveryStateOfTheScenario(@TempDir Path dir) throws Exception {
        try (UnifiedMemory mem = UnifiedMemory.builder()
                .device(EmulatedDevice.builder().name("a").capacity(32L << 20).build())
                .device(EmulatedDevice.builder().name("b").capacity(32L << 20).build()).build()) {
            var r = MapCommand.scenario(mem);
            ResidencyMap map = new ResidencyMap("test", r.snapshot(0, r.size()));
            assertEquals(Set.of(ResidencyMap.Kind.UNTOUCHED, ResidencyMap.Kind.FREED, ResidencyMap.Kind.HOST_RW,
                    ResidencyMap.Kind.HOST_RO, ResidencyMap.Kind.DEV1_RW, ResidencyMap.Kind.DEV2_RW,
                    ResidencyMap.Kind.DUPLICATED), map.counts().keySet());
            assertEquals(512, map.counts().get(ResidencyMap.Kind.FREED));
            String strip = map.text(100, false).get(1);
            for (char c : new char[] {'.', 'x', 'H', 'h', '1', '2', 'd'}) {
                assertTrue(strip.indexOf(c) >= 0, "'" + c + "' in " + strip);
            }
            assertTrue(map.text(100, true).get(1).contains("\u001b[38;5;"), "coloured on a terminal");
            Path png = dir.resolve("map.png");
            map.writePng(png);
            BufferedImage img = ImageIO.read(png.toFile());
            assertEquals(20 + ResidencyMap.COLUMNS * ResidencyMap.CELL + 20 + 440, img.getWidth());
            assertTrue(img.getHeight() >= 40 + 52 * ResidencyMap.CELL, "52 rows of 128 pages: " + img.getHeight());
            assertNotBlank(img, "map", 8);
        }
    }

    /**
     * A picture that cannot be written (its folder is missing) fails with the file and the reason,
     * and prints nothing of its own: ImageIO, handed the path, printed a stack trace to
     * System.err, which reached the user of {@code hetmem map --png} and {@code demo --map}.
     */
    @Test
    void aPictureThatCannotBeWrittenSaysWhyAndPrintsNoStackTrace(@TempDir Path dir) throws Exception {
        try (UnifiedMemory mem = UnifiedMemory.builder().device(EmulatedDevice.builder().capacity(32L << 20).build()).build()) {
            var r = mem.allocate(2L << 20);
            ResidencyMap map = new ResidencyMap("test", r.snapshot(0, r.size()));
            Path png = dir.resolve("no-such-folder").resolve("map.png");
            PrintStream was = System.err;
            ByteArrayOutputStream printed = new ByteArrayOutputStream();
            java.io.IOException e;
            try {
                System.setErr(new PrintStream(printed, true, StandardCharsets.UTF_8));
                e = org.junit.jupiter.api.Assertions.assertThrows(java.io.IOException.class, () -> map.writePng(png));
            } finally {
                System.setErr(was);
            }
            assertEquals("", printed.toString(StandardCharsets.UTF_8), "nothing printed to System.err");
            assertTrue(e.getMessage().startsWith("cannot write the picture to " + png + ": ")
                    && e.getMessage().contains("No such file or directory"), e.getMessage());
        }
        // the commands look at the folder before they start: a usage error, before any work
        for (String[] argv : new String[][] {{"map", "--png"}, {"demo", "--map"}, {"bench", "fault", "--quick", "--plot"}}) {
            String[] full = java.util.Arrays.copyOf(argv, argv.length + 1);
            full[argv.length] = dir.resolve("no-such-folder/m.png").toString();
            CommandLineTest.Result bad = CommandLineTest.run(full);
            assertEquals(2, bad.code(), bad.err());
            assertTrue(bad.err().contains("there is no folder " + dir.resolve("no-such-folder")) && !bad.err().contains("Exception"),
                    bad.err());
            assertEquals("", bad.out(), "nothing ran");
        }
    }

    @Test
    void picturesOnlyOfTheKindsTheyCanBe() {
        CommandLineTest.Result bad = CommandLineTest.run("bench", "fault", "--plot", "chart.jpg");
        assertEquals(2, bad.code());
        assertTrue(bad.err().contains(".png or .svg"), bad.err());
        CommandLineTest.Result map = CommandLineTest.run("map", "--png", "map.svg");
        assertEquals(2, map.code());
        assertTrue(map.err().contains("must end in .png"), map.err());
    }

    /** At least {@code colours} distinct colours, and ink on more than 2% of the picture. */
    static void assertNotBlank(BufferedImage img, String what, int colours) {
        Set<Integer> seen = new HashSet<>();
        long ink = 0;
        for (int y = 0; y < img.getHeight(); y++) {
            for (int x = 0; x < img.getWidth(); x++) {
                int rgb = img.getRGB(x, y) & 0xFFFFFF;
                seen.add(rgb);
                ink += rgb == 0xFFFFFF ? 0 : 1;
            }
        }
        assertTrue(seen.size() >= colours, what + ": " + seen.size() + " colours");
        assertTrue(ink > img.getWidth() * (long) img.getHeight() / 50, what + ": " + ink + " pixels of ink");
    }

    /**
     * A picture that fails part-way leaves the one that was there, whole, and no temporary file: it
     * was written straight over the old one (a full disk left half a picture).
     */
    @Test
    void aPictureThatFailsPartWayLeavesTheOldOneWhole(@TempDir Path dir) throws Exception {
        Path file = Files.writeString(dir.resolve("chart.png"), "the old picture");
        var e = org.junit.jupiter.api.Assertions.assertThrows(java.io.IOException.class, () -> Chart.replaceWhole(file, part -> {
            Files.writeString(part, "half of the new");
            throw new java.io.IOException("No space left on device");
        }));
        assertEquals("No space left on device", e.getMessage());
        assertEquals("the old picture", Files.readString(file));
        try (var left = Files.list(dir)) {
            assertEquals(List.of(file), left.toList(), "no temporary file left");
        }
        Chart.replaceWhole(file, part -> Files.writeString(part, "the new picture"));
        assertEquals("the new picture", Files.readString(file));
    }
}
