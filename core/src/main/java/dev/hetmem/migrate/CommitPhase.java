package dev.hetmem.migrate;

import dev.hetmem.Trigger;
import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.internal.RegionState;
import java.util.IdentityHashMap;
import java.util.Map;

import static dev.hetmem.driver.PageGeometry.PAGE_SHIFT;

/**
 * Phase 4 of a batch, which cannot fail half-way for want of memory (every frame is allocated and
 * every byte copied): the page table changes to the target, the host side is synced, the sources'
 * frames go (device frames to the allocator only after the sync: FREED_FRAMES_AFTER_MIRROR in
 * {@link FrameReleases}; host frames to the kernel in one call for the batch), destination entries
 * are made, and counters and thrashing detection see the move.
 */
final class CommitPhase {
    private CommitPhase() {
    }

    static void commit(EngineContext ctx, MigrationBatch batch) {
        HostReleases hostReleases = new HostReleases();
        // the device frames the moves leave, per region, freed together after the runs' syncs
        // (FREED_FRAMES_AFTER_MIRROR holds for each: its sync came first), not one allocator lock a
        // run; at most FREE_EVERY frames wait so, not a whole 1 GiB batch's in flight
        Map<RegionState, FrameReleases> sourceFrames = new IdentityHashMap<>(2);
        // pages migrated, counted once a region's stretch of runs ends (two threads counting page by
        // page into the same counters cost more than the rest of a 4 KiB run's commit)
        MigratedCount migrated = new MigratedCount(ctx, batch.target, batch.trigger);
        Throwable failed = null;
        try {
            FrameReleases frees = null;
            RegionState freesOf = null;
            for (Run r : batch.runs) {
                switch (r.action) {
                    case DUPLICATE -> commitDuplicate(ctx, r, batch.target, hostReleases, migrated);
                    case REMOTE_MAP -> commitRemote(ctx, r, batch.target);
                    case RELOCATE -> commitRelocate(ctx, r, batch.target);
                    default -> {
                        if (r.region != freesOf) {
                            frees = sourceFrames.computeIfAbsent(r.region, k -> new FrameReleases(ctx));
                            freesOf = r.region;
                        }
                        commitMove(ctx, r, batch.target, batch.trigger, hostReleases, frees, migrated);
                        if (frees.pendingFrames() >= FREE_EVERY) {
                            frees.flush(r.region, true);   // every run added so far is synced
                        }
                    }
                }
            }
        } catch (Throwable e) {
            failed = e;
            throw e;
        } finally {
            Throwable late = null;   // a failure of the steps below, each run whatever the others did
            try {
                migrated.flush();
            } catch (Throwable e) {
                late = e;
            }
            try {
                freeSourceFrames(sourceFrames, failed);
            } catch (Throwable e) {
                late = keep(late, e);
            }
            if (failed == null) {
                // once every run committed, even if freeing device frames failed; not when one failed,
                // since its host frames may be queued before its sync failed
                try {
                    hostReleases.flush(ctx.pool);
                } catch (Throwable e) {
                    late = keep(late, e);
                }
            }
            if (late != null) {
                if (failed != null) {
                    failed.addSuppressed(late);
                } else if (late instanceof RuntimeException re) {
                    throw re;
                } else if (late instanceof Error err) {
                    throw err;
                } else {
                    throw new IllegalStateException(late);
                }
            }
        }
    }

    /** The first of two failures, the second suppressed in it (also {@link UndoPhase}'s). */
    static Throwable keep(Throwable first, Throwable next) {
        if (first == null) {
            return next;
        }
        if (first != next) {
            first.addSuppressed(next);
        }
        return first;
    }

    /** Source frames that wait for the end of the batch at most: then they go back at once. */
    static final int FREE_EVERY = 8192;

    /** Pages a batch migrated, counted per stretch of runs of one region. */
    private static final class MigratedCount {
        private final EngineContext ctx;
        private final int target;
        private final Trigger trigger;
        private RegionState region;
        private long pages;

        MigratedCount(EngineContext ctx, int target, Trigger trigger) {
            this.ctx = ctx;
            this.target = target;
            this.trigger = trigger;
        }

        void add(RegionState r, long n) {
            if (r != region) {
                flush();
                region = r;
            }
            pages += n;
        }

        void flush() {
            if (pages > 0) {
                region.counters().migrated(target, trigger, pages);
                ctx.memoryCounters.migrated(target, trigger, pages);
                pages = 0;
            }
        }
    }

