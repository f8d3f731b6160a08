package dev.hetmem.migrate;

import dev.hetmem.internal.DeviceNode;
import dev.hetmem.internal.ResidencyRegistry;
import dev.hetmem.pagetable.Block;
import dev.hetmem.phys.BuddyAllocator;

import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;

import static dev.hetmem.driver.PageGeometry.firstPage;

/**
 * Compaction for a plain argument on a fragmented device: free frames enough for its run, but no
 * free stretch long enough. The pages holding a window of frames move to free frames outside it,
 * device to device ({@link Action#RELOCATE}), and the window becomes the argument's run: nothing
 * leaves the device, where eviction would send cold pages home until a run came free. The kernel's
 * compaction does the same within a zone to make a high-order block.
 *
 * <p>Caller's contract: the allocate phase of a batch ({@link Placement}'s run for a span) whose
 * block locks this thread holds, on a device whose driver copies within its memory. The pages that
 * move are of other blocks, taken with {@code tryLock} only (never waited for, as eviction takes
 * its victims), and moved by batches of their own through the usual phases. Returns the window's
 * first frame with its {@code n} frames allocated, counted in flight and prepared by the driver, or
 * -1 with none of them kept (some pages may have moved within the device: harmless).
 *
 * <p>Steps, one function each:
 * <ol>
 *   <li>{@link #chooseWindow}: a map of the device's frames, each free, movable (held by a
 *       resident page that no kernel of the device holds, of a block no thread holds) or fixed
 *       (anything else: the caller's blocks, frames in flight or kept for running kernels, pinned
 *       pages), and the window of {@code n} frames within one {@code contiguousFrames} stretch with
 *       no fixed frame and the fewest movable ones, if the free frames outside it can take them.
 *       The map is a snapshot: the claims below decide.</li>
 *   <li>{@link #claimFree}: the window's free frames are claimed, so that nothing, the moves
 *       included, takes them.</li>
 *   <li>{@link #moveOut}: per block with pages in the window, one batch of RELOCATE runs (its
 *       allocate phase gives them frames outside the window, the window's being claimed, and
 *       evicts nothing: {@link MigrationBatch#withinDevice}); the frames they leave are claimed as
 *       they come free.</li>
 * </ol>
 */
final class Compaction {
    private final EngineContext ctx;
    private final BatchRunner runner;

    Compaction(EngineContext ctx, BatchRunner runner) {
        this.ctx = ctx;
        this.runner = runner;
    }

    /** Frames of the window this call holds, as first/count pairs, counted in flight. */
    static final class Claims {
        private int[] ranges = new int[16];
        private int size;
        private long frames;

        void add(int first, int count) {
            if (size == ranges.length) {
                ranges = java.util.Arrays.copyOf(ranges, 2 * size);
            }
            ranges[size++] = first;
            ranges[size++] = count;
            frames += count;
        }

        /**
         * Gives every claimed range back, whatever an earlier one's release threw (a range left
         * counted in flight would keep a full device waiting for room that never comes, as
         * {@link Placement#releaseRuns}); then throws the first failure.
         */
        void release(EngineContext ctx, int node) {
            release(ctx.inFlight, ctx.device(node).allocator(), node);
        }

        void release(InFlightFrames inFlight, BuddyAllocator alloc, int node) {
            Throwable failed = null;
            for (int i = 0; i < size; i += 2) {
                try {
                    inFlight.free(alloc, node, ranges[i], ranges[i + 1]);
                } catch (RuntimeException | AssertionError e) {   // an assertion too: the stress program runs with them
                    failed = CommitPhase.keep(failed, e);
                }
            }
            size = 0;
            frames = 0;
            if (failed instanceof Error e) {
                throw e;
            }
            if (failed != null) {
                throw (RuntimeException) failed;
            }
        }
    }

