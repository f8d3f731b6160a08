package dev.hetmem.migrate;

import dev.hetmem.phys.BuddyAllocator;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * The engine's frame counts stay right when a release meets a bookkeeping bug (from a review of
 * placement): a count left over makes a full device wait for room that never comes.
 */
class FrameCountsTest {
    /** A run the allocator refuses to take back (freed twice) is uncounted all the same. */
    @Test
    void aRefusedFreeIsUncountedAllTheSame() {
        BuddyAllocator alloc = new BuddyAllocator(1024);
        InFlightFrames inFlight = new InFlightFrames(2);
        int f = inFlight.allocate(alloc, 1, 3);
        assertEquals(8, inFlight.get(1));
        inFlight.free(alloc, 1, f, 8);
        assertEquals(0, inFlight.get(1));
        int g = inFlight.allocate(alloc, 1, 3);   // counted again; freed behind the count's back (a bug), then through it
        alloc.freeRun(g, 8);
        assertThrows(RuntimeException.class, () -> inFlight.free(alloc, 1, g, 8));
        assertEquals(0, inFlight.get(1), "uncounted although the allocator refused the run");
    }

    /** Frames kept for running kernels are marked all or none: one kept already leaves the others unmarked. */
    @Test
    void keepingMarksAllOrNone() {
        KeptFrames kept = new KeptFrames(2);
        kept.keep(1, new int[] {5});
        assertThrows(IllegalStateException.class, () -> kept.keep(1, new int[] {3, 4, 5, 6}));
        assertFalse(kept.on(1).get(3), "nothing of the refused call marked");
        assertFalse(kept.on(1).get(6));
        assertEquals(1, kept.on(1).cardinality());
    }

    /**
     * A compaction that gives its claimed frames back gives every range back, whatever an earlier
     * one's release threw: it stopped at the first, and the rest stayed allocated and counted.
     */
    @Test
    void aCompactionsClaimsAreAllReleasedWhateverOneThrows() {
        BuddyAllocator alloc = new BuddyAllocator(1024);
        InFlightFrames inFlight = new InFlightFrames(2);
        Compaction.Claims claims = new Compaction.Claims();
        int[] runs = new int[3];
        for (int i = 0; i < 3; i++) {
            runs[i] = inFlight.allocate(alloc, 1, 3);
            claims.add(runs[i], 8);
        }
        alloc.freeRun(runs[0], 8);   // the first range freed behind the claims' back (a bug)
        assertThrows(RuntimeException.class, () -> claims.release(inFlight, alloc, 1));
        assertEquals(0, inFlight.get(1), "every range uncounted");
        assertEquals(1024, alloc.freeFrames(), "the later ranges freed too");
    }

    /**
     * An undo's frames go back stretch by stretch whatever one stretch's release threw: it stopped at
     * the first refused stretch, leaving the rest of the run (and the undo's later steps) undone.
     */
    @Test
    void anUndosFramesAllGoBackWhateverOneStretchsReleaseThrows() {
        BuddyAllocator alloc = new BuddyAllocator(1024);
        int a = alloc.allocate(3);
        int b = alloc.allocate(3);
        int[] frames = new int[16];
        for (int i = 0; i < 8; i++) {
            frames[i] = b + i;   // b's stretch first, then a's: two stretches unless they happen to adjoin in this order
            frames[8 + i] = a + i;
        }
        alloc.freeRun(b, 8);   // the first stretch freed behind the run's back (a bug)
        assertThrows(RuntimeException.class, () -> FrameReleases.free(alloc, frames, 16));
        assertEquals(1024, alloc.freeFrames(), "the second stretch went back too");
    }

    /**
     * A copy worker lives through a stray interrupt (code that interrupts every thread): it ended,
     * and the next parallel copy's share stayed queued for no one while its caller waited for good
     * under its block locks. From a review of the copy path.
     */
    @Test
    void aCopyWorkerLivesThroughAStrayInterrupt() {
        CopyPool pool = new CopyPool(2);
        try {
            for (Thread t : Thread.getAllStackTraces().keySet()) {
                if (t.getName().startsWith("hetmem-copy-")) {
                    t.interrupt();
                }
            }
            java.util.concurrent.atomic.AtomicInteger ran = new java.util.concurrent.atomic.AtomicInteger();
            for (int round = 0; round < 3; round++) {
                org.junit.jupiter.api.Assertions.assertTimeoutPreemptively(java.time.Duration.ofSeconds(10),
                        () -> pool.runAll(new Runnable[] {ran::incrementAndGet, ran::incrementAndGet}));
            }
            assertEquals(6, ran.get());
        } finally {
            pool.close();
        }
    }
}
