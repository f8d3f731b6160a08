package dev.hetmem.cli;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A bench stopped by a signal (Ctrl-C, kill) leaves nothing in the temporary folder: its model
 * file (up to a quarter of the machine's memory) and its case JVMs' error files went only where
 * the run ended normally or failed, since a signal runs the JVM's shutdown and no finally block.
 */
class InterruptedBenchTest {
    @Test
    void aDecodeBenchKilledWhileItsCasesRunLeavesNoFile() throws Exception {
        Path tmp = Files.createTempDirectory("hetmem-signal-test");
        try {
            List<String> cmd = List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "-Djava.io.tmpdir=" + tmp, "--enable-native-access=ALL-UNNAMED",
                    "-cp", System.getProperty("java.class.path"), Main.class.getName(),
                    "bench", "decode", "--quick", "--device", "emulated", "--jvm-per-round");
            Process bench = new ProcessBuilder(cmd).redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
            try {
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
                while (!(has(tmp, "hetmem-case-") && has(tmp, ".safetensors"))) {
                    assertTrue(bench.isAlive(), () -> "the bench ended before its cases started: exit " + bench.exitValue());
                    assertTrue(System.nanoTime() < deadline, "no case JVM started within 60 s");
                    Thread.sleep(50);
                }
                bench.destroy();   // SIGTERM: the same shutdown as Ctrl-C's SIGINT
                assertTrue(bench.waitFor(60, TimeUnit.SECONDS), "the bench did not end within 60 s of SIGTERM");
            } finally {
                bench.destroyForcibly();
            }
            assertEquals(List.of(), files(tmp), "left in the temporary folder");
        } finally {
            try (Stream<Path> left = Files.walk(tmp)) {
                for (Path p : left.sorted(Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(p);
                }
            }
        }
    }

    private static boolean has(Path dir, String part) throws IOException {
        try {
            return files(dir).stream().anyMatch(p -> p.getFileName().toString().contains(part));
        } catch (java.io.UncheckedIOException e) {
            return false;   // a file went while the walk listed its folder (a case JVM closed): look again
        }
    }

    /** Every file and folder under {@code dir}, not {@code dir} itself. */
    private static List<Path> files(Path dir) throws IOException {
        try (Stream<Path> all = Files.walk(dir)) {
            return all.filter(p -> !p.equals(dir)).toList();
        }
    }
}
