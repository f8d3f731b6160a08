package dev.hetmem.cli;

import org.junit.jupiter.api.Test;

import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The benches' warm-up of a new JVM: at least the runs asked for, on until they took
 * {@link CaseJvm#WARM_UP_NANOS}, one run for a slow case, none when none is asked for, and a wrong
 * result in any warm-up run reported.
 */
class CaseJvmWarmUpTest {
    /** A case that takes {@code millis} a run and says whether it was correct: the {@code wrongAt}th run is not (0: none). */
    private static Supplier<Map<String, Object>> run(AtomicInteger calls, long millis, int wrongAt) {
        return () -> {
            int n = calls.incrementAndGet();
            try {
                Thread.sleep(millis);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            return Map.of("correct", n != wrongAt);
        };
    }

    @Test
    void shortRunsGoOnUntilTheWarmUpTimeIsSpent() {
        AtomicInteger calls = new AtomicInteger();
        long t0 = System.nanoTime();
        assertTrue(CaseJvm.warmUp(run(calls, 50, 0), 3, Long.MAX_VALUE));
        long took = System.nanoTime() - t0;
        assertTrue(took >= CaseJvm.WARM_UP_NANOS, "warm-up took " + took + " ns");
        assertTrue(calls.get() > 3, calls.get() + " runs of 50 ms: more than the three asked for");
    }

    @Test
    void longRunsStopAtTheCountAskedFor() {
        AtomicInteger calls = new AtomicInteger();
        assertTrue(CaseJvm.warmUp(run(calls, CaseJvm.WARM_UP_NANOS / 1_000_000L / 2 + 10, 0), 3, Long.MAX_VALUE));
        assertEquals(3, calls.get(), "three runs of over half the warm-up time each");
    }

    @Test
    void aSlowCaseIsWarmAfterOneRun() {
        AtomicInteger calls = new AtomicInteger();
        assertTrue(CaseJvm.warmUp(run(calls, 30, 0), 3, 10_000_000L));
        assertEquals(1, calls.get());
    }

    @Test
    void onlyASlowFirstRunCutsTheWarmUpShort() {
        AtomicInteger calls = new AtomicInteger();
        Supplier<Map<String, Object>> fastThenSlow = () -> {
            int n = calls.incrementAndGet();
            try {
                Thread.sleep(n == 1 ? 1 : 800);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            return Map.of("correct", true);
        };
        assertTrue(CaseJvm.warmUp(fastThenSlow, 3, 300_000_000L));
        assertEquals(3, calls.get(), "a fast first run: the count asked for, even though later runs are slow");
    }

    @Test
    void noWarmUpAskedForRunsNothing() {
        AtomicInteger calls = new AtomicInteger();
        assertTrue(CaseJvm.warmUp(run(calls, 1, 0), 0, Long.MAX_VALUE));
        assertEquals(0, calls.get());
    }

    @Test
    void aWrongResultInAnyWarmUpRunIsReported() {
        AtomicInteger calls = new AtomicInteger();
        assertFalse(CaseJvm.warmUp(run(calls, 600, 2), 3, Long.MAX_VALUE));
        assertEquals(3, calls.get(), "the runs after the wrong one still ran");
    }
}
