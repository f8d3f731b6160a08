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

    boolean needed(RegionState region, long page) {
        for (Interval iv : intervals) {
            if (iv.region == region && page >= iv.from && page < iv.to && iv.segmentOf(page) >= 0) {
                return true;
            }
        }
        return false;
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
