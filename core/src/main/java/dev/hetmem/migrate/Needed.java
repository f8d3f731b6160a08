package dev.hetmem.migrate;

import dev.hetmem.internal.RegionState;
import dev.hetmem.pagetable.Block;

import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;
import java.util.function.BiConsumer;

import static dev.hetmem.driver.PageGeometry.blockOf;

/**
 * Which pages a batch's caller asked for (the rest of its granules only came along): eviction of
 * the caller's own blocks may send home what was not asked for, never what was.
 */
final class Needed {
    private final List<Interval> intervals;

    Needed(List<Interval> intervals) {
        this.intervals = intervals;
    }

    /**
     * Whether the caller asked for the page. The intervals are {@link Interval#normalize}'s: sorted by
     * (region id, first page) and disjoint, so the one that can hold the page is found by a binary
     * search (eviction asks this for every resident page of the caller's blocks: a scan of a batch's
     * 512 intervals for each made that quadratic).
     */
    boolean needed(RegionState region, long page) {
        int lo = 0;
        int hi = intervals.size() - 1;
        int found = -1;   // the last interval starting at or before (region, page)
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            Interval iv = intervals.get(mid);
            int byRegion = Integer.compare(iv.region.id(), region.id());
            if (byRegion < 0 || (byRegion == 0 && iv.from <= page)) {
                found = mid;
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        if (found < 0) {
            return false;
        }
        Interval iv = intervals.get(found);
        return iv.region == region && page < iv.to && iv.segmentOf(page) >= 0;
    }

    /** Calls {@code f} once with each block the caller locked (every block of its intervals). */
    void forEachBlock(BiConsumer<RegionState, Block> f) {
        Set<Block> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        for (Interval iv : intervals) {
            for (long bi = blockOf(iv.from); bi <= blockOf(iv.to - 1); bi++) {
                Block b = iv.region.table().block(bi);
                if (b != null && seen.add(b)) {
                    f.accept(iv.region, b);
                }
            }
        }
    }
}
