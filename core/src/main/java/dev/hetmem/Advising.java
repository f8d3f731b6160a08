package dev.hetmem;

import dev.hetmem.driver.PageGeometry;
import dev.hetmem.internal.RegionState;
import dev.hetmem.migrate.MigrationEngine;

import java.util.Arrays;

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
                    // the new granules, aligned, must not reach freed pages: a fault would bring those back
                    // as its neighbours (userfaultfd) or a prefetch widen over them
                    long g = bytes >>> PageGeometry.PAGE_SHIFT;
                    long reachFrom = from & -g;
                    long reachTo = Math.min(s.pages(), Math.ceilDiv(to, g) * g);
                    synchronized (s.attributes()) {
                        // under L7, as a partial free marks its pages: the two cannot both pass and both apply
                        long freed = s.attributes().firstFreed(reachFrom, reachTo);
                        if (freed >= 0) {
                            throw new IllegalArgumentException("granularity " + bytes + " over [" + offset + ", "
                                    + (offset + length) + ") of " + region + ": its granules would reach the freed page at "
                                    + (freed << PageGeometry.PAGE_SHIFT) + "; advise a granularity whose granules hold no freed page");
                        }
                        // L7: a fault service's granules change in the order the attributes do; the
                        // service's first, so that a failure there leaves both as they were
                        s.host().granularity(from, to, shift - PageGeometry.PAGE_SHIFT);
                        s.attributes().update(from, to, a -> a.withGranuleShift(shift));
                    }
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

    /** Pages [from, to) to {@code node} (an asynchronous prefetch), as {@link #prefetchGranules}. */
    long prefetchPages(RegionState s, long from, long to, int node) {
        s.lifecycle().enter();
        try {
            return prefetchGranules(s, from, to, node);
        } finally {
            s.lifecycle().exit();
        }
    }

    /** Pages [from, to) to device {@code node} as a plain argument's ({@link MigrationEngine#migrateConsecutive}). */
    long prefetchPlainPages(RegionState s, long from, long to, int node) {
        s.lifecycle().enter();
        try {
            return memory.engine().migrateConsecutive(s, from, to, node);
        } finally {
            s.lifecycle().exit();
        }
    }

    /**
     * Pages [from, to) to {@code node} (the region's lifecycle entered), in batches; returns the
     * pages moved. The engine widens each batch to whole granules, the pages around the range as
     * pages the call does not need: one a pin keeps elsewhere (a host view's, another thread's or
     * the caller's own), or a freed one, stays where it is, as a prefetch list's neighbours do.
     * They were widened here, as pages the call needed: the prefetch waited for views of pages
     * nobody asked for, and an asynchronous one, whose caller's views were checked against the
     * granules of the call, for ever for a view of the caller's that a coarser granularity set
     * meanwhile brought into the range.
     */
    private long prefetchGranules(RegionState s, long from, long to, int node) {
        return memory.engine().migrateRange(s, from, to, node, Trigger.PREFETCH, MigrationEngine.FROM_ANY_NODE);
    }

    /**
     * Prefetches [offset, offset+length) for every offset to {@code node}, in batches; returns the
     * pages whose data moved. With several copy threads a long list runs as several batches at once
     * ({@link MigrationEngine#ensureEach}), together within what one batch may hold of the device;
     * a sorted list's batches share no block (an unsorted one's may, and those wait for each other).
     * Otherwise the batches run one after another on the calling thread, each as large as a batch
     * may be.
     */
    long prefetchEach(Region region, long[] requested, long length, int node) {
        RegionState s = region.state();
        MigrationEngine engine = memory.engine();
        // checked, then cut and run from this copy: the caller's array may change meanwhile (the
        // batches read it on other threads, after the checks)
        long[] offsets = requested.clone();
        s.lifecycle().enter();
        try {
            boolean sorted = true;
            long previous = Long.MIN_VALUE;
            for (long off : offsets) {
                Checks.range(off, length, region.size(), region);
                if (length > 0) {
                    s.refuseFreed(off >>> PageGeometry.PAGE_SHIFT, Math.ceilDiv(off + length, PageGeometry.PAGE_BYTES),
                            "a prefetch");
                }
                sorted &= off >= previous;
                previous = off;
            }
            if (length == 0 || offsets.length == 0) {
                return 0;
            }
            long limit = engine.batchPages(node);
            long total = (long) offsets.length * Math.ceilDiv(length, PageGeometry.PAGE_BYTES);
            int threads = engine.copyThreads();
            // one batch after another, each as large as a batch may be and widened to whole granules
            // unless those would not fit (MigrationEngine.ensure decides per batch), where a batch on
            // another thread would wait forever for a pin of this thread, in vanilla migration (which
            // measures page by page), for short lists, and where the device is too small for several
            // batches of a block or more side by side
            if (threads == 1 || s.pins().heldByCurrentThread(0, s.pages()) != null || engine.mode() == MigrationMode.VANILLA
                    || total <= PageGeometry.BLOCK_PAGES || limit < 2L * threads * PageGeometry.BLOCK_PAGES) {
                return engine.ensureEach(new PrefetchBatches(s, offsets, length, limit, limit, Long.MAX_VALUE), node,
                        Trigger.PREFETCH, true, 1, memory.background());
            }
            // a few batches per thread, each at least a block (a batch costs a pass over its blocks) and,
            // with the rest of the block it ends in, at most a thread's part of one batch's limit; whole
            // granules only if all of the list's fit one batch, as one batch of the whole list decided
            long share = Math.min(limit / threads - PageGeometry.BLOCK_PAGES,
                    Math.max(PageGeometry.BLOCK_PAGES, Math.ceilDiv(total, 4L * threads)));
            boolean widen = node == 0 || !widenedPagesExceed(s, offsets, sorted, length, limit);
            return engine.ensureEach(new PrefetchBatches(s, offsets, length, limit, share, PIECES_PER_BATCH), node,
                    Trigger.PREFETCH, widen, threads, memory.background());
        } finally {
            s.lifecycle().exit();
        }
    }

    /**
     * Whether the pages of the ranges [offset, offset+length) widened to their granules, overlaps
     * counted once (pages already on the target too: an upper bound of what whole granules would
     * move), are more than {@code limit}. Stops counting once they are: 65,536 scattered pages in
     * 2 MiB granules pass a 256 MiB device's limit half-way through the list.
     */
    private static boolean widenedPagesExceed(RegionState s, long[] offsets, boolean sorted, long length, long limit) {
        if (!sorted) {
            offsets = offsets.clone();
            Arrays.sort(offsets);
        }
        long sum = 0;
        long end = Long.MIN_VALUE;
        for (long off : offsets) {
            long a = Math.max(s.granuleStart(off >>> PageGeometry.PAGE_SHIFT), end);
            long b = s.granuleEnd(Math.ceilDiv(off + length, PageGeometry.PAGE_BYTES));
            if (b > a) {
                sum += b - a;
                if (sum > limit) {
                    return true;
                }
            }
            end = Math.max(end, b);
        }
        return false;
    }

    /**
     * Stretches of scattered pages one batch of a list run side by side takes (then it closes where
     * its block ends). 256 MiB of every other 4 KiB page, two copy threads, emulated device: 8
     * batches of 8,192 pages read 9.2-10.4 GB/s, batches of 512 stretches 10.8-11.1 GB/s (three
     * runs each, alternated, a loop of 100 round trips); in {@code bench migrate --quick}, three
     * runs each alternated with the build before, to the host 64-72% of the plain copy against
     * 57-69%, to the device no change (61-65%). Likely causes, not measured apart: a batch's
     * per-run state (runs, frame lists, the blocks' bits) is walked by four phases with a copy of
     * 32 MiB between two of them, which leaves none of it in the caches; the last of 8 batches on
     * two threads ran alone. One thread gains nothing (6.9-7.3 GB/s either way): the sequential
     * path does not cut so.
     */
    static final long PIECES_PER_BATCH = 512;
}
