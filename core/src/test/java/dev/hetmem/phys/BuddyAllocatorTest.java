package dev.hetmem.phys;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Tag("emulated") // no device involved
class BuddyAllocatorTest {

    @Test
    void allocatesAlignedBlocksUntilFullThenCoalescesBack() {
        BuddyAllocator a = new BuddyAllocator(4096);
        List<Integer> got = new ArrayList<>();
        int f;
        while ((f = a.allocate(9)) >= 0) {
            assertEquals(0, f % 512, "2 MiB blocks are 2 MiB aligned");
            got.add(f);
        }
        assertEquals(8, got.size());
        assertEquals(0, a.freeFrames());
        assertEquals(-1, a.allocate(0));
        for (int g : got) {
            a.free(g, 9);
        }
        assertEquals(4096, a.freeFrames());
        // after freeing single frames of a big block, the whole block is available again
        int big = a.allocate(9);
        for (int i = 0; i < 512; i++) {
            a.free(big + i, 0);
        }
        assertEquals(4096, a.freeFrames());
        for (int i = 0; i < 8; i++) {
            assertTrue(a.allocate(9) >= 0, "2 MiB block " + i + " after coalescing");
        }
    }

    @Test
    void randomAllocationsNeverOverlapAndAllFramesComeBack() {
        BuddyAllocator a = new BuddyAllocator(3000);   // not a power of two
        SplittableRandom rnd = new SplittableRandom(42);
        BitSet used = new BitSet();
        List<int[]> live = new ArrayList<>();
        for (int k = 0; k < 20000; k++) {
            if (live.isEmpty() || rnd.nextInt(3) > 0) {
                int order = rnd.nextInt(10);
                int f = a.allocate(order);
                if (f < 0) {
                    continue;
                }
                assertEquals(0, f & ((1 << order) - 1), "aligned");
                assertTrue(f + (1 << order) <= 3000, "inside the device");
                for (int i = f; i < f + (1 << order); i++) {
                    assertTrue(!used.get(i), "frame " + i + " handed out twice");
                    used.set(i);
                }
                live.add(new int[] {f, order});
            } else {
                int[] b = live.remove(rnd.nextInt(live.size()));
                a.freeRun(b[0], 1 << b[1]);
                used.clear(b[0], b[0] + (1 << b[1]));
            }
            assertEquals(3000 - used.cardinality(), a.freeFrames());
        }
        for (int[] b : live) {
            a.freeRun(b[0], 1 << b[1]);
        }
        assertEquals(3000, a.freeFrames());
    }

    @Test
    void refusesBadFreesAndSizes() {
        BuddyAllocator a = new BuddyAllocator(1024);
        int f = a.allocate(2);
        a.free(f, 2);
        assertThrows(IllegalStateException.class, () -> a.free(f, 2));
        assertThrows(IllegalArgumentException.class, () -> a.free(3, 2));
        assertThrows(IllegalArgumentException.class, () -> a.allocate(10));
        assertThrows(IllegalArgumentException.class, () -> new BuddyAllocator(0));
        assertThrows(IllegalArgumentException.class, () -> new BuddyAllocator(1L << 32));
    }

    @Test
    void freeAllFreesEveryStretchAndReportsADoubleFreeAfterTheRest() {
        BuddyAllocator a = new BuddyAllocator(1024);
        int[] taken = new int[64];
        for (int i = 0; i < taken.length; i++) {
            taken[i] = a.allocate(0);
        }
        a.free(taken[10], 0);   // freed already: the stretch holding it is a double free
        // the first half out of order (no two consecutive), the second one stretch of 32
        int[] frames = new int[64];
        for (int i = 0; i < 32; i++) {
            frames[i] = taken[(i * 13) % 32];
            frames[32 + i] = taken[32 + i];
        }
        var e = assertThrows(IllegalStateException.class, () -> a.freeAll(frames, 64));
        assertTrue(e.getMessage().contains("double free"), e.getMessage());
        assertEquals(1024, a.freeFrames(), "every other frame freed although one stretch failed");
        assertTrue(a.allocate(BuddyAllocator.MAX_ORDER) >= 0 && a.allocate(BuddyAllocator.MAX_ORDER) >= 0,
                "and coalesced back into whole blocks");
    }

    /**
     * A run with one frame freed already: the block holding it goes back frame by frame, the rest of
     * the run too, and the double free is reported after (the first refused block stopped the run,
     * and every frame of it and after it stayed allocated for good).
     */
    @Test
    void aRunWithAFrameFreedAlreadyFreesEveryOtherFrameAndReportsTheDoubleFree() {
        for (int freedAlready : new int[] {0, 5, 16, 31}) {
            BuddyAllocator a = new BuddyAllocator(1024);
            int base = a.allocateContiguous(32, 1024);
            assertTrue(base >= 0 && base % 32 == 0, "a run of 32 frames at " + base);
            a.free(base + freedAlready, 0);
            var e = assertThrows(IllegalStateException.class, () -> a.freeRun(base, 32));
            assertTrue(e.getMessage().contains("double free"), e.getMessage());
            assertEquals(1024, a.freeFrames(), "frame " + freedAlready + " freed twice: every other frame of the run freed");
            assertTrue(a.allocate(BuddyAllocator.MAX_ORDER) >= 0 && a.allocate(BuddyAllocator.MAX_ORDER) >= 0,
                    "and coalesced back into whole blocks");
        }
    }

