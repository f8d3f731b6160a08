package dev.hetmem.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The README's "Use it as a library" program, exactly as the README prints it: compiled against the
 * built core jar as a named module, and run with and without {@code --enable-native-access}.
 */
class LibraryProgramTest {

    @Test
    void theReadmeProgramCompilesAndRunsAsANamedModule(@TempDir Path dir) throws Exception {
        List<String> blocks = javaBlocks(Files.readString(Path.of("..", "README.md")), "## Use it as a library");
        assertEquals(2, blocks.size(), "the section shows module-info.java and Main.java");
        Path src = dir.resolve("src");
        Files.createDirectories(src.resolve("example"));
        Files.writeString(src.resolve("module-info.java"), blocks.get(0));
        Files.writeString(src.resolve("example").resolve("Main.java"), blocks.get(1));
        long lines = blocks.get(1).lines().count();
        assertTrue(lines <= 30, "a short program: " + lines + " lines");

        Path core = coreJar();
        Path out = dir.resolve("out");
        Run javac = tool("javac", "-d", out.toString(), "--module-path", core.toString(),
                src.resolve("module-info.java").toString(), src.resolve("example").resolve("Main.java").toString());
        assertEquals(0, javac.rc, javac.err + javac.out);

        String modulePath = core + java.io.File.pathSeparator + out;
        Run with = tool("java", "--enable-native-access=dev.hetmem", "-p", modulePath, "-m", "example/example.Main");
        assertEquals(0, with.rc, with.err);
        assertTrue(with.out.contains("last = 4194302"), with.out);
        assertTrue(with.out.contains("8 granules faulted; PageSnapshot[offset 0: pages 0-4095 node 0 rw]"),
                "the launch faulted eight 2 MiB granules over, the read view brought them home: " + with.out);
        assertFalse(with.err.contains("restricted method"), with.err);

        // what the README says happens without it: the JDK warns (later JDKs refuse)
        Run without = tool("java", "-p", modulePath, "-m", "example/example.Main");
        assertEquals(0, without.rc, without.err);
        assertTrue(without.err.contains("restricted method") && without.err.contains("--enable-native-access"),
                "the JDK's warning names the option: " + without.err);
    }

    /**
     * The native fault service comes out of the core jar into the directory hetmem.native.dir
     * names (for a temporary directory mounted noexec), and loads from there.
     */
    @Test
    void theFaultServiceIsExtractedWhereTheSettingSays(@TempDir Path dir) throws Exception {
        Path src = dir.resolve("src");
        Files.createDirectories(src.resolve("probe"));
        Files.writeString(src.resolve("module-info.java"), "module probe { requires dev.hetmem; }");
        Files.writeString(src.resolve("probe").resolve("Main.java"), """
                package probe;
                public class Main {
                    public static void main(String[] a) throws Exception {
                        System.out.println("reason: " + dev.hetmem.limits.FaultLimits.userfaultfdUnavailableReason());
                        var dir = java.nio.file.Path.of(System.getProperty("hetmem.native.dir"));
                        if (java.nio.file.Files.isDirectory(dir)) {
                            try (var files = java.nio.file.Files.list(dir)) {
                                files.forEach(f -> System.out.println("extracted: " + f.getFileName()));
                            }
                        }
                    }
                }
                """);
        Path core = coreJar();
        Path out = dir.resolve("out");
        Run javac = tool("javac", "-d", out.toString(), "--module-path", core.toString(),
                src.resolve("module-info.java").toString(), src.resolve("probe").resolve("Main.java").toString());
        assertEquals(0, javac.rc, javac.err + javac.out);
        Path nativeDir = dir.resolve("native").resolve("here");
        Run run = tool("java", "--enable-native-access=dev.hetmem", "-Dhetmem.native.dir=" + nativeDir,
                "-p", core + java.io.File.pathSeparator + out, "-m", "probe/probe.Main");
        assertEquals(0, run.rc, run.err);
        boolean built = !run.out.contains("was not built");
        if (!built && !"true".equals(System.getenv("CI"))) {
            org.junit.jupiter.api.Assumptions.assumeTrue(false, "no C compiler built the fault service: " + run.out);
        }
        assertTrue(built, "CI builds the fault service: " + run.out);
        // (the file goes when the JVM that loaded it ends: the program looks while it runs)
        assertTrue(run.out.contains("extracted: libhetmem_uffd"), "the library was extracted into " + nativeDir + ": " + run.out);
    }

    /** The BOM names the version the parent builds, for each module it lists (it does not inherit it). */
    @Test
    void theBomAndTheParentAgreeOnTheVersion() throws Exception {
        String parent = Files.readString(Path.of("..", "pom.xml"));
        Matcher pv = Pattern.compile("<artifactId>hetmem-parent</artifactId>\\s*<version>([^<]+)</version>").matcher(parent);
        assertTrue(pv.find(), "the parent's version");
        String bom = Files.readString(Path.of("..", "bom", "pom.xml"));
        Matcher bv = Pattern.compile("<version>([^<]+)</version>").matcher(bom);
        int versions = 0;
        while (bv.find()) {
            assertEquals(pv.group(1), bv.group(1), "every version in bom/pom.xml");
            versions++;
        }
        assertEquals(3, versions, "the BOM's own version and its two modules'");
        assertTrue(Files.readString(Path.of("..", "hetmem")).contains("-" + pv.group(1) + ".jar"),
                "the launcher names the jars of this version");
    }

    /** The bodies of the ```java blocks of the README section that starts with {@code heading}. */
    static List<String> javaBlocks(String readme, String heading) {
        int start = readme.indexOf(heading + "\n");
        assertTrue(start >= 0, "the README has a section " + heading);
        int end = readme.indexOf("\n## ", start + heading.length());
        String section = readme.substring(start, end < 0 ? readme.length() : end);
        Matcher m = Pattern.compile("```java\n(.*?)```", Pattern.DOTALL).matcher(section);
        List<String> blocks = new ArrayList<>();
        while (m.find()) {
            blocks.add(m.group(1));
        }
        return blocks;
    }

    /** The core module's jar, as the build just made it. */
    static Path coreJar() throws IOException {
        try (Stream<Path> jars = Files.list(Path.of("..", "core", "target"))) {
            return jars.filter(p -> p.getFileName().toString().matches("hetmem-core-[^-]+(-SNAPSHOT)?\\.jar"))
                    .findFirst().orElseThrow(() -> new AssertionError("core/target has no hetmem-core jar: build with mvn verify"));
        }
    }

    record Run(int rc, String out, String err) {}

    /** Runs a tool of the JDK running the tests ({@code java}, {@code javac}). */
    static Run tool(String name, String... args) throws Exception {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", name).toString());
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).start();
        var out = p.getInputStream().readAllBytes();
        var err = p.getErrorStream().readAllBytes();
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "the program ended");
        return new Run(p.exitValue(), new String(out, StandardCharsets.UTF_8), new String(err, StandardCharsets.UTF_8));
    }
}
