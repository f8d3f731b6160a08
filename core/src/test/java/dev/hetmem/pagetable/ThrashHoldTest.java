package dev.hetmem.pagetable;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Thrashing control's hold of a block at home, over the whole range of System.nanoTime. */
class ThrashHoldTest {
    private static final long WINDOW = 200_000_000L;
    private static final long HOLD = 1_000_000_000L;

    /** Three bounces within the window hold the block home for the hold, then it may move again. */
    @Test
    void threeBouncesHoldTheBlockHomeForTheHold() {
        assertHeldFor(1_000L);
    }

    /**
     * The clock's values are compared by their difference: near Long.MAX_VALUE the end of the hold
     * (now + hold) wrapped negative and the block was never held.
     */
    @Test
    void aHoldThatEndsPastTheClocksLargestValueHolds() {
        assertHeldFor(Long.MAX_VALUE - 500_000_000L);
    }

    private static void assertHeldFor(long start) {
        Block b = new PageTable(2L << 20, 2).blockOrCreate(0);
        b.lock.lock();
        try {
            long t = start;
            boolean thrashed = false;
            for (int i = 0; i < 4 && !thrashed; i++) {
                thrashed = b.recordMove(i % 2, t, WINDOW, HOLD);
                t += 1_000_000L;
            }
            assertTrue(thrashed, "four moves between two nodes within the window thrash");
            assertTrue(b.heldHome(t), "held just after");
            assertTrue(b.heldHome(t + HOLD / 2), "held half-way through the hold");
            assertFalse(b.heldHome(t + HOLD), "free once the hold is over");
        } finally {
            b.lock.unlock();
        }
    }
}
