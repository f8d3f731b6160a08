package dev.hetmem.migrate;

import dev.hetmem.driver.DeviceMemoryException;
import dev.hetmem.driver.RunTooLargeException;
import dev.hetmem.internal.DeviceNode;
import dev.hetmem.phys.BuddyAllocator;

import java.util.List;

import static dev.hetmem.driver.PageGeometry.bytes;

/**
 * Phase 2 of a batch: every destination frame on a device target, in as large aligned pieces as
 * the buddy allocator has, each counted in flight before it leaves the allocator. When the device
 * is full, {@link Eviction#makeRoom} sends cold pages home first; if room can only come after
 * other threads move on, it throws {@link Eviction.RetryBatch} and the caller undoes and retries.
 * A batch that may not evict ({@link MigrationBatch#evicts}: compaction's moves within a device)
 * fails for room instead.
 * A driver that cannot back a run ({@code prepareFrames} throws {@link RunTooLargeException}) gets smaller ones for the rest
 * of the batch, down to single frames, as the kernel falls back from huge pages (HMM's
 * migrate_anon_huge_err); only a refused single frame fails the batch. Runs shorter than
 * {@link #SMALL_RUN} pages (scattered 4 KiB pages: thousands a batch) take their frames from a
 * {@link Piece} allocated for many of them at once rather than one allocator call (and lock) a run.
 * On any failure the frames allocated so far are recorded in the run for {@link UndoPhase}.
 */
final class AllocatePhase {
    private AllocatePhase() {
    }

    /**
     * The frames to make room for when a run finds none free: the rest of the batch, not this run's
     * {@code runLeft} alone. One eviction's victims share one shootdown ({@link Eviction}); making
     * room run by run made one eviction, and so one wait for a faulting launch's running items, per
     * run or two. Counted only then (it walks the batch's runs).
     */
    private static int roomFor(MigrationBatch batch, int runLeft) {
        return (int) Math.min(Integer.MAX_VALUE, Math.max(runLeft, batch.stillToAllocate()));
    }

    static void allocate(EngineContext ctx, MigrationBatch batch, Eviction eviction) {
        int target = batch.target;
        if (target == 0) {
            return;
        }
        DeviceNode dev = ctx.device(target);
        BuddyAllocator alloc = dev.allocator();
        long needed = MigrationBatch.framesNeeded(batch.runs);
        if (needed > alloc.totalFrames()) {
            throw new DeviceMemoryException("device node " + target + " (" + dev.driver().name() + ") has "
                    + bytes(alloc.totalFrames()) + " bytes; one batch (one kernel launch's arguments, or one "
                    + "load chunk) needs " + bytes(needed) + " bytes on it at once");
        }
        if (!batch.spans.isEmpty()) {
            Placement.allocate(ctx, batch, eviction);   // the spans' runs first: consecutive frames each
        }
        // the largest run the driver has accepted in this batch: one that cannot back a run falls back
        // to smaller ones, down to single frames, as the kernel falls back from huge pages
        int maxOrder = BuddyAllocator.MAX_ORDER;
        // runs of a few pages (scattered 4 KiB pages: thousands a batch) take their frames from pieces
        // allocated for many of them at once, not one allocator call (and lock) a run
        Piece piece = new Piece(smallDemand(batch.runs));
        try {
            for (Run r : batch.runs) {
                if (!r.action.allocates() || r.frames != null) {
                    continue;   // nothing to allocate, or placed in a span's frames already
                }
                int[] frames = new int[r.count];
                int done = 0;
                try {
                    if (r.count < SMALL_RUN) {
                        piece.demand -= r.count;
                        while (done < r.count) {
                            if (piece.left == 0 && !piece.refill(ctx, alloc, dev, target, maxOrder, r.count - done)) {
                                break;   // none to be had in one piece: the run goes the way of large ones
                            }
                            int n = Math.min(piece.left, r.count - done);
                            for (int i = 0; i < n; i++) {
                                frames[done + i] = piece.first + i;
                            }
                            piece.first += n;
                            piece.left -= n;
                            r.reserved += n;   // counted in flight when the piece was allocated
                            done += n;
                            r.frames = frames;
                        }
                    }
                    while (done < r.count) {
                        int order = Math.min(maxOrder, 31 - Integer.numberOfLeadingZeros(r.count - done));
                        int f = -1;
                        long epoch = alloc.changes();
                        while (order >= 0 && (f = ctx.inFlight.allocate(alloc, target, order)) < 0) {
                            order--;
                        }
                        if (f < 0 && piece.left > 0) {
                            // frames kept for small runs to come: no run's, so eviction would take them
                            // for another batch's in flight; they go back and are asked for again later
                            piece.giveBack(ctx, alloc, target);
                            continue;
                        }
                        if (f < 0 && batch.evicts && eviction.makeRoom(target, roomFor(batch, r.count - done), batch, epoch)) {
                            continue;
                        }
                        if (f < 0) {
                            f = ctx.inFlight.allocate(alloc, target, 0);   // a frame another batch gave back while we looked
                            order = 0;
                        }
                        if (f < 0) {
                            throw new Eviction.DeviceFull("device node " + target + " (" + dev.driver().name()
                                    + ") is out of memory: needed " + bytes(r.count - done)
                                    + " more bytes for " + r.region + ", " + alloc.freeBytes() + " bytes free of "
                                    + bytes(alloc.totalFrames()) + " (" + eviction.whoHolds(target, batch) + ")");
                        }
                        int n = 1 << order;
                        try {
                            dev.driver().prepareFrames(f, n);
                        } catch (RuntimeException | Error e) {
                            // the piece is not the run's yet: back to the allocator, then uncounted
                            ctx.inFlight.free(alloc, target, f, n);   // counted by InFlightFrames.allocate
                            if (e instanceof RunTooLargeException && n > 1) {
                                maxOrder = order - 1;   // smaller runs for the rest of the batch
                                continue;
                            }
                            throw e;
                        }
                        r.reserved += n;   // counted in flight by InFlightFrames.allocate already
                        for (int i = 0; i < n; i++) {
                            frames[done + i] = f + i;
                        }
                        done += n;
                        r.frames = frames;
                    }
                } catch (RuntimeException | Error e) {
                    r.frames = frames;
                    // record how many are really ours, for undo
                    r.framesAllocated = done;
                    throw e;
                }
                r.frames = frames;
                r.framesAllocated = r.count;
            }
        } finally {
            piece.giveBack(ctx, alloc, target);   // frames no run took (a run that went the large way meanwhile)
        }
    }