    /**
     * Frees what the committed runs left, every region's whatever fails (each uncounts its frames);
     * a failure here is added to {@code failed} if there is one, else the first is thrown.
     */
    private static void freeSourceFrames(Map<RegionState, FrameReleases> sourceFrames, Throwable failed) {
        Throwable first = null;
        for (Map.Entry<RegionState, FrameReleases> e : sourceFrames.entrySet()) {
            try {
                e.getValue().flush(e.getKey(), true);
            } catch (Throwable x) {
                if (first == null) {
                    first = x;
                } else if (first != x) {
                    first.addSuppressed(x);
                }
            }
        }
        if (first == null) {
            return;
        }
        if (failed != null) {
            failed.addSuppressed(first);
            return;
        }
        if (first instanceof RuntimeException re) {
            throw re;
        }
        if (first instanceof Error err) {
            throw err;
        }
        throw new IllegalStateException(first);
    }

    /** The target maps the host's copy in place. */
    private static void commitRemote(EngineContext ctx, Run r, int target) {
        boolean w = r.block.isWritable(0, r.first) && !r.region.attributes().anyReadOnly(r.page(), r.page() + r.count);
        ctx.driver(target).mapHost(r.va(), r.va(), r.count, w);
        r.block.setRemoteRange(target, r.first, r.count, w);
    }

    /**
     * The target's copy now lies in the run's new frames: the page table names them, the host side
     * is synced (a page only devices hold is copied home from the frame its state word names:
     * FREED_FRAMES_AFTER_MIRROR), then the old frames go back and the new ones are mapped as the
     * old were. Holders, writer and write access do not change.
     */
    private static void commitRelocate(EngineContext ctx, Run r, int target) {
        FrameReleases frees = new FrameReleases(ctx);
        frees.add(target, r.framesOn(target), r.page());   // counted in flight before the table stops naming them
        try {
            r.block.setFrames(target, r.first, r.frames, r.count);
            ctx.syncHost(r.region, r.block, r.first, r.first + r.count);
        } catch (RuntimeException | Error e) {
            frees.abandon();   // frames the host side may still name stay allocated; verify() reports them
            throw e;
        }
        frees.flush(r.region, true);
        mapAsBefore(ctx.driver(target), r, target, r.frames);
    }

    /**
     * Maps a relocated run's pages to {@code frames} on the target, each as writable as the page
     * table and its range attribute allow (what its entry allowed before the run): also how undo
     * maps the old frames back.
     */
    static void mapAsBefore(DeviceDriver driver, Run r, int target, int[] frames) {
        int i = 0;
        while (i < r.count) {
            boolean w = writableOn(r, target, i);
            int n = 1;   // one call per stretch of consecutive frames with the same access
            while (i + n < r.count && frames[i + n] == frames[i] + n && writableOn(r, target, i + n) == w) {
                n++;
            }
            driver.map(r.va() + ((long) i << PAGE_SHIFT), frames[i], n, w);
            i += n;
        }
    }

    private static boolean writableOn(Run r, int target, int i) {
        return r.block.isWritable(target, r.first + i) && !r.region.attributes().at(r.page() + i).readOnly();
    }

    /** MOVE, COLLAPSE, POPULATE, LOAD: the target becomes the only holder and the writer. */
    private static void commitMove(EngineContext ctx, Run r, int target, Trigger trigger, HostReleases hostReleases,
                                   FrameReleases frees, MigratedCount migrated) {
        RegionState region = r.region;
        boolean anyReadOnly = region.attributes().anyReadOnly(r.page(), r.page() + r.count);
        if (target != 0 && (r.holders & 1) != 0) {
            int remote = r.block.remoteMask(r.first);
            for (int n = NodeMask.first(remote); n >= 0; n = NodeMask.next(remote, n)) {
                r.block.clearRemoteRange(n, r.first, r.count);
            }
        }
        int others = r.action.fresh() ? 0 : r.holders & ~(1 << target);
        // source device frames are freed only after the host side is synced (FREED_FRAMES_AFTER_MIRROR):
        // by the caller, once every run of the batch is
        boolean zeros = r.action == Action.POPULATE && target != 0 && !r.write;
        int mark = frees.mark();
        try {
            changeTable(ctx, r, target, others, zeros, frees, hostReleases);
            // the host lets go (its readers fault from now on) before a device may write: never a
            // writer on one node while another still maps the page
            if (r.action == Action.LOAD) {
                ctx.syncHostLoaded(region, r.block, r.first, r.first + r.count);
            } else if (target == 0 && r.copiedHome) {
                ctx.syncHostCopiedHome(region, r.block, r.first, r.first + r.count);
            } else {
                ctx.syncHost(region, r.block, r.first, r.first + r.count);
            }
        } catch (RuntimeException | Error e) {
            frees.abandonFrom(mark);   // frames the host side may still name stay allocated; verify() reports them
            throw e;
        }
        releaseStaging(ctx, r, target, hostReleases);
        if (target != 0) {
            mapTarget(ctx.driver(target), r, anyReadOnly, zeros);
        }
        if (r.action == Action.MOVE || r.action == Action.LOAD) {
            migrated.add(region, r.count);
        }
        // fault-driven ping-pong and capacity thrashing (evicted, faulted back) both count
        if (r.action == Action.MOVE && (trigger == Trigger.FAULT || trigger == Trigger.EVICTION) && ctx.thrashControl
                && r.block.recordMove(target, System.nanoTime(), ThrashControl.WINDOW_NANOS, ctx.thrashHoldNanos)) {
            region.counters().thrashed(target);
            ctx.memoryCounters.thrashed(target);
        }
    }

