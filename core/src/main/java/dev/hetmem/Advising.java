package dev.hetmem;

import dev.hetmem.driver.PageGeometry;
import dev.hetmem.internal.RegionState;
import dev.hetmem.migrate.MigrationEngine;
import dev.hetmem.migrate.MigrationRequest;

import java.util.ArrayList;
import java.util.List;

/**
 * Advice (KFD SVM's range attributes, CUDA's cudaMemAdvise) applied to a range: prefetch and
 * DONT_NEED go to the migration engine at once; granularity, preferred location, accessed-by and
 * read-mostly change the range's attributes, which the engine reads when it next plans.
 *
 * <p>Caller's contract: the arguments are checked (region of this memory, range inside it, memory open).
 */
final class Advising {
    private final UnifiedMemory memory;

    Advising(UnifiedMemory memory) {
        this.memory = memory;
    }

    /** Applies {@code advice} to exactly [offset, offset+length) of {@code region}. */
    void apply(Region region, long offset, long length, Advice advice) {
        RegionState s = region.state();
        long from = offset >>> PageGeometry.PAGE_SHIFT;
        long to = Math.ceilDiv(offset + length, PageGeometry.PAGE_BYTES);
        s.lifecycle().enter();
        try {
            s.refuseFreed(from, to, "advice");
            switch (advice) {
                case Advice.Prefetch(int node) -> {
                    memory.checkNode(node);
                    prefetchGranules(s, from, to, node);
                }
                case Advice.DontNeed() -> {
                    // whole pages only: a partial page's other bytes are someone else's data
                    long first = Math.ceilDiv(offset, PageGeometry.PAGE_BYTES);
                    long end = offset + length == region.size() ? to : (offset + length) >>> PageGeometry.PAGE_SHIFT;
                    if (first < end) {
                        memory.engine().discard(s, first, end);
                    }
                }
                case Advice.Granularity(long bytes) -> {
                    int shift = Long.numberOfTrailingZeros(Checks.granularity(bytes));
                    s.attributes().update(from, to, a -> a.withGranuleShift(shift));
                }
                case Advice.PreferredLocation(int node) -> {
                    if (node != -1) {
                        memory.checkNode(node);
                    }
                    s.attributes().update(from, to, a -> a.withPreferred(node));
                }
                case Advice.AccessedBy(int node, boolean enabled) -> {
                    memory.device(node);
                    s.attributes().update(from, to, a -> a.withAccessedBy(node, enabled));
                }
                case Advice.ReadMostly(boolean enabled) -> {
                    s.attributes().update(from, to, a -> a.withReadMostly(enabled));
                    if (!enabled) {
                        // no more duplicates: each page's copies collapse to one holder on its next write
                        break;
                    }
                }
            }
        } finally {
            s.lifecycle().exit();
        }
    }

    /** [offset, offset+length) to {@code node}, widened to granules, in batches; returns the pages moved. */
    long prefetchRange(Region region, long offset, long length, int node) {
        RegionState s = region.state();
        long from = offset >>> PageGeometry.PAGE_SHIFT;
        long to = Math.ceilDiv(offset + length, PageGeometry.PAGE_BYTES);
        s.lifecycle().enter();
        try {
            return prefetchGranules(s, from, to, node);
        } finally {
            s.lifecycle().exit();
        }
    }

    /**
     * Pages [from, to) widened to granules, to {@code node} (the region's lifecycle entered). The
     * widening stops at freed pages: a granule set after a part was freed may reach into it.
     */
    private long prefetchGranules(RegionState s, long from, long to, int node) {
        long a = s.granuleStart(from);
        long b = s.granuleEnd(to);
        for (long f; (f = s.attributes().firstFreed(a, from)) >= 0; ) {
            a = s.attributes().freedEnd(f);
        }
        long f = s.attributes().firstFreed(to, b);
        if (f >= 0) {
            b = f;
        }
        return memory.engine().migrateRange(s, a, b, node, Trigger.PREFETCH, MigrationEngine.FROM_ANY_NODE);
    }

    /**
     * Prefetches [offset, offset+length) for every offset to {@code node}, in batches of at most
     * what one batch may hold of the device; returns the pages whose data moved.
     */
    long prefetchEach(Region region, long[] offsets, long length, int node) {
        RegionState s = region.state();
        List<MigrationRequest> batch = new ArrayList<>();
        long batchPages = 0;
        long moved = 0;
        long limit = memory.engine().batchPages(node);
        s.lifecycle().enter();
        try {
            for (long off : offsets) {
                Checks.range(off, length, region.size(), region);
                if (length > 0) {
                    s.refuseFreed(off >>> PageGeometry.PAGE_SHIFT, Math.ceilDiv(off + length, PageGeometry.PAGE_BYTES),
                            "a prefetch");
                }
            }
            for (long off : offsets) {
                if (length == 0) {
                    continue;
                }
                long from = off >>> PageGeometry.PAGE_SHIFT;
                long to = Math.ceilDiv(off + length, PageGeometry.PAGE_BYTES);
                // a batch holds at most what one batch may hold of the device (a range larger than
                // that is cut); where whole granules would not fit, the engine moves only these pages
                for (long p = from; p < to; ) {
                    long end = Math.min(to, p + Math.max(1, limit - batchPages));
                    batch.add(new MigrationRequest(s, p, end, false));
                    batchPages += end - p;
                    p = end;
                    if (batchPages >= limit) {
                        moved += memory.engine().ensure(batch, node, Trigger.PREFETCH, MigrationEngine.Pinning.NO_PIN,
                        MigrationEngine.FROM_ANY_NODE).pagesMigrated();
                        batch.clear();
                        batchPages = 0;
                    }
                }
            }
            if (!batch.isEmpty()) {
                moved += memory.engine().ensure(batch, node, Trigger.PREFETCH, MigrationEngine.Pinning.NO_PIN,
                        MigrationEngine.FROM_ANY_NODE).pagesMigrated();
            }
        } finally {
            s.lifecycle().exit();
        }
        return moved;
    }
}
