package dev.hetmem.migrate;

import dev.hetmem.CopyPath;
import dev.hetmem.Trigger;
import dev.hetmem.driver.CopyBatch;
import dev.hetmem.driver.CopyEngine;
import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.driver.HostCopy;

import dev.hetmem.internal.RegionState;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletionException;

import static dev.hetmem.driver.PageGeometry.PAGE_SHIFT;

/**
 * Phase 3 of a batch: one copy phase for all of it. Device-to-host copies first (they also stage
 * device-to-device moves between drivers with no peer path), then everything to the target in one
 * copy batch per driver, then peer copies, then copies within the target ({@link Action#RELOCATE}). Copies run on the engine's CPU threads, or on the
 * driver's copy engine where {@link CopyPath#ENGINE} is chosen and the driver has one. Nothing here
 * changes the page table: a failure leaves the batch for {@link UndoPhase}.
 */
final class CopyPhase {
    private CopyPhase() {
    }

    static void copy(EngineContext ctx, MigrationBatch batch) {
        int target = batch.target;
        CopyBatch[] toHost = new CopyBatch[ctx.nodeCount()];
        CopyBatch toTarget = new CopyBatch();
        List<Run> peer = new ArrayList<>();
        List<Run> within = new ArrayList<>();
        CopiesHome home = new CopiesHome(ctx, toHost);
        for (Run r : batch.runs) {
            if (r.action == Action.RELOCATE) {
                within.add(r);
                continue;
            }
            if (r.action == Action.POPULATE) {
                if (target != 0) {
                    addFrames(toTarget, CopyBatch.ZERO, 0, r.frames, r.count);
                }
                continue;
            }
            if (r.action == Action.LOAD) {
                addFrames(toTarget, CopyBatch.TO_DEVICE, r.bufferAddress, r.frames, r.count);
                continue;
            }
            if (!r.action.copies()) {
                continue;
            }
            if (r.source != 0 && target != 0 && !stagesThroughHost(ctx, r, target)) {
                peer.add(r);
                continue;
            }
            if (r.source != 0) {
                home.add(r);
            }
            if (target != 0) {
                addFrames(toTarget, CopyBatch.TO_DEVICE, r.va(), r.frames, r.count);
            }
        }
        home.flush();
        boolean fault = batch.trigger == Trigger.FAULT;
        for (int n = 1; n < toHost.length; n++) {
            if (toHost[n] != null) {
                run(ctx, ctx.driver(n), toHost[n], fault);
            }
        }
        if (target != 0) {
            // what a kernel on this CPU reads right after, as a fault's pages are (not what went home beside it)
            run(ctx, ctx.driver(target), toTarget, fault || EngineContext.readSoon());
            copyPeers(ctx, peer, target);
            copyWithin(ctx, within, target);
        }
    }

    /**
     * Copies home, handed to the region's host side a stretch of runs at a time (runs of one region
     * from one device in a row), so that its per-call work is done once for the stretch.
     */
    private static final class CopiesHome {
        private final EngineContext ctx;
        private final CopyBatch[] toHost;
        private RegionState region;
        private int source;
        private long[] firstPages = new long[16];
        private int[] counts = new int[16];
        private int[][] frames = new int[16][];
        private int n;

        CopiesHome(EngineContext ctx, CopyBatch[] toHost) {
            this.ctx = ctx;
            this.toHost = toHost;
        }

        void add(Run r) {
            if (n > 0 && (r.region != region || r.source != source)) {
                flush();
            }
            region = r.region;
            source = r.source;
            if (n == counts.length) {
                firstPages = Arrays.copyOf(firstPages, 2 * n);
                counts = Arrays.copyOf(counts, 2 * n);
                frames = Arrays.copyOf(frames, 2 * n);
            }
            firstPages[n] = r.page();
            counts[n] = r.count;
            frames[n++] = r.framesOn(source);
            r.copiedHome = true;   // the commit relies on it (CommitPhase, HostSide.syncCopiedHome)
        }

        void flush() {
            if (n == 0) {
                return;
            }
            if (toHost[source] == null) {
                toHost[source] = new CopyBatch();
            }
            region.host().copyHomeAll(firstPages, counts, frames, n, ctx.driver(source), toHost[source]);
            Arrays.fill(frames, 0, n, null);
            n = 0;
        }
    }

    /** RELOCATE runs: from the frames the target holds the pages in to the runs' new ones, in one call. */
    private static void copyWithin(EngineContext ctx, List<Run> within, int target) {
        if (within.isEmpty()) {
            return;
        }
        int cap = 0;
        for (Run r : within) {
            cap += r.count;
        }
        int[] from = new int[cap];
        int[] to = new int[cap];
        int[] pages = new int[cap];
        int k = 0;
        for (Run r : within) {
            for (int i = 0, n; i < r.count; i += n) {
                n = r.stretchOn(target, i);
                from[k] = r.block.frame(target, r.first + i);
                to[k] = r.frames[i];
                pages[k++] = n;
            }
        }
        ctx.driver(target).copyWithin(from, to, pages, k);
    }

    /**
     * Whether a copying run from one device to another goes through the host's frames of its pages
     * (copied home, then out) because the target cannot copy from the source itself. Those frames
     * hold nothing anyone may read once the run committed: the commit hands them back as it does
     * the frames of pages that left the host ({@link CommitPhase}).
     */
    static boolean stagesThroughHost(EngineContext ctx, Run r, int target) {
        return r.action.copies() && r.source != 0 && target != 0 && !ctx.driver(target).canCopyFrom(ctx.driver(r.source));
    }

    /** Device-to-device runs over the drivers' peer path: contiguous frames on both sides in one call. */
    private static void copyPeers(EngineContext ctx, List<Run> peer, int target) {
        DeviceDriver to = ctx.driver(target);
        for (Run r : peer) {
            DeviceDriver from = ctx.driver(r.source);
            for (int i = 0, n; i < r.count; i += n) {
                n = r.stretchOn(r.source, i);
                to.copyFromPeer(from, r.block.frame(r.source, r.first + i), r.frames[i], n);
            }
        }
    }

    private static void addFrames(CopyBatch batch, byte op, long va, int[] frames, int count) {
        for (int i = 0, n; i < count; i += n) {
            n = FrameRuns.length(frames, i, count);
            batch.add(op, op == CopyBatch.ZERO ? 0 : va + ((long) i << PAGE_SHIFT), frames[i], n);
        }
    }

    /**
     * Runs one copy batch, streamed ({@link HostCopy}) where it copies enough: more where a fault
     * asked for it, whose pages are read right after, from the caches that ordinary stores fill.
     */
    private static void run(EngineContext ctx, DeviceDriver driver, CopyBatch batch, boolean fault) {
        if (batch.isEmpty()) {
            return;
        }
        batch.streaming(HostCopy.streams(batch.copiedBytes(), fault));
        CopyEngine engine = ctx.copyPath == CopyPath.ENGINE ? driver.copyEngine() : null;
        if (engine == null) {
            if (EngineContext.onCallerAlone()) {
                driver.copy(batch, 0, batch.size());   // one of several batches at once, or beside a kernel
            } else {
                ctx.pool.copy(driver, batch);
            }
            return;
        }
        try {
            engine.submit(batch, 0, batch.size()).join();
        } catch (CompletionException e) {
            if (e.getCause() instanceof RuntimeException re) {
                throw re;
            }
            throw e;
        }
    }
}
