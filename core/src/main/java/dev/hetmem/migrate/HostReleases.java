package dev.hetmem.migrate;

import dev.hetmem.internal.RegionState;

import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.Map;

/**
 * Host frames a batch gives back, gathered per region and handed to the kernel in one call at the
 * end of the commit phase: one TLB flush for the batch instead of one per page.
 */
final class HostReleases {
    private static final class Ranges {
        long[] pairs = new long[32];
        int count;
    }

    private final Map<RegionState, Ranges> byRegion = new IdentityHashMap<>(2);
    /** The region of the last addition and its ranges (null if its host side releases nothing): a batch's runs come region by region. */
    private RegionState lastRegion;
    private Ranges last;

    void add(RegionState region, long offset, long length) {
        if (region != lastRegion) {
            lastRegion = region;
            // null where its host side dropped them in sync already
            last = region.host().releasesFrames() ? byRegion.computeIfAbsent(region, k -> new Ranges()) : null;
        }
        Ranges r = last;
        if (r == null) {
            return;
        }
        if (r.count > 0 && r.pairs[2 * r.count - 2] + r.pairs[2 * r.count - 1] == offset) {
            r.pairs[2 * r.count - 1] += length;
            return;
        }
        if (2 * r.count == r.pairs.length) {
            r.pairs = Arrays.copyOf(r.pairs, r.pairs.length * 2);
        }
        r.pairs[2 * r.count] = offset;
        r.pairs[2 * r.count + 1] = length;
        r.count++;
    }

    /**
     * Releases everything gathered; many ranges are split over the pool's threads (the kernel's
     * per-page work is CPU-bound). Every region's ranges, whatever an earlier region's release
     * threw (it stopped there, and the later regions' frames were neither kept nor released);
     * then the first failure is thrown.
     */
    void flush(CopyPool pool) {
        Throwable failed = null;
        for (Map.Entry<RegionState, Ranges> e : byRegion.entrySet()) {
            try {
                flush(pool, e.getKey(), e.getValue());
            } catch (RuntimeException | AssertionError x) {   // an assertion too: the stress program runs with them
                failed = CommitPhase.keep(failed, x);
            }
        }
        byRegion.clear();
        lastRegion = null;
        last = null;
        if (failed instanceof Error x) {
            throw x;
        }
        if (failed != null) {
            throw (RuntimeException) failed;
        }
    }

    private static void flush(CopyPool pool, RegionState region, Ranges r) {
        var host = region.host();
        if (r.count < PARALLEL_MIN_RANGES || pool.threads() == 1 || EngineContext.onCallerAlone()) {
            host.release(r.pairs, r.count);
            return;
        }
        int parts = pool.threads();
        Runnable[] tasks = new Runnable[parts];
        for (int t = 0; t < parts; t++) {
            int from = (int) ((long) r.count * t / parts);
            int to = (int) ((long) r.count * (t + 1) / parts);
            long[] slice = Arrays.copyOfRange(r.pairs, 2 * from, 2 * to);
            tasks[t] = () -> host.release(slice, to - from);
        }
        pool.runAll(tasks);
    }

    /** Below this many ranges one thread releases them all. */
    static final int PARALLEL_MIN_RANGES = 256;
}
