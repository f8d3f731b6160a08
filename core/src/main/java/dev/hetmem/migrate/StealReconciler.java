package dev.hetmem.migrate;

import dev.hetmem.Trigger;
import dev.hetmem.internal.RegionState;
import dev.hetmem.observe.FaultEvent;
import dev.hetmem.pagetable.Bits;
import dev.hetmem.pagetable.Block;

import java.util.ArrayList;
import java.util.List;

import static dev.hetmem.driver.PageGeometry.blockOf;
import static dev.hetmem.driver.PageGeometry.bytes;
import static dev.hetmem.driver.PageGeometry.firstPage;

/**
 * Takes into the page table what host code did on its own: pages a fault service took home (or
 * let the host write) between two engine calls become the host's alone, every device copy of them
 * dropped. Every engine operation does this for its range first, under its block locks, so it
 * plans from the truth; readers of the whole table (statistics, verification) call
 * {@link #reconcileAll}. With host views, the host side reports nothing and this costs a call per block.
 */
final class StealReconciler {
    private final EngineContext ctx;

    StealReconciler(EngineContext ctx) {
        this.ctx = ctx;
    }

    /** Pages [from, to) of a region whose blocks this thread has locked. */
    void reconcile(RegionState region, long from, long to) {
        if (to <= from || !region.host().takesPagesOnItsOwn()) {
            return;
        }
        Invalidations inv = new Invalidations(ctx.nodeCount());
        long[] counts = new long[4];   // runs, pages arrived, first page taken, end of the last
        counts[2] = Long.MAX_VALUE;
        try {
            takeAll(region, from, to, inv, counts);
        } catch (RuntimeException | Error e) {
            inv.flushAfterFailure(ctx, e);
            throw e;
        }
        inv.flush(ctx);
        long runs = counts[0];
        long arrived = counts[1];
        long firstTaken = counts[2];
        long endTaken = counts[3];
        if (runs > 0) {
            // the service resolved these faults on its own, earlier; this is when Java hears of them
            FaultEvent event = new FaultEvent();
            if (event.shouldCommit()) {
                event.path = FaultEvent.USERFAULTFD;
                event.node = 0;
                event.region = region.id();
                event.offset = bytes(firstTaken);
                event.length = bytes(endTaken - firstTaken);
                event.faults = runs;
                event.pagesMigrated = arrived;
                event.commit();
            }
        }
    }

