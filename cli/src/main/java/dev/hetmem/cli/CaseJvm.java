package dev.hetmem.cli;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.io.Writer;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

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
 * <p>The child is this JVM's own command: the same Java, every option this JVM was given exactly
 * as the JVM recorded it (under {@code ./hetmem} that includes the module path and main module the
 * launcher turned {@code -p} and {@code -m} into), with the environment's option variables removed
 * (their options are among those recorded, and would otherwise come twice), except options that
 * cannot be given to two JVMs at once (a debugger's or JMX's port, a flight recording's or class
 * archive's file). It answers {@code ready} once started; lines that are not answers (a JVM's own
 * logging on standard output) are skipped. Its standard error goes to a file whose last lines say
 * why, should it end.
 */
final class CaseJvm implements AutoCloseable {
    /**
     * Set in a case JVM's environment: the benches' internal options that make a JVM serve cases
     * ({@code --serve-case}, {@code --serve-model}) are taken only where it is set, and are an
     * unknown option to a user, as {@code --help} (which does not list them) says.
     */
    static final String CASE_JVM_ENV = "HETMEM_CASE_JVM";

    /**
     * A command's valued options: {@code declared}, and {@code internal} (the benches' case options)
     * only in a case JVM. Elsewhere the parser does not know them, so they are an unknown option
     * however they are written (with a value, without one, or as {@code --serve-case=...}).
     */
    static Set<String> withInternal(Set<String> declared, String... internal) {
        if (System.getenv(CASE_JVM_ENV) == null) {
            return declared;
        }
        Set<String> all = new java.util.HashSet<>(declared);
        all.addAll(List.of(internal));
        return all;
    }

    /** Options a second JVM must not repeat: they bind a port or write a file of their own. */
    private static final List<String> NOT_REPEATED = List.of("-agentlib:jdwp", "-Xrunjdwp", "-XX:StartFlightRecording",
            "-XX:ArchiveClassesAtExit", "-Dcom.sun.management.jmxremote", "-XX:+PrintFlagsFinal", "-Xloggc:",
            "-XX:HeapDumpPath", "-XX:ErrorFile");
    /** How long a child may take to start. */
    private static final long START_SECONDS = 60;
    /** How long one run may take before the child is taken for hung (the slowest cases take seconds). */
    private static final long RUN_SECONDS = 600;
    /**
     * The least time a new JVM's warm-up runs take. A count of runs alone left the engine's paths
     * still being compiled where runs are short: {@code bench decode}, emulated, factor 2, a 32 MiB
     * device, 2 tokens a run, one launch took 0.34, 0.13, 0.13 s, then 0.17, 0.16, 0.14 s while the
     * JIT still worked on the two busy cores, and 0.10-0.11 s from the seventh run (about 1.1 s in);
     * the explicit program, a shorter path, ran at its speed (0.12-0.14 s) from its second run.
     */
    static final long WARM_UP_NANOS = 1_500_000_000L;

    private final Process process;
    private final Writer toChild;
    private final BufferedReader fromChild;
    private final Path stderr;
    private final String name;

