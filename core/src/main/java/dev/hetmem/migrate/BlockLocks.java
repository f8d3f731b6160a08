package dev.hetmem.migrate;

import dev.hetmem.internal.RegionState;
import dev.hetmem.pagetable.Block;

import java.util.ArrayList;
import java.util.List;

import static dev.hetmem.driver.PageGeometry.blockOf;
import static dev.hetmem.driver.PageGeometry.firstPage;

/**
 * Taking the block locks of a call (docs/design.md, lock table: the block locks): every block of
 * every interval, in ascending (region id, block index) order, the order {@link Interval#normalize}
 * sorts in; released in reverse. A caller holds them from before planning to after commit.
 */
final class BlockLocks {
    private BlockLocks() {
    }

    static List<Block> lockAll(List<Interval> intervals) {
        List<Block> locked = new ArrayList<>();
        try {
            for (Interval iv : intervals) {
                for (long bi = blockOf(iv.from); bi <= blockOf(iv.to - 1); bi++) {
                    Block b = iv.region.table().blockOrCreate(bi);
                    if (!locked.isEmpty() && locked.getLast() == b) {
                        continue;
                    }
                    b.lock.lock();
                    locked.add(b);
                }
            }
        } catch (RuntimeException | Error e) {
            unlockAll(locked);
            throw e;
        }
        return locked;
    }

    static void unlockAll(List<Block> locked) {
        for (int i = locked.size() - 1; i >= 0; i--) {
            locked.get(i).lock.unlock();
        }
    }

    /** The blocks of {@code locked} (in ascending order) that hold a page of [from, to). */
    static List<Block> within(List<Block> locked, long from, long to) {
        List<Block> out = new ArrayList<>();
        for (Block b : locked) {
            if (b.index() >= blockOf(from) && b.index() <= blockOf(to - 1)) {
                out.add(b);
            }
        }
        return out;
    }

    /** The block's first page index inside [from, ...). */
    static int firstIn(Block b, long from) {
        return (int) Math.max(0, from - firstPage(b.index()));
    }

    /** The block's page index where [..., to) ends, clamped to the region's last page. */
    static int endIn(RegionState region, Block b, long to) {
        return (int) Math.min(region.table().pagesIn(b.index()), to - firstPage(b.index()));
    }
}
