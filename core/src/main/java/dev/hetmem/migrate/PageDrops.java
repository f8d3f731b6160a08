package dev.hetmem.migrate;

import dev.hetmem.internal.RegionState;
import dev.hetmem.pagetable.Block;

import java.util.List;

import static dev.hetmem.driver.PageGeometry.PAGE_SHIFT;
import static dev.hetmem.driver.PageGeometry.blockOf;
import static dev.hetmem.driver.PageGeometry.bytes;
import static dev.hetmem.driver.PageGeometry.firstPage;

/**
 * Removing copies of pages without moving them anywhere: for DONT_NEED, for freeing a region, and
 * for pages host code took home on its own (their device copies are stale). Caller's contract: the
 * blocks are locked by this thread.
 */
final class PageDrops {
    private PageDrops() {
    }

    /**
     * Removes pages [from, to) of the locked blocks from every node: remote entries, device entries
     * and frames go, the host copy is forgotten. {@code syncHost}: the host side is kept in line
     * (false only for a killed region, whose host side reads no frame any more).
     */
    static void dropAll(EngineContext ctx, RegionState region, List<Block> blocks, long from, long to, boolean syncHost) {
        drop(ctx, region, blocks, from, to, syncHost, false, new long[1]);
    }

    /**
     * As {@link #dropAll} with the host in line, then the host copy of [from, to) discarded (its
     * frames read as zeros again): DONT_NEED. If a driver call fails part-way, the host copy of
     * every block whose pages already left the page table is discarded before the failure is
     * thrown: the table says nobody holds them, so they must read as zeros, and the host frames
     * still held the old bytes that the next host view would have read.
     */
    static void dropAllAndDiscard(EngineContext ctx, RegionState region, List<Block> blocks, long from, long to) {
        long[] forgotten = {from};
        try {
            drop(ctx, region, blocks, from, to, true, false, forgotten);
        } catch (RuntimeException | Error e) {
            if (forgotten[0] > from) {
                try {
                    region.host().discard(from << PAGE_SHIFT, (forgotten[0] - from) << PAGE_SHIFT);
                } catch (RuntimeException | Error again) {
                    e.addSuppressed(again);
                }
            }
            throw e;
        }
        region.host().discard(from << PAGE_SHIFT, (to - from) << PAGE_SHIFT);
        releaseVacated(region, blocks, from, to);
    }

    /** No ranges to release: a drop hands back only the chunks it vacated. */
    private static final long[] NO_RANGES = new long[0];

    /**
     * The chunks of [from, to) the host holds no page of any more, now that their host copies are
     * gone too: what they keep of pages that left earlier goes back at once ({@code RetainedFrames}),
     * as when a batch vacates a chunk; otherwise it stayed until a trim or the budget took it.
     */
    private static void releaseVacated(RegionState region, List<Block> blocks, long from, long to) {
        if (!region.host().releasesFrames()) {
            return;
        }
        long[] vacated = new long[blocks.size()];
        int n = 0;
        for (Block b : blocks) {
            if (b.index() >= blockOf(from) && b.index() <= blockOf(to - 1) && b.residentCount(0) == 0) {
                vacated[n++] = b.index();
            }
        }
        if (n > 0) {
            region.host().release(NO_RANGES, 0, vacated, n);
        }
    }

    /**
     * As {@link #dropAll}, but the host keeps its copy: for pages of a freed range that an open
     * host view still reads (no device may hold or map a freed page; the view's bytes stay).
     */
    static void dropAllButHost(EngineContext ctx, RegionState region, List<Block> blocks, long from, long to) {
        drop(ctx, region, blocks, from, to, true, true, new long[1]);
    }

    /** {@code forgotten[0]}: set to the end of the pages whose host copy the table has forgotten so far. */
    private static void drop(EngineContext ctx, RegionState region, List<Block> blocks, long from, long to, boolean syncHost,
                             boolean keepHost, long[] forgotten) {
        Invalidations inv = new Invalidations(ctx.nodeCount());
        try {
            dropAll(ctx, region, blocks, from, to, syncHost, keepHost, inv, forgotten);
        } catch (RuntimeException | Error e) {
            inv.flushAfterFailure(ctx, e);
            throw e;
        }
        inv.flush(ctx);
    }

    private static void dropAll(EngineContext ctx, RegionState region, List<Block> blocks, long from, long to,
                                boolean syncHost, boolean keepHost, Invalidations inv, long[] forgotten) {
        for (Block b : blocks) {
            long base = firstPage(b.index());
            int p0 = BlockLocks.firstIn(b, from);
            int p1 = BlockLocks.endIn(region, b, to);
            for (int n = 1; n < ctx.nodeCount(); n++) {
                if (b.hasRemoteOn(n) && b.clearRemoteRange(n, p0, p1 - p0) > 0) {
                    // remote entries of the host's copy go with it
                    long va = region.pageAddress(base + p0);
                    ctx.driver(n).unmap(va, p1 - p0);
                    inv.add(n, va, bytes(p1 - p0));
                }
            }
            FrameReleases frees = new FrameReleases(ctx);
            try {
                for (int n = 1; n < ctx.nodeCount(); n++) {
                    dropDeviceCopies(ctx, region, b, n, p0, p1, inv, frees);
                }
                if (!keepHost) {
                    if (b.hasPagesOn(0)) {
                        b.removeResidentRange(0, p0, p1 - p0);
                    }
                    forgotten[0] = base + p1;
                }
                if (syncHost) {
                    ctx.syncHost(region, b, p0, p1);
                }
            } catch (RuntimeException | Error e) {
                frees.abandon();   // see FrameReleases.abandon
                throw e;
            }
            inv.freeAfter(region, frees, syncHost);   // freed once the devices' invalidations return
        }
    }

    /**
     * Removes device {@code n}'s copies of pages [p0, p1) of a locked block: entries released (their
     * invalidation added to {@code inv}), frames handed to {@code frees}, to be freed once the caller
     * has synced the host side.
     */
    static void dropDeviceCopies(EngineContext ctx, RegionState region, Block b, int n, int p0, int p1,
                                 Invalidations inv, FrameReleases frees) {
        if (!b.hasPagesOn(n)) {
            return;
        }
        long base = firstPage(b.index());
        int p = p0;
        while (p < p1) {
            if (!b.isResident(n, p)) {
                p++;
                continue;
            }
            int q = p;
            while (q < p1 && b.isResident(n, q)) {
                q++;
            }
            long va = region.pageAddress(base + p);
            int[] old = new int[q - p];
            for (int i = p; i < q; i++) {
                old[i - p] = b.frame(n, i);
            }
            ctx.driver(n).unmap(va, q - p);
            inv.add(n, va, bytes(q - p));
            frees.add(n, old, base + p);   // counted in flight before the frames leave residency
            b.removeResidentRange(n, p, q - p);
            p = q;
        }
    }
}