    private CaseJvm(Process process, Path stderr, String name) {
        this.process = process;
        this.stderr = stderr;
        this.name = name;
        this.toChild = process.outputWriter(StandardCharsets.UTF_8);
        this.fromChild = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8));
    }

    /**
     * Starts a JVM running {@code Main} with {@code childArgs} and waits for its {@code ready};
     * {@code name} says which case in errors.
     */
    static CaseJvm start(String name, List<String> childArgs) {
        List<String> cmd = new ArrayList<>();
        cmd.add(ProcessHandle.current().info().command()
                .orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        for (String option : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            // a log written to a file (-Xlog:...:file=) would be truncated by the child, a debugger's port taken twice
            boolean ownFile = option.startsWith("-Xlog:") && option.contains("file=") || option.contains("jdwp");
            if (NOT_REPEATED.stream().noneMatch(option::startsWith) && !ownFile) {
                cmd.add(option);
            }
        }
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(Main.class.getName());
        cmd.addAll(childArgs);
        Path err = null;
        try {
            err = Files.createTempFile("hetmem-case-", ".err");
            // gone on Ctrl-C or kill too (the shutdown runs the JDK's delete-on-exit hook, not close())
            err.toFile().deleteOnExit();
            ProcessBuilder pb = new ProcessBuilder(cmd).redirectError(err.toFile());
            pb.environment().put(CASE_JVM_ENV, "1");
            for (String v : List.of("JDK_JAVA_OPTIONS", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS")) {
                pb.environment().remove(v);
            }
            CaseJvm jvm = new CaseJvm(pb.start(), err, name);
            jvm.awaitReady();
            return jvm;
        } catch (IOException e) {
            deleteQuietly(err);
            throw new IllegalStateException("could not start a JVM for " + name + ": " + e.getMessage(), e);
        }
    }

    private void awaitReady() {
        answerWithin(START_SECONDS, "did not start", "ready");
    }

    /** Runs the case once; returns the child's answer line ({@code row ...} or {@code failed ...}). */
    String runOnce() {
        try {
            toChild.write("run\n");
            toChild.flush();
        } catch (IOException e) {
            throw ended("stopped answering (" + e.getMessage() + ")");
        }
        return answerWithin(RUN_SECONDS, "did not finish a run", "row ", "failed ");
    }

    /**
     * The child's next answer, read on a thread of its own so that a child that hangs is noticed:
     * after {@code seconds}, or on an interrupt, the child is killed first (a read in progress holds
     * the reader's lock, which closing it waits for: only the child's end releases it), then closed.
     */
    private String answerWithin(long seconds, String notInTime, String... prefixes) {
        CompletableFuture<String> answer = CompletableFuture.supplyAsync(() -> answer(prefixes),
                r -> Thread.ofVirtual().name("hetmem-case-reader").start(r));
        try {
            return answer.get(seconds, TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            kill();
            throw new IllegalStateException("the JVM for " + name + " " + notInTime + " within " + seconds + " s; it was stopped");
        } catch (ExecutionException e) {
            kill();
            if (e.getCause() instanceof IllegalStateException ended) {
                throw ended;
            }
            throw new IllegalStateException(Main.failureMessage(e));
        } catch (InterruptedException e) {
            kill();
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for the JVM for " + name);
        }
    }

    /** Ends the child at once, then closes it. */
    private void kill() {
        process.destroyForcibly();
        close();
    }

    /** One run of a case in the child, as its answer line's fields after {@code row}. */
    interface CaseRun {
        String run() throws Exception;
    }

    /**
     * Warms a new JVM's case up: {@code runs} runs, and on until they took {@link #WARM_UP_NANOS}
     * (nothing if {@code runs} is 0), but one run only for a case whose first run took longer than
     * {@code slowNanos} (it is warm by then, and more would cost the run its time). Returns whether
     * every run's result was correct.
     */
    static boolean warmUp(java.util.function.Supplier<java.util.Map<String, Object>> run, int runs, long slowNanos) {
        boolean correct = true;
        long spent = 0;
        for (int w = 0; w < runs || (runs > 0 && spent < WARM_UP_NANOS); w++) {
            long t0 = System.nanoTime();
            correct &= (Boolean) run.get().get("correct");
            spent += System.nanoTime() - t0;
            if (w == 0 && spent > slowNanos) {
                break;
            }
        }
        return correct;
    }

    /**
     * The child's side: says {@code ready}, then runs the case once per {@code run} line on standard
     * input (the parent's pipe: only a JVM this class started is asked to serve), answering each
     * with {@code row FIELDS}, or {@code failed MESSAGE} and an exit status of 1 (2 for a request it
     * does not know); 0 once the parent closes its input.
     */
    /**
     * The weights or data factor in a case's key ({@code --OPTION KEY}), as the parent writes it:
     * a number in (0, 16]; anything else is a usage error naming the key.
     */
    static double factor(String option, String key, String text) {
        double factor;
        try {
            factor = Double.parseDouble(text);
        } catch (NumberFormatException e) {
            throw new Args.UsageException("--" + option + " " + key + ": factor " + text + " is not a number");
        }
        if (!(factor > 0 && factor <= 16)) {
            throw new Args.UsageException("--" + option + " " + key + ": factor " + text + " is outside (0, 16]");
        }
        return factor;
    }

    static int serve(PrintStream out, CaseRun caseRun) {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        out.println("ready");
        out.flush();
        try {
            for (String line = in.readLine(); line != null; line = in.readLine()) {
                if (!line.equals("run")) {
                    out.println("failed unknown request " + line);
                    out.flush();
                    return 2;
                }
                String fields;
                try {
                    fields = caseRun.run();
                } catch (Exception | Error e) {
                    out.println("failed " + Main.failureMessage(e).replace('\n', ' ').replace('\r', ' '));
                    out.flush();
                    return 1;
                }
                out.println("row " + fields);
                out.flush();
            }
            return 0;
        } catch (IOException e) {
            return 1;
        }
    }

    /** The next line that starts with one of {@code prefixes}; other lines are the JVM's own output. */
    private String answer(String... prefixes) {
        try {
            for (String line = fromChild.readLine(); line != null; line = fromChild.readLine()) {
                for (String p : prefixes) {
                    if (line.startsWith(p)) {
                        return line;
                    }
                }
            }
            throw ended("ended");
        } catch (IOException e) {
            throw ended("stopped answering (" + e.getMessage() + ")");
        }
    }

    private IllegalStateException ended(String how) {
        String status;
        try {
            status = process.waitFor(5, TimeUnit.SECONDS) ? "exit status " + process.exitValue() : "still running";
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            status = "exit status unknown";
        }
        String tail = String.join(" / ", lastLines(stderr, 3)).strip();
        return new IllegalStateException("the JVM running " + name + " " + how + " (" + status + ")"
                + (tail.isEmpty() ? "" : ": " + tail));
    }

    /**
     * Tells the child to end (end of its input) and waits for it; its output is closed first, so a
     * child blocked writing ends too; one that does not end is killed.
     */
    @Override
    public void close() {
        try {
            toChild.close();
        } catch (IOException ignored) {
            // it has ended already
        }
        try {
            fromChild.close();
        } catch (IOException ignored) {
            // nothing to read any more
        }
        try {
            if (!process.waitFor(30, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
        }
        deleteQuietly(stderr);
    }

    /** A Java throwable's class before its message, as a JVM prints one that nothing caught. */
    private static final java.util.regex.Pattern THROWN =
            java.util.regex.Pattern.compile("^(?:Exception in thread \"[^\"]*\" |Caused by: )?(?:[a-z_][\\w$]*\\.)+[A-Z][\\w$]*(?:: (.*))?$");

    /**
     * The last {@code n} lines of a child's standard error that a user can read: from its last 64 KiB
     * (it may be long, and not UTF-8), without stack frames, a thrown class's message without the class.
     */
    static List<String> lastLines(Path file, int n) {
        byte[] bytes;
        try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(file)) {
            long size = ch.size();
            java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate((int) Math.min(size, 64 * 1024));
            while (b.hasRemaining() && ch.read(b, size - b.capacity() + b.position()) >= 0) {
                // a short read goes on from where it stopped
            }
            bytes = java.util.Arrays.copyOf(b.array(), b.position());
        } catch (IOException e) {
            return List.of();
        }
        List<String> out = new ArrayList<>();
        for (String line : new String(bytes, StandardCharsets.UTF_8).split("\\R")) {
            String l = line.strip();
            if (l.isEmpty() || l.startsWith("at ") || l.matches("\\.\\.\\. \\d+ more")) {
                continue;
            }
            java.util.regex.Matcher m = THROWN.matcher(l);
            out.add(m.matches() ? (m.group(1) != null ? m.group(1) : "failed with no message") : l);
        }
        return out.subList(Math.max(0, out.size() - n), out.size());
    }

    private static void deleteQuietly(Path p) {
        if (p != null) {
            try {
                Files.deleteIfExists(p);
            } catch (IOException ignored) {
                // a temporary file left behind
            }
        }
    }
}
