package dev.hetmem;

import dev.hetmem.fault.FaultService;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Comparator;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Where userfaultfd is not permitted, building in that mode says so and how to enable it: a child
 * JVM runs as the unprivileged user 65534 (with vm.unprivileged_userfaultfd=0 and /dev/userfaultfd
 * root's only, as on this machine). Dropping privileges takes root: CI runs as root and must run this.
 */
@Tag("emulated") // about the host, not a device
class UserfaultfdRefusalTest {

    /** Run as the unprivileged user: prints the refusal's message. */
    public static final class Probe {
        public static void main(String[] args) {
            System.out.println("reason: " + FaultService.unavailableReason().orElse("none"));
            try {
                UnifiedMemory.builder().hostFaults(HostFaultMode.USERFAULTFD).build().close();
                System.out.println("built");
            } catch (UserfaultfdUnavailableException e) {
                System.out.println("refused: " + e.getMessage());
            }
        }
    }

    @Test
    void anUnprivilegedUserIsToldWhyAndHow() throws Exception {
        boolean root = "root".equals(System.getProperty("user.name"));
        String sysctl = Files.readString(Path.of("/proc/sys/vm/unprivileged_userfaultfd")).strip();
        MemoryFixture.needs(root, () -> "running as another user needs root");
        org.junit.jupiter.api.Assumptions.assumeTrue(sysctl.equals("0"), "unprivileged userfaultfd is allowed here");
        // the class folders, readable by that user
        Path dir = Files.createTempDirectory("uffd-refusal");
        try {
            Path main = Path.of(FaultService.class.getProtectionDomain().getCodeSource().getLocation().toURI());
            Path tests = Path.of(Probe.class.getProtectionDomain().getCodeSource().getLocation().toURI());
            copyTree(main, dir.resolve("main"));
            copyTree(tests, dir.resolve("test"));
            try (Stream<Path> all = Files.walk(dir)) {
                for (Path p : all.toList()) {
                    Files.setPosixFilePermissions(p, PosixFilePermissions.fromString(Files.isDirectory(p) ? "rwxr-xr-x" : "rw-r--r--"));
                }
            }
            String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
            Process p = new ProcessBuilder("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", java,
                    "--enable-native-access=ALL-UNNAMED", "-cp", dir.resolve("main") + ":" + dir.resolve("test"),
                    Probe.class.getName()).redirectErrorStream(true).start();
            assertTrue(p.waitFor(60, TimeUnit.SECONDS), "child did not finish");
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertEquals(0, p.exitValue(), out);
            assertTrue(out.contains("refused: userfaultfd host faults unavailable: this process may not use userfaultfd"), out);
            assertTrue(out.contains("/dev/userfaultfd") && out.contains("vm.unprivileged_userfaultfd=1"), out);
            assertTrue(!out.contains("built"), out);
        } finally {
            try (Stream<Path> all = Files.walk(dir)) {
                for (Path p : all.sorted(Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(p);
                }
            }
        }
    }

    private static void copyTree(Path from, Path to) throws IOException {
        try (Stream<Path> all = Files.walk(from)) {
            for (Path p : all.toList()) {
                Path t = to.resolve(from.relativize(p).toString());
                if (Files.isDirectory(p)) {
                    Files.createDirectories(t);
                } else {
                    Files.copy(p, t);
                }
            }
        }
    }
}
