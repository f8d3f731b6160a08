package dev.hetmem.migrate;

import dev.hetmem.phys.BuddyAllocator;

import java.util.concurrent.atomic.AtomicLongArray;

/**
 * Per device, frames that are neither free in the allocator nor resident in any page table right
 * now: allocated by batches that have not committed or undone yet, or left residency and not yet
 * freed (see {@link FrameReleases}). Room that will come back without the looking thread's help,
 * so eviction retries instead of declaring the device full.
 *
 * <p>Invariant: a frame is counted here before it leaves the allocator or residency, and uncounted
 * only after it is back in one of them; so a thread that reads this count and then scans the
 * residents never misses a frame.
 */
final class InFlightFrames {
    private final AtomicLongArray frames;

    InFlightFrames(int nodes) {
        this.frames = new AtomicLongArray(nodes);
    }

    void add(int node, long n) {
        frames.addAndGet(node, n);
    }

    long get(int node) {
        return frames.get(node);
    }

    /** Allocates 2^order frames, counted before they leave the allocator; -1 (nothing counted) if none. */
    int allocate(BuddyAllocator alloc, int node, int order) {
        frames.addAndGet(node, 1L << order);
        int f = alloc.allocate(order);
        if (f < 0) {
            frames.addAndGet(node, -(1L << order));
        }
        return f;
    }

    /**
     * {@link BuddyAllocator#allocateUpTo}: 2^maxOrder counted before, the part not granted uncounted
     * after; -1 (nothing counted) if no frame is free.
     */
    long allocateUpTo(BuddyAllocator alloc, int node, int maxOrder) {
        frames.addAndGet(node, 1L << maxOrder);
        long got = alloc.allocateUpTo(maxOrder);
        frames.addAndGet(node, -((1L << maxOrder) - (got < 0 ? 0 : 1L << (got & 15))));
        return got;
    }

    /**
     * Frames [first, first + count), taken by one of the calls here, back to the allocator, then
     * uncounted, also when the allocator refuses them (a double free, a bug already): a count left
     * over would make a full device wait for room that never comes, every allocation on it.
     */
    void free(BuddyAllocator alloc, int node, int first, int count) {
        try {
            alloc.freeRun(first, count);
        } finally {
            frames.addAndGet(node, -count);
        }
    }

    /** Allocates frames [first, first + count) if all are free, counted as {@link #allocate} does; false (nothing counted) if not. */
    boolean allocateRange(BuddyAllocator alloc, int node, int first, int count) {
        frames.addAndGet(node, count);
        boolean got = alloc.allocateRange(first, count);
        if (!got) {
            frames.addAndGet(node, -count);
        }
        return got;
    }

    /** Allocates {@code count} consecutive frames within {@code boundary}, counted as {@link #allocate} does; -1 if none. */
    int allocateContiguous(BuddyAllocator alloc, int node, int count, int boundary) {
        frames.addAndGet(node, count);
        int f = alloc.allocateContiguous(count, boundary);
        if (f < 0) {
            frames.addAndGet(node, -count);
        }
        return f;
    }
}
