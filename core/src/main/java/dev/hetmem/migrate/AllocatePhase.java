package dev.hetmem.migrate;

import dev.hetmem.driver.DeviceMemoryException;
import dev.hetmem.driver.RunTooLargeException;
import dev.hetmem.internal.DeviceNode;
import dev.hetmem.phys.BuddyAllocator;

import static dev.hetmem.driver.PageGeometry.bytes;

/**
 * Phase 2 of a batch: every destination frame on a device target, in as large aligned pieces as
 * the buddy allocator has, each counted in flight before it leaves the allocator. When the device
 * is full, {@link Eviction#makeRoom} sends cold pages home first; if room can only come after
 * other threads move on, it throws {@link Eviction.RetryBatch} and the caller undoes and retries.
 * A driver that cannot back a run ({@code prepareFrames} throws {@link RunTooLargeException}) gets smaller ones for the rest
 * of the batch, down to single frames, as the kernel falls back from huge pages (HMM's
 * migrate_anon_huge_err); only a refused single frame fails the batch.
 * On any failure the frames allocated so far are recorded in the run for {@link UndoPhase}.
 */
final class AllocatePhase {
    private AllocatePhase() {
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
        for (Run r : batch.runs) {
            if (!r.action.allocates() || r.frames != null) {
                continue;   // nothing to allocate, or placed in a span's frames already
            }
            int[] frames = new int[r.count];
            int done = 0;
            try {
                while (done < r.count) {
                    int order = Math.min(maxOrder, 31 - Integer.numberOfLeadingZeros(r.count - done));
                    int f = -1;
                    long epoch = alloc.changes();
                    while (order >= 0 && (f = ctx.inFlight.allocate(alloc, target, order)) < 0) {
                        order--;
                    }
                    if (f < 0 && eviction.makeRoom(target, r.count - done, batch, epoch)) {
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
    }
}