    /**
     * A run of {@code n} consecutive frames of device {@code node} made by moving pages out of a
     * window, or -1 (then eviction makes room: a compaction that fails, for whatever reason, leaves
     * the caller's batch as it found it).
     */
    int makeRun(int node, int n, int boundary) {
        DeviceNode dev = ctx.device(node);
        if (!dev.driver().canCopyWithin() || dev.allocator().freeFrames() < n) {
            return -1;   // the free frames could not hold the run even compacted: eviction's case
        }
        int base = chooseWindow(node, n, boundary);
        if (base < 0) {
            return -1;
        }
        Claims claims = new Claims();
        boolean done = false;
        Throwable failure = null;   // what the claims' release, should it fail too, is added to
        try {
            // its free frames, then its pages moved out (and their frames claimed), then its free frames
            // again: a page may have left it on its own meanwhile. The count of claimed frames decides.
            moveOut(node, base, n, claims, claimFree(node, base, n, claims));
            if (claimFree(node, base, n, claims) && claims.frames == n) {
                Placement.prepareAligned(dev, base, n);
                done = true;
                return base;
            }
            return -1;
        } catch (RuntimeException e) {
            // a move found no room after all, or failed (undone, nothing lost): eviction takes over.
            // Not a failure that carries another (an undo that failed, BatchRunner.run: pages may be
            // out of line with the table), nor any other kind: those reach the caller
            if (e.getSuppressed().length > 0 || !(e instanceof Eviction.RetryBatch
                    || e instanceof dev.hetmem.driver.DeviceMemoryException || e instanceof dev.hetmem.driver.DeviceCopyException)) {
                failure = e;
                throw e;
            }
            return -1;
        } catch (Error e) {
            failure = e;
            throw e;
        } finally {
            if (!done) {
                try {
                    claims.release(ctx, node);
                } catch (RuntimeException | AssertionError e) {
                    if (failure == null) {
                        throw e;
                    }
                    failure.addSuppressed(e);   // the failure that ended the compaction stays the one reported
                }
            }
        }
    }

    /**
     * Step 1: the window to clear, or -1 if every window holds a fixed frame or more to move than
     * fits elsewhere. The map is two bits a frame (free, movable; neither is fixed).
     */
    private int chooseWindow(int node, int n, int boundary) {
        BuddyAllocator alloc = ctx.device(node).allocator();
        int total = (int) alloc.totalFrames();
        BitSet free = new BitSet(total);
        BitSet movable = new BitSet(total);
        long[] stretches = alloc.freeStretchesNow();
        long freeFrames = 0;
        for (int i = 0; i < stretches.length; i += 2) {
            free.set((int) stretches[i], (int) stretches[i + 1]);
            freeFrames += stretches[i + 1] - stretches[i];
        }
        for (ResidencyRegistry.Resident v : ctx.residency.residents(node)) {
            Block b = v.block();
            if (b.lock.isHeldByCurrentThread() || !b.lock.tryLock()) {
                continue;   // the caller's, or another thread's: its frames stay fixed
            }
            try {
                int pages = v.region().table().pagesIn(b.index());
                long first = firstPage(b.index());
                // one look at the pins for the whole block; page by page only where a kernel of the device holds some
                boolean pinned = v.region().pins().on(node, first, first + pages) != null;
                for (int p = 0; p < pages && b.hasPagesOn(node); p++) {
                    if (b.isResident(node, p) && (!pinned || v.region().pins().on(node, first + p, first + p + 1) == null)) {
                        movable.set(b.frame(node, p));
                    }
                }
            } finally {
                b.lock.unlock();
            }
        }
        int best = -1;
        long bestMoves = Long.MAX_VALUE;
        for (int start = 0; start < total; start += boundary) {
            int end = (int) Math.min(total, (long) start + boundary);
            // slide a window of n over [start, end): counts of fixed, movable and free frames in it
            int fixed = 0;
            long moves = 0;
            long freeIn = 0;
            for (int f = start; f < end; f++) {
                fixed += kindOf(free, movable, f) == 0 ? 1 : 0;
                moves += kindOf(free, movable, f) == 2 ? 1 : 0;
                freeIn += kindOf(free, movable, f) == 1 ? 1 : 0;
                int out = f - n;
                if (out >= start) {
                    fixed -= kindOf(free, movable, out) == 0 ? 1 : 0;
                    moves -= kindOf(free, movable, out) == 2 ? 1 : 0;
                    freeIn -= kindOf(free, movable, out) == 1 ? 1 : 0;
                }
                if (f - start + 1 >= n && fixed == 0 && moves < bestMoves && moves <= freeFrames - freeIn) {
                    best = f - n + 1;
                    bestMoves = moves;
                }
            }
        }
        return best;
    }

