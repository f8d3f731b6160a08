package dev.hetmem.migrate;

import dev.hetmem.internal.RegionState;

/**
 * A plain argument found no run of consecutive frames as long as its span on a device whose free
 * frames would hold it: they lie on both sides of pages that cannot leave, the same call's other
 * arguments (needed, in blocks the call holds, so neither eviction nor compaction takes them).
 * Thrown from the allocate phase before the batch changed anything; pages the pass sent home or
 * evicted to make room stay where they went, their data intact, and nothing is pinned. A launch
 * that fits the device and whose argument of that span declares a per-item window then runs tile
 * by tile, each tile needing a shorter run.
 */
public final class NoRunException extends Eviction.DeviceFull {
    private final transient RegionState region;
    private final long from;
    private final long to;

    NoRunException(String message, RegionState region, long from, long to) {
        super(message);
        this.region = region;
        this.from = from;
        this.to = to;
    }

    /** Whether the span that found no run overlaps pages [first, end) of {@code r}. */
    public boolean spans(RegionState r, long first, long end) {
        return r == region && first < to && from < end;
    }
}
