package dev.hetmem.cli;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.Writer;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * One benchmark case served by a JVM of its own, kept alive across the rounds of a run: the
 * parent sends {@code run}, the child runs the case once and answers with one line. Why: the
 * emulated device's kernels are Java code, and in one JVM the JIT's profiles of that code mix
 * every case's, so a row depended on which other cases shared the JVM: with the explicit program's
 * random case beside it, its sequential case ran at 1.85–2.32 GB/s, alone at 2.74–2.89, and the
 * one-launch windows row read 0.89–1.04 of it in one JVM but 0.59–0.67 in JVMs of their own
 * (`bench oversub --quick --modes explicit,one_launch_windows`, two runs each, alternated). A user
 * runs one program per JVM; so does each case here, while the parent still alternates the cases
 * round by round, so that a noisy second of the machine hits them alike.
 *
 * <p>The child is this JVM's own command (same Java, options and class path) running
 * {@code childArgs}; its standard error is discarded (its answers say what failed).
 */
final class CaseJvm implements AutoCloseable {
    private final Process process;
    private final Writer toChild;
    private final BufferedReader fromChild;
    private final String name;

    private CaseJvm(Process process, String name) {
        this.process = process;
        this.name = name;
        this.toChild = process.outputWriter(StandardCharsets.UTF_8);
        this.fromChild = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8));
    }

    /** Starts a JVM running {@code Main} with {@code childArgs}; {@code name} says which case in errors. */
    static CaseJvm start(String name, List<String> childArgs) {
        List<String> cmd = new ArrayList<>();
        cmd.add(ProcessHandle.current().info().command()
                .orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        for (String option : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            // options from JDK_JAVA_OPTIONS reach the child through the environment it inherits
            if (!System.getenv().getOrDefault("JDK_JAVA_OPTIONS", "").contains(option)) {
                cmd.add(option);
            }
        }
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(Main.class.getName());
        cmd.addAll(childArgs);
        try {
            Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.DISCARD).start();
            return new CaseJvm(p, name);
        } catch (IOException e) {
            throw new IllegalStateException("could not start a JVM for " + name + ": " + e.getMessage(), e);
        }
    }

    /** Runs the case once; returns the child's answer line. */
    String runOnce() {
        try {
            toChild.write("run\n");
            toChild.flush();
            String line = fromChild.readLine();
            if (line == null) {
                throw new IllegalStateException("the JVM running " + name + " ended (exit status " + exitStatus() + ")");
            }
            return line;
        } catch (IOException e) {
            throw new IllegalStateException("the JVM running " + name + " stopped answering: " + e.getMessage()
                    + " (exit status " + exitStatus() + ")", e);
        }
    }

    private String exitStatus() {
        try {
            return process.waitFor(5, TimeUnit.SECONDS) ? String.valueOf(process.exitValue()) : "still running";
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return "unknown";
        }
    }

    /** Tells the child to end (end of its input) and waits for it; a child that does not end is killed. */
    @Override
    public void close() {
        try {
            toChild.close();
        } catch (IOException ignored) {
            // it has ended already
        }
        try {
            if (!process.waitFor(30, TimeUnit.SECONDS)) {
                process.destroyForcibly();
            }
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
        }
    }
}
