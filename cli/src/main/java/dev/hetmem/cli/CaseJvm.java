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
 * parent sends {@code run} (or {@code warm}, a warm-up run: {@link CaseRunner#warm}), the child runs
 * the case once and answers with one line, which says how long its JIT has compiled so far. Why: the
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

    /** The flags that say where a bench's cases run, at most one of them given. */
    static final List<String> JVM_POLICIES = List.of("same-jvm", "jvm-per-case", "jvm-per-round");

    /** A bench's own flags and {@link #JVM_POLICIES}. */
    static Set<String> withJvmPolicies(String... flags) {
        Set<String> all = new java.util.HashSet<>(List.of(flags));
        all.addAll(JVM_POLICIES);
        return all;
    }

    /**
     * Where a bench's cases run, as the flag names it ({@code --jvm-per-round}: a new JVM per case
     * every round; {@code --jvm-per-case}: one per case for all its rounds; {@code --same-jvm}: all
     * in this one), or {@code fallback} where none is given; two or more are a usage error.
     */
    static String jvmPolicy(Args args, String fallback) {
        List<String> given = new ArrayList<>();
        for (String flag : JVM_POLICIES) {
            if (args.flag(flag)) {
                given.add("--" + flag);
            }
        }
        if (given.size() > 1) {
            throw new Args.UsageException(String.join(" and ", given) + ": choose one");
        }
        return given.isEmpty() ? fallback : given.getFirst();
    }

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
    /**
     * After {@link #WARM_UP_NANOS}, warm-up runs go on until the JIT of the case's JVM has been
     * quiet ({@link JitQuiet}) this long: on OpenCL the engine's per-launch paths were still being
     * compiled by C2 9-25 s into a JVM's life (a 32 MiB device, 16 MiB layers; with 1.5 s of warm-up
     * one launch read a median 0.79 of the explicit program in eight runs, with 12 s 1.01-1.02).
     */
    static final long QUIET_NANOS = 1_000_000_000L;
    /** ... with no more than this many milliseconds of compilation finished meanwhile. */
    static final long QUIET_COMPILE_MILLIS = 20;
    /** The most a warm-up runs for when the JIT never goes quiet; the rows then say so ({@code jit_quiet}). */
    static final long MAX_WARM_UP_NANOS = 30_000_000_000L;
    /** ... in a {@code --quick} run, which must end within a minute. */
    static final long QUICK_MAX_WARM_UP_NANOS = 6_000_000_000L;

    /**
     * What a JVM's warm-up did: whether every run was correct, how long it took, and whether its JIT
     * was seen quiet (false where it was not watched: no warm-up, or one slow run).
     */
    record WarmUp(boolean correct, long nanos, boolean quiet) {}

    /** One case's warm-ups over all its JVMs, as its row reports them. */
    static final class WarmUps {
        private boolean wrong;
        private long longestNanos;
        private boolean quiet = true;

        void add(WarmUp w) {
            wrong |= !w.correct();
            longestNanos = Math.max(longestNanos, w.nanos());
            quiet &= w.quiet();
        }

        /**
         * Into the case's row: {@code correct} false if a warm-up run was wrong, the longest warm-up
         * ({@code warmup_s}), and whether the JIT was seen quiet in every JVM ({@code jit_quiet}).
         */
        void putInto(java.util.Map<String, Object> row) {
            row.put("correct", (Boolean) row.get("correct") && !wrong);
            row.put("warmup_s", Math.round(longestNanos / 1e7) / 100.0);
            row.put("jit_quiet", quiet);
        }

        /** The progress line's words: the longest warm-up, and whether the JIT was seen quiet. */
        String text() {
            return String.format("warm-up %.1f s%s", longestNanos / 1e9, quiet ? "" : " (the JIT not seen quiet before the runs)");
        }
    }

    private final Process process;
    private final Writer toChild;
    private final BufferedReader fromChild;
    private final Path stderr;
    private final String name;
    /** The child's total compilation time as of its last answer, or -1. */
    private long compiledMillis = -1;

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

    /**
     * Runs the case once ({@code warm}: a warm-up run, {@link CaseRunner#warm}); returns the child's
     * answer line ({@code row ...} or {@code failed ...}), without the compilation time it ends
     * with, which {@link #compiledMillis} says from then on.
     */
    String runOnce(boolean warm) {
        try {
            toChild.write(warm ? "warm\n" : "run\n");
            toChild.flush();
        } catch (IOException e) {
            throw ended("stopped answering (" + e.getMessage() + ")");
        }
        String line = answerWithin(RUN_SECONDS, "did not finish a run", "row ", "failed ");
        int at = line.lastIndexOf(" " + COMPILED);
        if (line.startsWith("row ") && at >= 0) {
            try {
                compiledMillis = Long.parseLong(line.substring(at + 1 + COMPILED.length()));
            } catch (NumberFormatException e) {
                throw new IllegalStateException("the JVM for " + name + " answered " + line + ": not a compilation time");
            }
            line = line.substring(0, at);
        }
        return line;
    }

    /** The child's total compilation time in milliseconds as of its last answer, or -1 where it does not say. */
    long compiledMillis() {
        return compiledMillis;
    }

    /** The {@code count} fields of an answer {@code row F1 F2 ...}; any other answer throws, naming this JVM. */
    private String[] fieldsOf(String line, int count) {
        String[] f = line.split(" ");
        if (f.length != count + 1 || !f[0].equals("row")) {
            throw new IllegalStateException(name + ": " + (line.startsWith("failed ") ? line.substring("failed ".length()) : line));
        }
        return java.util.Arrays.copyOfRange(f, 1, f.length);
    }

    /** How an answer ends: {@code compiled_ms=N}, the child's total compilation time. */
    private static final String COMPILED = "compiled_ms=";

    /**
     * This JVM as a case's runner, its answers made rows by {@code row}: given an answer's
     * {@code fields} fields after {@code row} (the case's {@link CaseRun} wrote them), and whether it
     * answers a warm-up run. An answer of another shape, a {@code failed} one included, throws with
     * this JVM's name and what it said.
     */
    CaseRunner runner(int fields, java.util.function.BiFunction<String[], Boolean, java.util.Map<String, Object>> row) {
        return new CaseRunner() {
            @Override
            public java.util.Map<String, Object> run() {
                return row.apply(fieldsOf(runOnce(false), fields), false);
            }

            @Override
            public java.util.Map<String, Object> warm() {
                return row.apply(fieldsOf(runOnce(true), fields), true);
            }

            @Override
            public long compiledMillis() {
                return CaseJvm.this.compiledMillis();
            }

            @Override
            public void close() {
                CaseJvm.this.close();
            }
        };
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
        /** {@code warm}: a warm-up run ({@link CaseRunner#warm}). */
        String run(boolean warm) throws Exception;
    }

    /**
     * How long a warm-up runs: at least {@code floorNanos}, then on until the JIT has been quiet for
     * {@code quietNanos} (no more than {@code quietCompileMillis} compiled meanwhile; 0: no wait for
     * the JIT), at most {@code maxNanos}.
     */
    record WarmUpLimits(long floorNanos, long quietNanos, long quietCompileMillis, long maxNanos) {
        /** A full run's: until the JIT is quiet, at most {@link #MAX_WARM_UP_NANOS}. */
        static final WarmUpLimits BENCH = new WarmUpLimits(WARM_UP_NANOS, QUIET_NANOS, QUIET_COMPILE_MILLIS, MAX_WARM_UP_NANOS);
        /**
         * A {@code --quick} run's: the same, at most {@link #QUICK_MAX_WARM_UP_NANOS}, so that the run
         * keeps to its minute; its rows say where the JIT was not quiet yet.
         */
        static final WarmUpLimits QUICK = new WarmUpLimits(WARM_UP_NANOS, QUIET_NANOS, QUIET_COMPILE_MILLIS,
                QUICK_MAX_WARM_UP_NANOS);

        WarmUpLimits {
            if (floorNanos < 0 || quietNanos < 0 || quietCompileMillis < 0 || maxNanos < floorNanos) {
                throw new IllegalArgumentException("warm-up limits " + floorNanos + " ns floor, " + quietNanos + " ns quiet with "
                        + quietCompileMillis + " ms compiled, " + maxNanos + " ns at most: none may be negative, nor the most "
                        + "below the floor");
            }
        }
    }

    /** As {@link #warmUp(CaseRunner, int, long, WarmUpLimits)} with the benches' limits. */
    static WarmUp warmUp(CaseRunner runner, int runs, long slowNanos) {
        return warmUp(runner, runs, slowNanos, WarmUpLimits.BENCH);
    }

    /**
     * Warms a new JVM's case up with {@link CaseRunner#warm} runs: {@code runs} of them, and on until
     * they took the floor's time and the JVM's JIT has been quiet for the quiet spell ({@link JitQuiet},
     * watched from the floor on: what it compiled before then is no news), or, if it never goes
     * quiet, until they took the most {@code limits} allow, but never fewer than {@code runs}
     * (nothing if {@code runs} is 0); one run only for a case whose first run took longer than
     * {@code slowNanos} (it is warm by then, and more would cost the run its time). Says whether
     * every run's result was correct, and whether the JIT was seen quiet.
     */
    static WarmUp warmUp(CaseRunner runner, int runs, long slowNanos, WarmUpLimits limits) {
        if (runs <= 0) {
            return new WarmUp(true, 0, false);
        }
        boolean correct = true;
        long spent = 0;
        JitQuiet jit = null;
        boolean quiet = false;
        for (int w = 0; ; w++) {
            long t0 = System.nanoTime();
            correct &= (Boolean) runner.warm().get("correct");
            spent += System.nanoTime() - t0;
            if (w == 0 && spent > slowNanos) {
                return new WarmUp(correct, spent, false);   // the JIT not watched
            }
            if (spent >= limits.floorNanos() && limits.quietNanos() == 0) {
                quiet = true;   // no wait for the JIT
            } else if (spent >= limits.floorNanos()) {
                if (jit == null) {
                    jit = new JitQuiet(limits.quietNanos(), limits.quietCompileMillis(), spent, runner.compiledMillis());
                }
                quiet = jit.quietAt(spent, runner.compiledMillis());
            }
            if (w + 1 >= runs && (quiet || spent >= limits.maxNanos())) {
                return new WarmUp(correct, spent, quiet);
            }
        }
    }

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

    /**
     * The child's side: says {@code ready}, then runs the case once per {@code run} line on standard
     * input (the parent's pipe: only a JVM this class started is asked to serve), or once as a
     * warm-up run per {@code warm} line, answering each with {@code row FIELDS compiled_ms=N} (N: this
     * JVM's total compilation time, {@link JitQuiet#compiledMillis}), or {@code failed MESSAGE} and an
     * exit status of 1 (2 for a request it does not know); 0 once the parent closes its input.
     */
    static int serve(PrintStream out, CaseRun caseRun) {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        out.println("ready");
        out.flush();
        try {
            for (String line = in.readLine(); line != null; line = in.readLine()) {
                if (!line.equals("run") && !line.equals("warm")) {
                    out.println("failed unknown request " + line);
                    out.flush();
                    return 2;
                }
                String fields;
                try {
                    fields = caseRun.run(line.equals("warm"));
                } catch (Exception | Error e) {
                    out.println("failed " + Main.failureMessage(e).replace('\n', ' ').replace('\r', ' '));
                    out.flush();
                    return 1;
                }
                out.println("row " + fields + " " + COMPILED + JitQuiet.compiledMillis());
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
