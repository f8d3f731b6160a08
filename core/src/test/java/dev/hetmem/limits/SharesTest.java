package dev.hetmem.limits;

import org.junit.jupiter.api.Test;

import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A measurement over threads ends only once every share has: the shares use memory the caller
 * frees right after (a copy into an unmapped buffer crashes the JVM).
 */
class SharesTest {
    /** Busy for about {@code millis}, counted as ended after. */
    private static void busy(long millis, AtomicInteger ended) {
        long until = System.nanoTime() + millis * 1_000_000L;
        while (System.nanoTime() < until) {
            Thread.onSpinWait();
        }
        ended.incrementAndGet();
    }

    @Test
    void anInterruptOfTheCallerWaitsForEveryShareAndKeepsTheFlag() throws Exception {
        AtomicInteger ended = new AtomicInteger();
        AtomicInteger endedAtThrow = new AtomicInteger(-1);
        Thread caller = Thread.currentThread();
        Thread interrupter = Thread.ofPlatform().start(() -> {
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                return;
            }
            caller.interrupt();
        });
        try {
            // share 0 (the caller's) ends first; the others run on after the interrupt
            var e = assertThrows(IllegalStateException.class, () -> Shares.timed(3, t -> busy(t == 0 ? 100 : 400, ended)));
            endedAtThrow.set(ended.get());
            assertTrue(e.getMessage().contains("interrupted"), e.getMessage());
            assertTrue(Thread.currentThread().isInterrupted(), "the caller's interrupt is kept");
        } finally {
            Thread.interrupted();
            interrupter.join();
        }
        assertEquals(3, endedAtThrow.get(), "shares still running when the measurement threw");
    }

    @Test
    void aShareThatFailsFailsTheMeasurementOnceTheOthersEnded() {
        AtomicInteger ended = new AtomicInteger();
        var e = assertThrows(IllegalArgumentException.class, () -> Shares.timed(3, t -> {
            if (t == 1) {
                throw new IllegalArgumentException("share 1 failed");
            }
            busy(200, ended);
        }));
        assertEquals("share 1 failed", e.getMessage());
        assertEquals(2, ended.get(), "the other shares ended before it threw");
        // and the caller's own failure waits for the others too
        ended.set(0);
        var own = assertThrows(IllegalStateException.class, () -> Shares.timed(3, t -> {
            if (t == 0) {
                throw new IllegalStateException("share 0 failed");
            }
            busy(200, ended);
        }));
        assertEquals("share 0 failed", own.getMessage());
        assertEquals(2, ended.get(), "the other shares ended before it threw");
    }

    @Test
    void aMeasurementTimesEveryShare() {
        AtomicInteger ended = new AtomicInteger();
        long nanos = Shares.timed(4, t -> busy(20L * (t + 1), ended));
        assertEquals(4, ended.get());
        assertTrue(nanos >= 80_000_000L, "timed until the longest share ended: " + nanos);
    }
}
