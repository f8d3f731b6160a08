package dev.hetmem.migrate;

import dev.hetmem.internal.RegionState;
import dev.hetmem.pagetable.Block;

import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.Map;

/**
 * Host frames a batch gives back, gathered per region and handed to the kernel in one call at the
 * end of the commit phase: one TLB flush for the batch instead of one per page. With them go the
 * chunks (blocks) that hold no host page once the batch committed, so that their kept frames go
 * back at once ({@code RetainedFrames}).
 */
final class HostReleases {
    private static final class Ranges {
        long[] pairs = new long[32];
        int count;
        /** The blocks the ranges lie in, each once (a batch's runs come in order); whether they still hold host pages is asked at the flush. */
        Block[] blocks = new Block[8];
        int blockCount;

        void addBlock(Block b) {
            if (blockCount > 0 && blocks[blockCount - 1] == b) {
                return;
            }
            if (blockCount == blocks.length) {
                blocks = Arrays.copyOf(blocks, blocks.length * 2);
            }
            blocks[blockCount++] = b;
        }

        /** The indices of the blocks no page of which is the host's now; their kept frames can go at once. */
        long[] vacated() {
            long[] out = new long[blockCount];
            int n = 0;
            for (int i = 0; i < blockCount; i++) {
                Block b = blocks[i];
                assert b.lock.isHeldByCurrentThread() : "block " + b.index() + " unlocked at a batch's host release";
                if (b.residentCount(0) == 0) {
                    out[n++] = b.index();
                }
            }
            return n == out.length ? out : Arrays.copyOf(out, n);
        }
    }

    private final Map<RegionState, Ranges> byRegion = new IdentityHashMap<>(2);
    /** The region of the last addition and its ranges (null if its host side releases nothing): a batch's runs come region by region. */
    private RegionState lastRegion;
    private Ranges last;

    /** Host frames [offset, offset + length) of {@code region}, in {@code block} (locked by the caller), left the host. */
    void add(RegionState region, Block block, long offset, long length) {
        if (region != lastRegion) {
            lastRegion = region;
            // null where its host side dropped them in sync already
            last = region.host().releasesFrames() ? byRegion.computeIfAbsent(region, k -> new Ranges()) : null;
        }
        Ranges r = last;
        if (r == null) {
            return;
        }
        r.addBlock(block);
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
            } catch (RuntimeException | Error x) {
                // an Error too: an assertion (the stress program runs with them), or the one a retain throws on
                // purpose when no thread could start for the background release, after keeping its frames
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
        long[] vacated = r.vacated();   // on this thread, which holds the blocks' locks
        if (r.count < PARALLEL_MIN_RANGES || pool.threads() == 1 || EngineContext.onCallerAlone()) {
            host.release(r.pairs, r.count, vacated, vacated.length);
            return;
        }
        int parts = pool.threads();
        Runnable[] tasks = new Runnable[parts];
        for (int t = 0; t < parts; t++) {
            int from = (int) ((long) r.count * t / parts);
            int to = (int) ((long) r.count * (t + 1) / parts);
            long[] slice = Arrays.copyOfRange(r.pairs, 2 * from, 2 * to);
            // each slice names every vacated chunk: one whose ranges two slices share goes at once whichever
            // retains last (what the other kept is taken with it, or its own record is taken after)
            tasks[t] = () -> host.release(slice, to - from, vacated, vacated.length);
        }
        pool.runAll(tasks);
    }

    /** Below this many ranges one thread releases them all. */
    static final int PARALLEL_MIN_RANGES = 256;
}
