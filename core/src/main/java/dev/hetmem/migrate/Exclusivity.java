package dev.hetmem.migrate;

import dev.hetmem.internal.Pins;
import dev.hetmem.internal.RegionState;
import dev.hetmem.pagetable.Block;

import java.util.List;

import static dev.hetmem.driver.PageGeometry.PAGE_SHIFT;
import static dev.hetmem.driver.PageGeometry.blockOf;
import static dev.hetmem.driver.PageGeometry.firstPage;

/**
 * Device-exclusive access (the kernel's {@code make_device_exclusive}, HMM's exclusive tests): a
 * launch argument with {@code Access.EXCLUSIVE} leaves its pages held for one device alone, so
 * that its atomics need not be coherent with anyone; the host's next touch ends that.
 *
 * <p>How the pages get there is the planner's, for requests marked exclusive: a device that can
 * map host memory maps the host's copy in place (the page stays home, as in the kernel); any
 * other device, and any device when host code touches memory with plain loads (userfaultfd
 * mode), has them moved, so that it alone holds them. The block's exclusive bitmap records which pages are exclusive; its
 * own rules (see {@code Block}) end exclusivity with any change that takes the page or its
 * write access from the device.
 *
 * <p>The protocol with host views, all of it inside one pass of {@code MigrationEngine.ensure}
 * under the block locks of the pages (lock L6), so that no pass of the other side runs between a
 * check and what it guards:
 * <ul>
 *   <li>an exclusive request waits while a host view of a live thread is open on its pages
 *       ({@link #blocker}), then pins and marks them in the same pass ({@link #markLocked});</li>
 *   <li>a host view (a host fault) waits while a kernel pins pages that are exclusive to a
 *       device, and otherwise ends their exclusivity before it plans: a device that maps the
 *       host's copy in place loses that mapping (it faults again to reach the page), a device
 *       that holds the page loses it to the host's own fault, which moves it home.</li>
 * </ul>
 * So a host view and an exclusive kernel never overlap on a page, in either order.
 */
final class Exclusivity {
    private final EngineContext ctx;
    private final StealReconciler steals;

    Exclusivity(EngineContext ctx, StealReconciler steals) {
        this.ctx = ctx;
        this.steals = steals;
    }

    /** A pin that keeps {@link MigrationEngine#ensure} from going on, and the region it is in. */
    record Blocker(Pins.Pin pin, RegionState region) {}

    /**
     * For a host fault ({@code target} 0): the pin of a kernel using pages of the requests that are
     * exclusive to a device, or null once every such page's exclusivity has ended. For a device:
     * the pin of a host view open on pages of an exclusive request, or null. Caller's contract: the
     * block locks of every request are held, stolen pages reconciled.
     */
    Blocker blocker(List<MigrationRequest> requests, int target) {
        for (MigrationRequest r : requests) {
            if (target != 0) {
                Pins.Pin view = r.exclusive() ? r.region().pins().liveOn(0, r.from(), r.to()) : null;
                if (view != null) {
                    return new Blocker(view, r.region());
                }
            } else {
                Pins.Pin kernel = endForHost(r.region(), r.from(), r.to());
                if (kernel != null) {
                    return new Blocker(kernel, r.region());
                }
            }
        }
        return null;
    }

    /** Ends every device's exclusivity over [from, to), or returns the pin of a kernel using such a page. */
    private Pins.Pin endForHost(RegionState region, long from, long to) {
        Pins.Pin[] kernel = {null};
        Invalidations[] inv = {null};   // made only where an in-place mapping goes: most host views meet none
        try {
            walkEnding(region, from, to, kernel, inv);
        } catch (RuntimeException | Error e) {
            // entries unmapped before a driver call threw are still invalidated (their table bits are cleared)
            if (inv[0] != null) {
                inv[0].flushAfterFailure(ctx, e);
            }
            throw e;
        }
        if (inv[0] != null) {
            inv[0].flush(ctx);
        }
        return kernel[0];
    }

    /** {@link #endForHost}'s walk: sets {@code kernel[0]} to a pin that stops it; the invalidations it needs in {@code inv[0]}. */
    private void walkEnding(RegionState region, long from, long to, Pins.Pin[] kernel, Invalidations[] inv) {
        walk(region, from, to, (b, base, p0, p1) -> {
            if (!b.hasExclusive()) {
                return true;
            }
            for (int p = p0; p < p1; p++) {
                for (int n = 1; n < ctx.nodeCount(); n++) {
                    if (!b.isExclusive(n, p)) {
                        continue;
                    }
                    kernel[0] = region.pins().conflict(base + p, base + p + 1, 0);
                    if (kernel[0] != null) {
                        return false;
                    }
                    if (b.isRemote(n, p)) {
                        long va = region.pageAddress(base + p);
                        ctx.driver(n).unmap(va, 1);
                        if (inv[0] == null) {
                            inv[0] = new Invalidations(ctx.nodeCount());
                        }
                        inv[0].add(n, va, 1L << PAGE_SHIFT);
                        b.clearRemoteRange(n, p, 1);
                    } else {
                        b.endExclusive(n, p, 1);
                    }
                }
            }
            return true;
        });
    }

