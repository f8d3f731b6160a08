package dev.hetmem.cli;

import java.lang.management.CompilationMXBean;
import java.lang.management.ManagementFactory;

/**
 * Whether a JVM's JIT has gone quiet, judged from its running total of compilation time
 * ({@link CompilationMXBean#getTotalCompilationTime}): quiet once {@code quietNanos} have passed
 * in which no more than {@code compileMillis} of compilation finished. Only a total above that
 * counts as activity (and starts the wait again): small compilations go on for as long as a JVM
 * runs, and would keep it from ever counting as warm.
 *
 * <p>Why the benches wait for it: the engine's per-launch paths ({@code MigrationEngine.ensure},
 * {@code Planner.plan}, {@code Eviction.makeRoom}) run a few times a launch, so C2 compiles them
 * only after hundreds of launches, and takes a third of a second for each on one of this
 * machine's two cores, beside the kernels. A run measured before then times the JIT's
 * work, not the engine's (README, "Warmed up until the JIT is quiet").
 *
 * <p>Observations come from one thread; a total below zero (a JVM that does not say) is always
 * quiet: the warm-up then rests on its time floor alone.
 */
final class JitQuiet {
    private final long quietNanos;
    private final long compileMillis;
    private long quietSince;
    private long counted;

    /** Starts watching at {@code now} (nanoseconds), the JVM's total then {@code compiledMillis}. */
    JitQuiet(long quietNanos, long compileMillis, long now, long compiledMillis) {
        if (quietNanos <= 0 || compileMillis < 0) {
            throw new IllegalArgumentException("a quiet spell of " + quietNanos + " ns with at most " + compileMillis
                    + " ms of compilation: the spell must be positive, the compilation not negative");
        }
        this.quietNanos = quietNanos;
        this.compileMillis = compileMillis;
        this.quietSince = now;
        this.counted = compiledMillis;
    }

    /** Takes the JVM's total at {@code now}; returns whether it has been quiet for the whole spell by then. */
    boolean quietAt(long now, long compiledMillis) {
        if (compiledMillis < 0 || counted < 0) {
            return true;
        }
        if (compiledMillis - counted > compileMillis) {
            counted = compiledMillis;
            quietSince = now;
        }
        return now - quietSince >= quietNanos;
    }

    /** This JVM's total compilation time in milliseconds, or -1 where it does not say. */
    static long compiledMillis() {
        CompilationMXBean jit = ManagementFactory.getCompilationMXBean();
        return jit != null && jit.isCompilationTimeMonitoringSupported() ? jit.getTotalCompilationTime() : -1;
    }
}