    /**
     * The page-table change of a move: the other holders' copies go (device frames to {@code frees},
     * host frames to {@code hostReleases}), the target becomes the only holder and the writer.
     */
    private static void changeTable(EngineContext ctx, Run r, int target, int others, boolean zeros,
                                    FrameReleases frees, HostReleases hostReleases) {
        for (int n = NodeMask.first(others); n >= 0; n = NodeMask.next(others, n)) {
            if (n != 0) {
                frees.add(n, r.framesOn(n), r.page());   // counted in flight before they leave residency
                r.block.removeResidentRange(n, r.first, r.count);
            } else {
                r.block.removeResidentRange(0, r.first, r.count);
                hostReleases.add(r.region, r.block, r.page() << PAGE_SHIFT, r.bytes());
            }
        }
        // untouched pages a device only reads come into being there as zeros nobody may write yet
        // (see Block's zero pages): eviction drops them rather than copying zeros home
        r.block.addResidentRange(target, r.first, r.count, !zeros);
        if (zeros) {
            r.block.setZeroRange(r.first, r.count);
        }
        if (target != 0 && r.frames != null) {
            r.block.setFrames(target, r.first, r.frames, r.count);
        }
    }

    /** The target's entries for a committed run: write where the page table and the attributes allow. */
    private static void mapTarget(DeviceDriver driver, Run r, boolean anyReadOnly, boolean zeros) {
        if (r.action == Action.COLLAPSE) {
            if (anyReadOnly) {
                protectEach(r, driver);
            } else {
                driver.protect(r.va(), r.count, true);
            }
        } else if (anyReadOnly || zeros) {
            for (int i = 0; i < r.count; i++) {
                boolean w = !zeros && !r.region.attributes().at(r.page() + i).readOnly();
                driver.map(r.va() + ((long) i << PAGE_SHIFT), r.frames[i], 1, w);
            }
        } else {
            mapFrames(driver, r, true);
        }
    }

    /** A read-only copy joins the holders; the former writer keeps its copy without write. */
    private static void commitDuplicate(EngineContext ctx, Run r, int target, HostReleases hostReleases,
                                        MigratedCount migrated) {
        int w = r.block.writer(r.first);
        if (w >= 0) {
            r.block.clearWritableRange(w, r.first, r.count);
        }
        if (w == 0) {
            int remote = r.block.remoteMask(r.first);
            for (int n = NodeMask.first(remote); n >= 0; n = NodeMask.next(remote, n)) {
                r.block.clearRemoteWritableRange(n, r.first, r.count);
            }
        }
        r.block.addResidentRange(target, r.first, r.count, false);
        if (target != 0) {
            // a local copy replaces any remote entry the target had (the map below overwrites it)
            r.block.clearRemoteRange(target, r.first, r.count);
            r.block.setFrames(target, r.first, r.frames, r.count);
            mapFrames(ctx.driver(target), r, false);
        }
        ctx.syncHost(r.region, r.block, r.first, r.first + r.count);
        releaseStaging(ctx, r, target, hostReleases);
        migrated.add(r.region, r.count);
    }

    /**
     * The host frames a run from one device to another was staged through (the host not among its
     * holders): dead once the run committed, handed back with those of pages that left the host, so
     * that they are kept and counted within the budget, or released, instead of staying mapped.
     */
    private static void releaseStaging(EngineContext ctx, Run r, int target, HostReleases hostReleases) {
        if ((r.holders & 1) == 0 && CopyPhase.stagesThroughHost(ctx, r, target)) {   // runs are uniform in holders
            hostReleases.add(r.region, r.block, r.page() << PAGE_SHIFT, r.bytes());
        }
    }

    /** Maps a run's frames, one call per contiguous stretch. */
    private static void mapFrames(DeviceDriver driver, Run r, boolean writable) {
        for (int i = 0, n; i < r.count; i += n) {
            n = FrameRuns.length(r.frames, i, r.count);
            driver.map(r.va() + ((long) i << PAGE_SHIFT), r.frames[i], n, writable);
        }
    }

    /** Each page of a run as writable as its own range attribute allows. */
    static void protectEach(Run r, DeviceDriver driver) {
        for (int i = 0; i < r.count; i++) {
            boolean w = !r.region.attributes().at(r.page() + i).readOnly();
            driver.protect(r.va() + ((long) i << PAGE_SHIFT), 1, w);
        }
    }
}