    /**
     * Runs of any length, mixed at random with block allocations and frees, checked against a
     * bitmap of every frame: a run is consecutive free frames within one boundary stretch, found
     * whenever the model has such a stretch, and everything frees back to one whole device.
     */
    @Test
    void contiguousRunsOfAnyLengthAgreeWithAFrameModel() {
        SplittableRandom rnd = new SplittableRandom(42);
        int frames = 4096 + 300;   // a tail that is no whole block
        int boundary = 2048;
        BuddyAllocator a = new BuddyAllocator(frames);
        BitSet used = new BitSet(frames);
        List<int[]> held = new ArrayList<>();   // {first, count}
        for (int step = 0; step < 20_000; step++) {
            int op = rnd.nextInt(3);
            if (op == 0) {
                int n = 1 + rnd.nextInt(rnd.nextBoolean() ? 8 : 1500);
                int f = a.allocateContiguous(n, boundary);
                boolean exists = hasStretch(used, frames, n, boundary);
                assertEquals(exists, f >= 0, "a free stretch of " + n + " exists: " + exists + ", allocator gave " + f);
                if (f >= 0) {
                    assertEquals(f / boundary, (f + n - 1) / boundary, "run " + f + "+" + n + " crosses a boundary");
                    assertTrue(used.get(f, f + n).isEmpty(), "run " + f + "+" + n + " overlaps used frames");
                    used.set(f, f + n);
                    held.add(new int[] {f, n});
                }
            } else if (op == 1) {
                allocateBlock(a, rnd.nextInt(4), used, held);
            } else if (!held.isEmpty()) {
                int[] h = held.remove(rnd.nextInt(held.size()));
                // free a random part, keep the rest held
                int cut = rnd.nextInt(h[1] + 1);
                if (cut > 0) {
                    a.freeRun(h[0], cut);
                    used.clear(h[0], h[0] + cut);
                }
                if (cut < h[1]) {
                    held.add(new int[] {h[0] + cut, h[1] - cut});
                }
            }
            assertEquals(frames - used.cardinality(), a.freeFrames(), "free frames after step " + step);
        }
        for (int[] h : held) {
            a.freeRun(h[0], h[1]);
        }
        assertEquals(frames, a.freeFrames());
        assertEquals(0, a.allocateContiguous(boundary, boundary), "everything coalesced: the first stretch is whole");
        assertThrows(IllegalArgumentException.class, () -> a.allocateContiguous(0, 512));
    }

    /**
     * Exact ranges (compaction's claims) against a model of every frame: a range is granted exactly
     * when all of its frames are free, never overlaps anything held, and the free stretches the
     * allocator reports are the model's; everything coalesces back at the end.
     */
    @Test
    void exactRangesAgreeWithAFrameModel() {
        SplittableRandom rnd = new SplittableRandom(7);
        int frames = 4096 + 300;
        BuddyAllocator a = new BuddyAllocator(frames);
        BitSet used = new BitSet(frames);
        List<int[]> held = new ArrayList<>();
        for (int step = 0; step < 20_000; step++) {
            int op = rnd.nextInt(3);
            if (op == 0) {
                int n = 1 + rnd.nextInt(rnd.nextBoolean() ? 4 : 700);
                int f = rnd.nextInt(frames - n + 1);
                boolean free = used.get(f, f + n).isEmpty();
                assertEquals(free, a.allocateRange(f, n), "frames " + f + "+" + n + " free in the model: " + free);
                if (free) {
                    used.set(f, f + n);
                    held.add(new int[] {f, n});
                }
            } else if (op == 1) {
                allocateBlock(a, rnd.nextInt(5), used, held);
            } else if (!held.isEmpty()) {
                int[] h = held.remove(rnd.nextInt(held.size()));
                a.freeRun(h[0], h[1]);
                used.clear(h[0], h[0] + h[1]);
            }
            assertEquals(frames - used.cardinality(), a.freeFrames(), "free frames after step " + step);
            if (step % 1000 == 0) {
                long[] stretches = a.freeStretchesNow();
                BitSet free = new BitSet(frames);
                for (int i = 0; i < stretches.length; i += 2) {
                    free.set((int) stretches[i], (int) stretches[i + 1]);
                }
                BitSet want = (BitSet) used.clone();
                want.flip(0, frames);
                assertEquals(want, free, "free stretches after step " + step);
            }
        }
        for (int[] h : held) {
            a.freeRun(h[0], h[1]);
        }
        assertEquals(frames, a.freeFrames());
        org.junit.jupiter.api.Assertions.assertArrayEquals(new long[] {0, frames}, a.freeStretchesNow(), "everything coalesced");
        assertThrows(IllegalArgumentException.class, () -> a.allocateRange(frames - 1, 2));
        assertThrows(IllegalArgumentException.class, () -> a.allocateRange(0, 0));
    }

    /** A block of {@code 2^order} frames from the allocator, checked against and added to the model. */
    private static void allocateBlock(BuddyAllocator a, int order, BitSet used, List<int[]> held) {
        int f = a.allocate(order);
        if (f >= 0) {
            assertTrue(used.get(f, f + (1 << order)).isEmpty(), "block " + f + " overlaps used frames");
            used.set(f, f + (1 << order));
            held.add(new int[] {f, 1 << order});
        }
    }

    private static boolean hasStretch(BitSet used, int frames, int n, int boundary) {
        for (int s = 0; s + n <= frames; s++) {
            if (s / boundary == (s + n - 1) / boundary && used.get(s, s + n).isEmpty()) {
                return true;
            }
        }
        return false;
    }
}
