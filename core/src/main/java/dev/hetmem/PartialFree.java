package dev.hetmem;

import dev.hetmem.driver.PageGeometry;
import dev.hetmem.internal.Pins;
import dev.hetmem.internal.RangeAttributes;
import dev.hetmem.internal.RegionState;
import dev.hetmem.migrate.MigrationEngine;

/**
 * Freeing part of a region ({@link Region#free(long, long)}), as munmap of part of a mapping in
 * HMM's tests: the range is marked freed in the region's attributes, then its pages are dropped
 * on every node as DONT_NEED drops them.
 *
 * <p>Why the mark comes first: the engine refuses freed pages under the block locks
 * ({@code MigrationEngine.ensure}, {@code fill}), and the drop takes the same locks. A call that
 * passed its own check before the mark either pinned its pages before the drop or reaches the
 * engine after the mark (and is refused there). The drop waits for the kernels' pins; a host view
 * pinned so (opened by another thread between this class's check for views and the mark) is not
 * waited for, since its thread may hold it as long as it likes: the pages it covers keep their
 * host copy, and the free throws naming it ({@code MigrationEngine.discardUnlessViewed}). The wait
 * for the kernels ends at the close timeout: then nothing of the range is dropped yet and the free
 * throws saying to free again. So no frame is left behind in a freed range once the free returns,
 * and none on a device when it throws for a view; until a free that gave up for a kernel is called
 * again, {@code verify()} reports the range's pages as freed but held, and in userfaultfd mode plain
 * loads there read the old bytes.
 */
final class PartialFree {
    private PartialFree() {}

    /** The largest granule there is (1 GiB), in pages: how far a page's granule can reach. */
    private static final long MAX_GRANULE_PAGES = 1L << (30 - PageGeometry.PAGE_SHIFT);

    /**
     * Refuses the free when the granule of a page outside [from, to) that stays reaches into it
     * (page 0 advised a 2 MiB granule, pages 1-3 kept 4 KiB, page 2 freed): in userfaultfd mode the
     * fault service brings a page's whole granule home, and would bring the freed pages back with it
     * as zeros the page table then counts as the host's. The edge check above sees only the
     * neighbours' granules. Granules are aligned, so of each stretch of one granule size only the
     * granule of its last page before the range, and of its first page after it, can reach in.
     */
    private static void refuseGranulesReachingIn(Region region, long offset, long length, long from, long to) {
        RegionState s = region.state();
        long lo = Math.max(0, from - MAX_GRANULE_PAGES);
        long hi = Math.min(s.pages(), to + MAX_GRANULE_PAGES);
        s.attributes().forEach(lo, hi, (a, b, attrs) -> {
            if (attrs.freed()) {
                return;
            }
            long g = attrs.granuleBytes() >>> PageGeometry.PAGE_SHIFT;
            long before = Math.min(b, from) - 1;   // the stretch's last page before the range
            long after = Math.max(a, to);          // its first page after it
            long reaching = before >= a && (before & -g) + g > from ? before
                    : after < b && (after & -g) < to ? after : -1;
            if (reaching >= 0) {
                throw new IllegalArgumentException("free(" + offset + ", " + length + ") of " + region + ": the "
                        + attrs.granuleBytes() + "-byte granule of the page at " + (reaching << PageGeometry.PAGE_SHIFT)
                        + ", which stays, reaches into it; free its whole granule, or advise a smaller granularity there first");
            }
        });
    }

    /**
     * Caller's contract: the memory is open and entered, {@code [offset, offset+length)} lies
     * inside the region, is neither empty nor the whole region, and the caller is not a kernel.
     */
    static void free(MigrationEngine engine, Region region, long offset, long length, long timeoutNanos) {
        RegionState s = region.state();
        long from = offset >>> PageGeometry.PAGE_SHIFT;
        long to = Math.ceilDiv(offset + length, PageGeometry.PAGE_BYTES);
        // no granule may straddle either edge: neither the granules of the first and last freed
        // pages nor those of their neighbours (whose granule would reach into the freed part)
        long end = offset + length;
        long[] edges = {offset, end};
        long[] pagesAt = {from, from - 1, to - 1, to};
        for (int i = 0; i < pagesAt.length; i++) {
            long page = pagesAt[i];
            long edge = edges[i / 2];
            if (page < 0 || page >= s.pages() || edge == region.size() || s.attributes().at(page).freed()) {
                continue;   // freed pages have no granule any more
            }
            long granule = s.attributes().at(page).granuleBytes();
            if (edge % granule != 0) {
                throw new IllegalArgumentException("free(" + offset + ", " + length + ") of " + region + ": "
                        + (i < 2 ? "offset " : "end ") + edge + " is not a multiple of the " + granule
                        + "-byte granule of the page at " + (page << PageGeometry.PAGE_SHIFT)
                        + " (the end may also be the region's end, " + region.size() + ")");
            }
        }
        s.lifecycle().enter();
        try {
            Pins.Pin own = s.pins().heldByCurrentThread(from, to);
            if (own != null) {
                throw new PinnedByCallerException(s, own.node(), own.from(), own.to());
            }
            Pins.Pin view = s.pins().liveOn(0, from, to);
            if (view != null) {
                throw new IllegalStateException("free(" + offset + ", " + length + ") of " + region + " refused: a host view of bytes ["
                        + (view.from() << PageGeometry.PAGE_SHIFT) + ", " + (view.to() << PageGeometry.PAGE_SHIFT)
                        + ") is open in thread " + view.owner().getName() + "; close it first");
            }
            // marked first: from here every migration, view, launch and load refuses the range
            // (the engine checks under the block locks), then the frames go as DONT_NEED's do,
            // once the kernels whose pins are on the range have ended (a launch running by device
            // faults holds none there: its next fault in the range is refused, and it fails).
            // Freeing a freed part again only drops again: a free that was interrupted while it
            // waited can be finished so
            synchronized (s.attributes()) {
                // under L7, with the mark: granularity advice changes granules under it, so a free and an
                // advice racing each other cannot both pass their checks and both apply
                refuseGranulesReachingIn(region, offset, length, from, to);
                s.attributes().update(from, to, RangeAttributes.Attrs::asFreed);
            }
            Pins.Pin late;
            try {
                late = engine.discardUnlessViewed(s, from, to, timeoutNanos);
            } catch (MigrationEngine.StillPinned e) {
                // a kernel that may be waiting for this thread (a view of its elsewhere in the region):
                // not waited for longer than a free waits for operations
                throw new IllegalStateException("free(" + offset + ", " + length + ") of " + region + ": the bytes are freed "
                        + "(refused to every access), but " + e.getMessage() + ", so none of their memory is given back "
                        + "yet; once that launch has ended, call free(" + offset + ", " + length + ") again", e);
            }
            if (late != null) {
                // opened by another thread after the check above and before the mark: the pages it
                // covers stay until it closes (refused to every new access meanwhile), the rest went;
                // a free again finishes
                throw new IllegalStateException("free(" + offset + ", " + length + ") of " + region + ": the bytes are freed, "
                        + "but a host view of bytes [" + (late.from() << PageGeometry.PAGE_SHIFT) + ", "
                        + (late.to() << PageGeometry.PAGE_SHIFT) + ") that thread " + late.owner().getName()
                        + " opened while the free began was open, so the host memory of the pages it covers is not "
                        + "given back yet (every other page's is); once it is closed, call free(" + offset + ", " + length
                        + ") again");
            }
        } finally {
            s.lifecycle().exit();
        }
    }
}