    /** One block of a {@link #walk}: its first page, and the range's pages in it, [p0, p1); false stops the walk. */
    @FunctionalInterface
    private interface BlockStep {
        boolean visit(Block b, long base, int p0, int p1);
    }

    /** Visits, in order, the blocks of [from, to) that exist (never-touched ones hold nothing); the caller holds their locks. */
    private static void walk(RegionState region, long from, long to, BlockStep step) {
        for (long page = from; page < to; ) {
            Block b = region.table().block(blockOf(page));
            if (b == null) {
                page = firstPage(blockOf(page) + 1);
                continue;
            }
            assert b.lock.isHeldByCurrentThread();
            long base = firstPage(b.index());
            int p1 = BlockLocks.endIn(region, b, to);
            if (!step.visit(b, base, BlockLocks.firstIn(b, from), p1)) {
                return;
            }
            page = base + p1;
        }
    }

    /** Marks the exclusive requests' pages, just pinned on {@code target} under the caller's block locks. */
    void markLocked(List<MigrationRequest> requests, int target) {
        for (MigrationRequest r : requests) {
            if (r.exclusive() && target != 0) {
                markLocked(r.region(), r.from(), r.to(), target);
            }
        }
    }

    /**
     * Marks the pages of [from, to) that {@code node} may write with nobody else holding or mapping
     * them, and no host view open on them; returns how many were marked. Other devices' in-place
     * mappings of a page the target maps in place go first, unless a kernel of theirs is using
     * them (then the page is not marked). The block locks are held.
     */
    private long markLocked(RegionState region, long from, long to, int node) {
        Invalidations inv = new Invalidations(ctx.nodeCount());
        try {
            return markLocked(region, from, to, node, inv);
        } finally {
            inv.flush(ctx);
        }
    }

    private long markLocked(RegionState region, long from, long to, int node, Invalidations inv) {
        long[] marked = {0};
        boolean views = region.pins().liveOn(0, from, to) != null;   // asked per page only where some view is open
        walk(region, from, to, (b, base, p0, p1) -> {
            int runStart = -1;
            for (int p = p0; p <= p1; p++) {
                boolean ok = p < p1 && !region.attributes().at(base + p).readOnly()
                        && (!views || region.pins().liveOn(0, base + p, base + p + 1) == null)
                        && takeAlone(region, b, base, p, node, inv);
                if (ok && runStart < 0) {
                    runStart = p;
                } else if (!ok && runStart >= 0) {
                    b.setExclusiveRange(node, runStart, p - runStart);
                    marked[0] += p - runStart;
                    runStart = -1;
                }
            }
            return true;
        });
        return marked[0];
    }

    /** {@link #markLocked} for a caller that holds no block lock (a launch that ran by device faults). */
    long mark(RegionState region, long from, long to, int node) {
        List<Block> locked = BlockLocks.lockAll(Interval.wholeRange(region, from, to));
        try {
            steals.reconcile(region, from, to);
            return markLocked(region, from, to, node);
        } finally {
            BlockLocks.unlockAll(locked);
        }
    }

    /**
     * Whether {@code node} may write the page and, once other devices' in-place mappings of it are
     * gone, nobody else holds or maps it. Those mappings go unless a kernel pins the page for them.
     */
    private boolean takeAlone(RegionState region, Block b, long base, int p, int node, Invalidations inv) {
        if (b.isWritable(node, p)) {
            return true;   // a writer is the only holder (the page-table invariant)
        }
        if (!b.isRemoteWritable(node, p) || region.host().takesPagesOnItsOwn()) {
            return false;   // plain loads reach a page at home without asking: it cannot be a device's alone
        }
        int others = b.remoteMask(p) & ~(1 << node);
        if (others == 0) {
            return true;
        }
        if (region.pins().conflict(base + p, base + p + 1, node) != null) {
            return false;   // another node's kernel (or a host view) is using the page right now
        }
        long va = region.pageAddress(base + p);
        for (int o = NodeMask.first(others); o >= 0; o = NodeMask.next(others, o)) {
            ctx.driver(o).unmap(va, 1);
            inv.add(o, va, 1L << PAGE_SHIFT);
            b.clearRemoteRange(o, p, 1);
        }
        return true;
    }

    /** Whether every page of [from, to) is exclusive to {@code node} right now. */
    boolean holds(RegionState region, long from, long to, int node) {
        for (long bi = blockOf(from); bi <= blockOf(to - 1); bi++) {
            if (region.table().block(bi) == null) {
                return false;   // never touched: nothing there is anyone's (and no block is made to say so)
            }
        }
        List<Block> locked = BlockLocks.lockAll(Interval.wholeRange(region, from, to));
        try {
            steals.reconcile(region, from, to);
            for (Block b : locked) {
                int p1 = BlockLocks.endIn(region, b, to);
                for (int p = BlockLocks.firstIn(b, from); p < p1; p++) {
                    if (!b.isExclusive(node, p)) {
                        return false;
                    }
                }
            }
            return true;
        } finally {
            BlockLocks.unlockAll(locked);
        }
    }
}
