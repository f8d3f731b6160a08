package dev.hetmem.cli;

import org.junit.jupiter.api.Test;

import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntToLongFunction;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The benches' warm-up of a new JVM: at least the runs asked for, on until they took the time
 * floor and the JIT has been quiet for the quiet spell (at most the limit's time), one run for a
 * slow case, none when none is asked for, and a wrong result in any warm-up run reported. The
 * JIT here is a script of compilation totals, one per run.
 */
class CaseJvmWarmUpTest {
    /** Short limits: a 300 ms floor, a 200 ms quiet spell with at most 20 ms compiled, 2 s at most. */
    private static final CaseJvm.WarmUpLimits SHORT = new CaseJvm.WarmUpLimits(300_000_000L, 200_000_000L, 20, 2_000_000_000L);

    /**
     * A case that takes {@code millis} a run, is wrong in its {@code wrongAt}th run (0: never), and
     * whose JVM has compiled {@code compiled.applyAsLong(n)} ms in all after its {@code n}th run.
     */
    private static CaseRunner runner(AtomicInteger calls, long millis, int wrongAt, IntToLongFunction compiled) {
        return new CaseRunner() {
            @Override
            public Map<String, Object> run() {
                throw new AssertionError("a warm-up makes warm-up runs only");
            }

            @Override
            public Map<String, Object> warm() {
                int n = calls.incrementAndGet();
                try {
                    Thread.sleep(millis);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                return Map.of("correct", n != wrongAt);
            }

            @Override
            public long compiledMillis() {
                return compiled.applyAsLong(calls.get());
            }

            @Override
            public void close() {
            }
        };
    }

    private static CaseRunner runner(AtomicInteger calls, long millis, int wrongAt) {
        return runner(calls, millis, wrongAt, n -> 1000);
    }

    @Test
    void shortRunsGoOnUntilTheFloorAndAQuietSpellHavePassed() {
        AtomicInteger calls = new AtomicInteger();
        long t0 = System.nanoTime();
        CaseJvm.WarmUp w = CaseJvm.warmUp(runner(calls, 20, 0), 3, Long.MAX_VALUE, SHORT);
        long took = System.nanoTime() - t0;
        assertTrue(w.correct());
        assertTrue(w.quiet(), "a JIT that compiles nothing is quiet");
        assertTrue(took >= SHORT.floorNanos() + SHORT.quietNanos(), "warm-up took " + took + " ns");
        assertTrue(w.nanos() >= SHORT.floorNanos() + SHORT.quietNanos() && w.nanos() <= took, w.nanos() + " ns counted");
        assertTrue(calls.get() > 3, calls.get() + " runs of 20 ms: more than the three asked for");
    }

    @Test
    void theBenchesLimitsWaitForTheJitAfterTheirFloor() {
        AtomicInteger calls = new AtomicInteger();
        long t0 = System.nanoTime();
        CaseJvm.WarmUp w = CaseJvm.warmUp(runner(calls, 50, 0), 3, Long.MAX_VALUE);
        long took = System.nanoTime() - t0;
        assertTrue(w.quiet());
        assertTrue(took >= CaseJvm.WARM_UP_NANOS + CaseJvm.QUIET_NANOS, "warm-up took " + took + " ns");
    }

    @Test
    void aJitStillCompilingHoldsTheWarmUpUntilItIsQuiet() {
        AtomicInteger calls = new AtomicInteger();
        // 30 ms more compiled after each of the first 40 runs of 20 ms (about 0.9 s), then nothing; the
        // limit far off, so that slow sleeps on a busy machine do not reach it
        CaseJvm.WarmUpLimits roomy = new CaseJvm.WarmUpLimits(SHORT.floorNanos(), SHORT.quietNanos(), SHORT.quietCompileMillis(),
                20_000_000_000L);
        CaseJvm.WarmUp w = CaseJvm.warmUp(runner(calls, 20, 0, n -> 30L * Math.min(n, 40)), 3, Long.MAX_VALUE, roomy);
        assertTrue(w.quiet());
        assertTrue(calls.get() > 40, calls.get() + " runs: the warm-up ended while the JIT still compiled");
        // quiet from the 40th run on: a spell later it ends (runs of 20 ms, with a margin for slow sleeps)
        assertTrue(calls.get() <= 40 + 2 * SHORT.quietNanos() / 20_000_000L, calls.get() + " runs");
    }

    @Test
    void smallCompilationsDoNotHoldTheWarmUp() {
        AtomicInteger calls = new AtomicInteger();
        // 1 ms more after every run: no spell of 200 ms sees more than the 20 ms allowed
        CaseJvm.WarmUp w = CaseJvm.warmUp(runner(calls, 20, 0, n -> n), 3, Long.MAX_VALUE, SHORT);
        assertTrue(w.quiet());
        assertTrue(w.nanos() < SHORT.maxNanos(), w.nanos() + " ns");
    }

    @Test
    void aJitThatNeverGoesQuietEndsAtTheLimitAndSaysSo() {
        AtomicInteger calls = new AtomicInteger();
        CaseJvm.WarmUp w = CaseJvm.warmUp(runner(calls, 20, 0, n -> 50L * n), 3, Long.MAX_VALUE, SHORT);
        assertFalse(w.quiet());
        assertTrue(w.correct());
        assertTrue(w.nanos() >= SHORT.maxNanos() && w.nanos() < SHORT.maxNanos() + 500_000_000L, w.nanos() + " ns");
    }

    @Test
    void theRunsAskedForAllRunEvenPastTheLimit() {
        AtomicInteger calls = new AtomicInteger();
        // runs of 800 ms with the JIT never quiet: the 2 s limit passes during the third, the fourth is asked for
        CaseJvm.WarmUp w = CaseJvm.warmUp(runner(calls, 800, 0, n -> 50L * n), 4, Long.MAX_VALUE, SHORT);
        assertEquals(4, calls.get());
        assertFalse(w.quiet());
    }

    @Test
    void aQuietSpellOfZeroWarmsUpForTheFloorAlone() {
        // the runs asked for and the floor's time, the JIT not waited for however busy
        CaseJvm.WarmUpLimits floorOnly = new CaseJvm.WarmUpLimits(CaseJvm.WARM_UP_NANOS, 0, 0, CaseJvm.WARM_UP_NANOS);
        AtomicInteger calls = new AtomicInteger();
        long t0 = System.nanoTime();
        CaseJvm.warmUp(runner(calls, 50, 0, n -> 100L * n), 3, Long.MAX_VALUE, floorOnly);
        long took = System.nanoTime() - t0;
        assertTrue(took >= CaseJvm.WARM_UP_NANOS && took < CaseJvm.WARM_UP_NANOS + 1_000_000_000L, took + " ns");
        AtomicInteger few = new AtomicInteger();
        long runMillis = CaseJvm.WARM_UP_NANOS / 1_000_000L / 2 + 10;
        CaseJvm.warmUp(runner(few, runMillis, 0, n -> 100L * n), 3, Long.MAX_VALUE, floorOnly);
        assertEquals(3, few.get(), "three runs asked for, the floor passed during the second");
    }

    @Test
    void aJvmThatDoesNotSayWhatItCompiledIsWarmAfterTheFloor() {
        AtomicInteger calls = new AtomicInteger();
        CaseJvm.WarmUp w = CaseJvm.warmUp(runner(calls, 20, 0, n -> -1), 3, Long.MAX_VALUE, SHORT);
        assertTrue(w.quiet());
        assertTrue(w.nanos() >= SHORT.floorNanos() && w.nanos() < SHORT.floorNanos() + SHORT.quietNanos(), w.nanos() + " ns");
    }

    @Test
    void longRunsStopAtTheCountAskedFor() {
        AtomicInteger calls = new AtomicInteger();
        long millis = (SHORT.floorNanos() + SHORT.quietNanos()) / 1_000_000L / 2 + 10;
        assertTrue(CaseJvm.warmUp(runner(calls, millis, 0), 3, Long.MAX_VALUE, SHORT).correct());
        assertEquals(3, calls.get(), "three runs of over half the floor and the quiet spell each, the JIT quiet");
    }

    @Test
    void aSlowCaseIsWarmAfterOneRun() {
        AtomicInteger calls = new AtomicInteger();
        CaseJvm.WarmUp w = CaseJvm.warmUp(runner(calls, 30, 0, n -> 50L * n), 3, 10_000_000L, SHORT);
        assertTrue(w.correct());
        assertFalse(w.quiet(), "the JIT was not watched");
        assertEquals(1, calls.get());
    }

    @Test
    void onlyASlowFirstRunCutsTheWarmUpShort() {
        AtomicInteger calls = new AtomicInteger();
        CaseRunner fastThenSlow = new CaseRunner() {
            @Override
            public Map<String, Object> run() {
                throw new AssertionError();
            }

            @Override
            public Map<String, Object> warm() {
                int n = calls.incrementAndGet();
                try {
                    Thread.sleep(n == 1 ? 1 : 400);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                return Map.of("correct", true);
            }

            @Override
            public long compiledMillis() {
                return 0;
            }

            @Override
            public void close() {
            }
        };
        assertTrue(CaseJvm.warmUp(fastThenSlow, 3, 300_000_000L, SHORT).correct());
        assertEquals(3, calls.get(), "a fast first run: the count asked for, even though later runs are slow");
    }

    @Test
    void noWarmUpAskedForRunsNothing() {
        AtomicInteger calls = new AtomicInteger();
        CaseJvm.WarmUp w = CaseJvm.warmUp(runner(calls, 1, 0), 0, Long.MAX_VALUE, SHORT);
        assertTrue(w.correct());
        assertFalse(w.quiet(), "no JIT seen quiet where none was watched");
        assertEquals(0, calls.get());
    }

    @Test
    void aWrongResultInAnyWarmUpRunIsReported() {
        AtomicInteger calls = new AtomicInteger();
        assertFalse(CaseJvm.warmUp(runner(calls, 400, 2), 3, Long.MAX_VALUE, SHORT).correct());
        assertEquals(3, calls.get(), "the runs after the wrong one still ran");
    }

    @Test
    void aQuietSpellMustBePositive() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new JitQuiet(0, 20, 0, 0));
        assertTrue(e.getMessage().contains("0 ns"), e.getMessage());
    }
}