    /** Takes home every page of [from, to) that host code took: counts[0] runs, [1] pages that arrived, [2]-[3] the span. */
    private void takeAll(RegionState region, long from, long to, Invalidations inv, long[] counts) {
        boolean faulting = region.faultingLaunchesRunning();
        for (long bi = blockOf(from); bi <= blockOf(to - 1); bi++) {
            // BUSY_STEALS_OF_FAULTING_LAUNCHES: a page host code took (by touching it) from under a
            // launch that runs by device faults is taken in now, not when the launch ends: the
            // device's copy goes through the invalidation below, which waits for every work item that
            // may hold a translation of it (TranslationEpochs), so no item writes it afterwards. Left
            // for later, the page would stay the host's in the fault service while the page table
            // moved it on (evicted, faulted back): the service ignores a stolen page's syncs, and
            // the device's later stores would be thrown away when the launch ends. Only pages no
            // device pin holds: a pinned kernel reaches its pages with no translation anyone
            // waits for, so its steals wait for its end. Decided page by page: decided for the
            // block, a pinned kernel's page kept the faulting launch's own BUSY marks from being
            // taken in before its items ran, and they wrote the device's stale copy of a page
            // whose host copy later won (UserfaultfdTest.aPageTakenHomeBeforeAFaultingLaunch...).
            // Pins are added under the block locks this thread holds, so the mask stays true
            // while they are held.
            long first = firstPage(bi);
            long[] busyTaken = faulting ? noDevicePin(region, first, region.table().pagesIn(bi)) : null;
            long[] taken = region.host().collect(bi, busyTaken);
            if (taken == null) {
                continue;
            }
            Block b = region.table().blockOrCreate(bi);
            int pages = region.table().pagesIn(bi);
            // every run of the mask into the page table first, then the host side synced run by run:
            // collect has cleared the runs' STOLEN marks, so a run left out because an earlier run's
            // sync failed would never be reported again (the host writing a page the table still gave
            // to a device: kernels read the device's stale copy, and a later move lost the host's stores)
            List<int[]> runs = new ArrayList<>();
            for (int p = 0; p < pages; ) {
                if (!Bits.get(taken, p)) {
                    p++;
                    continue;
                }
                int q = p + 1;
                while (q < pages && Bits.get(taken, q)) {
                    q++;
                }
                runs.add(new int[] {p, q});
                counts[0]++;
                counts[2] = Math.min(counts[2], firstPage(bi) + p);
                counts[3] = Math.max(counts[3], firstPage(bi) + q);
                p = q;
            }
            FrameReleases[] frees = new FrameReleases[runs.size()];
            int inTable = 0;   // runs taken into the table
            try {
                for (int k = 0; k < runs.size(); k++) {
                    frees[k] = new FrameReleases(ctx);
                    counts[1] += inTable(region, b, runs.get(k)[0], runs.get(k)[1], inv, frees[k]);
                    inTable++;
                }
            } catch (RuntimeException | Error e) {
                // a driver's unmap failing (the SPI says it does not): no frame of these runs is freed, and
                // the runs from the one that failed on are reported again by the next collect (collect
                // cleared their marks: the host would write pages the table still gives to a device, and a
                // later move of them home would copy the device's stale bytes over the host's stores)
                for (FrameReleases f : frees) {
                    if (f != null) {
                        f.abandon();   // see FrameReleases.abandon
                    }
                }
                long[] again = new long[8];
                for (int k = inTable; k < runs.size(); k++) {
                    Bits.setRange(again, runs.get(k)[0], runs.get(k)[1]);
                }
                try {
                    region.host().uncollect(bi, again);
                } catch (RuntimeException | Error f) {
                    e.addSuppressed(f);
                }
                throw e;
            }
            Throwable failed = null;
            for (int k = 0; k < runs.size(); k++) {
                try {
                    ctx.syncHost(region, b, runs.get(k)[0], runs.get(k)[1]);
                    inv.freeAfter(region, frees[k], true);   // freed once the devices' invalidations return
                } catch (RuntimeException | Error e) {
                    frees[k].abandon();   // see FrameReleases.abandon
                    failed = CommitPhase.keep(failed, e);
                }
            }
            if (failed instanceof Error e) {
                throw e;
            }
            if (failed != null) {
                throw (RuntimeException) failed;
            }
        }
    }

    /** Pages [first, first + count) (at most 512) that no device pin holds, as a 512-bit mask. */
    private static long[] noDevicePin(RegionState region, long first, int count) {
        long[] pinned = region.pins().pinnedMasks(first, count);
        long[] free = new long[8];
        Bits.setRange(free, 0, count);
        for (int w = 0; w < 8; w++) {
            free[w] &= ~pinned[8 + w];
        }
        return free;
    }

    /**
     * Pages [p, q) of a locked block were taken by the host: it becomes their only holder and writer
     * in the page table, the devices' copies dropped (their frames to {@code frees}, freed once the
     * host side is synced); returns how many pages arrived from a device.
     */
    private int inTable(RegionState region, Block b, int p, int q, Invalidations inv, FrameReleases frees) {
        int arrived = 0;
        for (int i = p; i < q; i++) {
            // data came from a device only where a device held the page and the host did not;
            // a first touch of a page nobody held moved nothing
            int holders = b.residentMask(i);
            arrived += (holders & 1) == 0 && holders != 0 ? 1 : 0;
        }
        for (int n = 1; n < ctx.nodeCount(); n++) {
            PageDrops.dropDeviceCopies(ctx, region, b, n, p, q, inv, frees);
        }
        b.addResidentRange(0, p, q - p, true);
        if (arrived > 0) {
            region.counters().migrated(0, Trigger.FAULT, arrived);
            ctx.memoryCounters.migrated(0, Trigger.FAULT, arrived);
        }
        return arrived;
    }

    /** The whole region, for readers of the page table that want it current; a region being freed is skipped. */
    void reconcileAll(RegionState region) {
        if (region.pages() == 0 || !region.host().takesPagesOnItsOwn()) {
            return;
        }
        try {
            region.lifecycle().enter();   // a region being freed has nothing left to reconcile
        } catch (IllegalStateException freed) {
            return;
        }
        try {
            if (!region.host().takeAnySteals()) {
                return;
            }
            List<Block> locked = BlockLocks.lockAll(Interval.wholeRange(region, 0, region.pages()));
            try {
                reconcile(region, 0, region.pages());
            } finally {
                BlockLocks.unlockAll(locked);
            }
        } finally {
            region.lifecycle().exit();
        }
    }
}
