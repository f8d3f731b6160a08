package dev.hetmem.migrate;

import dev.hetmem.driver.VaRanges;

/**
 * Device entries released or protected by one step, gathered per device so that each device gets
 * one TLB invalidation for the step, not one per page.
 */
final class Invalidations {
    private final VaRanges[] ranges;

    Invalidations(int nodes) {
        this.ranges = new VaRanges[nodes];
    }

    void add(int node, long va, long bytes) {
        if (ranges[node] == null) {
            ranges[node] = new VaRanges();
        }
        ranges[node].add(va, bytes);
    }

    /** One invalidation per device that had entries released or protected. */
    void flush(EngineContext ctx) {
        for (int n = 1; n < ranges.length; n++) {
            if (ranges[n] != null) {
                ctx.driver(n).invalidate(ranges[n]);
                ranges[n] = null;
            }
        }
    }
}
