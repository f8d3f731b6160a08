package dev.hetmem;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The JVM never hangs on a host fault: {@link UffdGcStress} runs in child JVMs, each faulting from
 * Java and native code under continuous garbage collection, with a watchdog here. A child that
 * stops making progress is killed and the test fails with what it printed.
 */
@Tag("emulated") // the fault service copies frames in place: the driver must be host-addressable
class UserfaultfdGcSafetyTest {
    private static final long WATCHDOG_SECONDS = 90;

    @Test
    void faultsFromJavaAndNativeCodeUnderContinuousGcNeverHang() throws Exception {
        UserfaultfdTest.requireUserfaultfd();
        for (long granule : new long[] {4096, 64 * 1024, 2 << 20, 4096, 64 * 1024}) {
            runChild(6, granule);
        }
    }

    private static void runChild(int rounds, long granule) throws IOException, InterruptedException {
        Path out = Files.createTempFile("uffd-gc", ".log");
        try {
            String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
            Process p = new ProcessBuilder(java, "--enable-native-access=ALL-UNNAMED", "-Xmx256m",
                    "-cp", System.getProperty("java.class.path"), UffdGcStress.class.getName(),
                    Integer.toString(rounds), Long.toString(granule))
                    .redirectErrorStream(true).redirectOutput(out.toFile()).start();
            if (!p.waitFor(WATCHDOG_SECONDS, TimeUnit.SECONDS)) {
                p.destroyForcibly().waitFor();
                fail("child JVM (granule " + granule + ") made no end in " + WATCHDOG_SECONDS + " s: hung. It printed:\n"
                        + Files.readString(out, StandardCharsets.UTF_8));
            }
            String log = Files.readString(out, StandardCharsets.UTF_8);
            assertEquals(0, p.exitValue(), "granule " + granule + ":\n" + log);
            List<String> lines = log.lines().toList();
            assertTrue(lines.contains("OK"), log);
            assertEquals(rounds, lines.stream().filter(l -> l.startsWith("round ") && l.contains(" bad 0 problems 0 ")).count(), log);
        } finally {
            Files.deleteIfExists(out);
        }
    }
}