    /** 1: free, 2: movable, 0: fixed. */
    private static int kindOf(BitSet free, BitSet movable, int f) {
        return free.get(f) ? 1 : movable.get(f) ? 2 : 0;
    }

    /** Step 2: the window's free frames, claimed (those claimed already are not free); false if one was taken meanwhile. */
    private boolean claimFree(int node, int base, int n, Claims claims) {
        BuddyAllocator alloc = ctx.device(node).allocator();
        long[] free = alloc.freeStretchesNow();
        for (int i = 0; i < free.length; i += 2) {
            int from = (int) Math.max(base, free[i]);
            int to = (int) Math.min((long) base + n, free[i + 1]);
            if (from < to) {
                if (!ctx.inFlight.allocateRange(alloc, node, from, to - from)) {
                    return false;
                }
                claims.add(from, to - from);
            }
        }
        return true;
    }

    /**
     * Step 3: the pages holding frames of the window move out of it, and their frames are claimed;
     * stops at the first that cannot, or if the free frames were not all claimed ({@code go}
     * false). The count of claimed frames decides.
     */
    private void moveOut(int node, int base, int n, Claims claims, boolean go) {
        if (!go) {
            return;
        }
        for (ResidencyRegistry.Resident v : ctx.residency.residents(node)) {
            if (claims.frames == n) {
                return;
            }
            Block b = v.block();
            if (b.lock.isHeldByCurrentThread() || !b.lock.tryLock()) {
                // the caller's own pages are not moved from under its batch, and another thread's block
                // is not waited for: if one of them holds a frame of the window, the count below falls short
                continue;
            }
            try {
                if (!moveBlockOut(v, node, base, n, claims)) {
                    return;
                }
            } finally {
                b.lock.unlock();
            }
        }
    }

    /** One block's pages in the window move out in one batch (its lock held); their frames are claimed after. */
    private boolean moveBlockOut(ResidencyRegistry.Resident v, int node, int base, int n, Claims claims) {
        Block b = v.block();
        if (!b.hasPagesOn(node)) {
            return true;
        }
        int pages = v.region().table().pagesIn(b.index());
        long first = firstPage(b.index());
        List<Run> runs = new ArrayList<>();
        int p = 0;
        while (p < pages) {
            if (!b.isResident(node, p) || !inWindow(b.frame(node, p), base, n)) {
                p++;
                continue;
            }
            if (v.region().pins().on(node, first + p, first + p + 1) != null) {
                return false;   // a kernel of the device holds it (pinned since the map was made)
            }
            int holders = b.residentMask(p);
            int q = p + 1;
            while (q < pages && b.isResident(node, q) && inWindow(b.frame(node, q), base, n) && b.residentMask(q) == holders
                    && v.region().pins().on(node, first + q, first + q + 1) == null) {
                q++;
            }
            runs.add(new Run(v.region(), b, p, q - p, Action.RELOCATE, holders, -1));
            p = q;
        }
        if (runs.isEmpty()) {
            return true;
        }
        List<int[]> old = new ArrayList<>();
        for (Run r : runs) {
            old.add(r.framesOn(node));
        }
        // nothing leaves the device: should the frames outside the window be taken meanwhile, the batch
        // fails for room (undone) instead of evicting other data home, and the compaction gives up
        runner.run(MigrationBatch.withinDevice(runs, node));
        BuddyAllocator alloc = ctx.device(node).allocator();
        for (int[] frames : old) {
            for (int i = 0, k; i < frames.length; i += k) {
                k = FrameRuns.length(frames, i, frames.length);
                if (!ctx.inFlight.allocateRange(alloc, node, frames[i], k)) {
                    return false;   // taken by another batch the moment it came free
                }
                claims.add(frames[i], k);
            }
        }
        return true;
    }

    private static boolean inWindow(int frame, int base, int n) {
        return frame >= base && frame < base + n;
    }
}
