package dev.hetmem.migrate;

import dev.hetmem.driver.VaRanges;
import dev.hetmem.internal.RegionState;

import java.util.ArrayList;
import java.util.List;

/**
 * Device entries released or protected by one step, gathered per device so that each device gets
 * one TLB invalidation for the step, not one per page; and the device frames those entries named,
 * freed only after the invalidation (a TLB shootdown before the frame is reused: a device that
 * takes faults while kernels run may still be using a translation until its invalidation returns).
 */
final class Invalidations {
    private record Deferred(RegionState region, FrameReleases frees, boolean hostInLine) {}

    private final VaRanges[] ranges;
    private final List<Deferred> frees = new ArrayList<>(2);

    Invalidations(int nodes) {
        this.ranges = new VaRanges[nodes];
    }

    void add(int node, long va, long bytes) {
        if (ranges[node] == null) {
            ranges[node] = new VaRanges();
        }
        ranges[node].add(va, bytes);
    }

    /** Frees {@code f}'s frames after the invalidation ({@link FrameReleases#flush} with {@code hostInLine}). */
    void freeAfter(RegionState region, FrameReleases f, boolean hostInLine) {
        frees.add(new Deferred(region, f, hostInLine));
    }

    /** Whether entries or frees wait for {@link #flush}. */
    boolean pending() {
        if (!frees.isEmpty()) {
            return true;
        }
        for (VaRanges r : ranges) {
            if (r != null) {
                return true;
            }
        }
        return false;
    }

    /** One invalidation per device that had entries released or protected, then the deferred frees. */
    void flush(EngineContext ctx) {
        RuntimeException first = null;
        boolean[] failed = null;
        for (int n = 1; n < ranges.length; n++) {
            if (ranges[n] != null) {
                try {
                    ctx.driver(n).invalidate(ranges[n]);
                } catch (RuntimeException e) {
                    first = first == null ? e : first;
                    if (failed == null) {
                        failed = new boolean[ranges.length];
                    }
                    failed[n] = true;   // that device may still use its frames: they are not freed
                }
                ranges[n] = null;
            }
        }
        for (Deferred d : frees) {
            try {
                d.frees.flush(d.region, d.hostInLine, failed);
            } catch (RuntimeException e) {
                first = first == null ? e : first;
            }
        }
        frees.clear();
        if (first != null) {
            throw first;
        }
    }

    /** {@link #flush} on the way out of a step that failed: a second failure is added to the first. */
    void flushAfterFailure(EngineContext ctx, Throwable failure) {
        try {
            flush(ctx);
        } catch (RuntimeException e) {
            failure.addSuppressed(e);
        }
    }
}
