package dev.hetmem.cli;

import dev.hetmem.Access;
import dev.hetmem.Advice;
import dev.hetmem.HostView;
import dev.hetmem.KernelArg;
import dev.hetmem.Protection;
import dev.hetmem.Region;
import dev.hetmem.UnifiedMemory;
import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.device.emulated.EmulatedKernel;
import dev.hetmem.io.LoadResult;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;

/**
 * {@code hetmem map}: a picture of where a region's pages are. Without a file, a small scenario
 * puts pages in every state there is (home, on each of two devices, duplicated, read-only, freed,
 * untouched); with {@code --load FILE}, the region a load made.
 */
final class MapCommand {
    private MapCommand() {}

    static final long MiB = 1L << 20;

    static int run(List<String> argv, PrintStream out, PrintStream err) throws IOException {
        Args args = new Args(argv, Set.of(), Set.of("png", "load", "to", "width"));
        String png = args.value("png", null);
        if (png != null && !png.toLowerCase(java.util.Locale.ROOT).endsWith(".png")) {
            throw new Args.UsageException("--png " + png + ": the file must end in .png");
        }
        if (png != null) {
            Chart.checkFolder("--png", png);
        }
        int width = args.intValue("width", 100, 10, 1000);
        String load = args.value("load", null);
        Path loadPath = load == null ? null : Args.filePath("--load", load);
        int to = node(args.value("to", "host"));
        if (load == null && args.value("to", null) != null) {
            throw new Args.UsageException("--to needs --load FILE");
        }
        EmulatedDevice d1 = EmulatedDevice.builder().name("emulated-1").capacity(32 * MiB).build();
        EmulatedDevice d2 = EmulatedDevice.builder().name("emulated-2").capacity(32 * MiB).build();
        try (UnifiedMemory mem = UnifiedMemory.builder().device(d1).device(d2).build()) {
            Region r;
            String title;
            if (load != null) {
                LoadResult res = mem.load(loadPath, to);
                r = res.region();
                title = "hetmem map: " + Main.printable(String.valueOf(loadPath.getFileName())) + " loaded to node " + to
                        + (to == 0 ? " (host)" : " (emulated-" + to + ")");
            } else {
                r = scenario(mem);
                title = "hetmem map: a 26 MiB region in every state";
            }
            ResidencyMap map = new ResidencyMap(title, r.snapshot(0, r.size()));
            boolean ansi = Terminal.colours();
            for (String line : map.text(width, ansi)) {
                out.println(line);
            }
            if (png != null) {
                map.writePng(Path.of(png));
                err.println("hetmem map: picture written to " + Main.printable(png));
            }
        }
        return 0;
    }

    /** A node of the map's memory by name or number (as {@code load --to} takes them for its own). */
    static int node(String to) {
        return switch (to.toLowerCase(java.util.Locale.ROOT)) {
            case "0", "host" -> 0;
            case "1", "emulated-1" -> 1;
            case "2", "emulated-2" -> 2;
            default -> throw new Args.UsageException("--to " + to
                    + ": the map's nodes are 0 (host), 1 (emulated-1) and 2 (emulated-2)");
        };
    }

    /** Pages in every state: host rw, device 1 rw, duplicated, host read-only, device 2 rw, freed, untouched. */
    static Region scenario(UnifiedMemory mem) {
        Region r = mem.allocate(26 * MiB);
        try (HostView v = r.host(0, 24 * MiB, Access.WRITE)) {
            v.segment().fill((byte) 1);
        }
        r.advise(2 * MiB, 6 * MiB, Advice.prefetch(1));
        r.advise(8 * MiB, 4 * MiB, Advice.readMostly(true));
        EmulatedKernel read = (a, i) -> a.arg(0).getLong(i * 4096);
        mem.launch(1, read, 1024, KernelArg.of(r, 8 * MiB, 4 * MiB, Access.READ));
        mem.launch(2, read, 1024, KernelArg.of(r, 8 * MiB, 4 * MiB, Access.READ));
        r.protect(12 * MiB, 2 * MiB, Protection.READ_ONLY);
        r.advise(14 * MiB, 4 * MiB, Advice.prefetch(2));
        r.free(20 * MiB, 2 * MiB);
        return r;
    }
}