    /** Runs shorter than this many pages take their frames from a {@link Piece}. */
    static final int SMALL_RUN = 16;

    /** Pages of the runs shorter than {@link #SMALL_RUN} that still need frames. */
    private static long smallDemand(List<Run> runs) {
        long n = 0;
        for (Run r : runs) {
            if (r.action.allocates() && r.frames == null && r.count < SMALL_RUN) {
                n += r.count;
            }
        }
        return n;
    }

    /**
     * Consecutive frames allocated for the small runs still to come, counted in flight but no run's
     * yet. A piece is never larger than the small runs' remaining demand when it is taken, so it is
     * used up unless a small run went the large way meanwhile. What is left goes back before any
     * eviction (which would take it for another batch's frames in flight and wait for it) and at the
     * end of the phase, failed or not.
     */
    private static final class Piece {
        long demand;
        int first;
        int left;
        /** The largest piece the driver has not refused in this batch. */
        int maxOrder = BuddyAllocator.MAX_ORDER;

        Piece(long demand) {
            this.demand = demand;
        }

        /**
         * A new piece of up to the demand (at least {@code atLeast}, a block at most): the largest
         * hole the allocator has up to that size, with no eviction ({@link BuddyAllocator#allocateUpTo});
         * false if it has no free frame. A piece the driver cannot back ({@link RunTooLargeException})
         * is asked for again smaller; a refused single frame fails the batch, as in the large way.
         */
        boolean refill(EngineContext ctx, BuddyAllocator alloc, DeviceNode dev, int target, int batchMaxOrder, int atLeast) {
            long want = demand + atLeast;   // this run's rest and the small runs after it
            int order = Math.min(Math.min(maxOrder, batchMaxOrder), 63 - Long.numberOfLeadingZeros(want));
            while (true) {
                long got = ctx.inFlight.allocateUpTo(alloc, target, order);
                if (got < 0) {
                    return false;
                }
                int f = (int) (got >>> 4);
                int o = (int) (got & 15);
                try {
                    dev.driver().prepareFrames(f, 1 << o);
                } catch (RuntimeException | Error e) {
                    ctx.inFlight.free(alloc, target, f, 1 << o);
                    if (e instanceof RunTooLargeException && o > 0) {
                        maxOrder = order = o - 1;
                        continue;
                    }
                    throw e;
                }
                first = f;
                left = 1 << o;
                return true;
            }
        }

        void giveBack(EngineContext ctx, BuddyAllocator alloc, int target) {
            if (left > 0) {
                ctx.inFlight.free(alloc, target, first, left);
                left = 0;
            }
        }
    }
}
