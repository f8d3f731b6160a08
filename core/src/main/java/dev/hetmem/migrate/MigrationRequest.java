package dev.hetmem.migrate;

import dev.hetmem.internal.RegionState;

/**
 * Pages [from, to) of a region must be resident on the target node, writable there if
 * {@code write}, and held there for the target alone if {@code exclusive} (device-exclusive
 * access: see {@link Exclusivity}). The engine also moves the rest of each granule around them
 * when it can.
 */
public record MigrationRequest(RegionState region, long from, long to, boolean write, boolean exclusive) {
    public MigrationRequest(RegionState region, long from, long to, boolean write) {
        this(region, from, to, write, false);
    }

    public MigrationRequest {
        if (from < 0 || to > region.pages() || from >= to) {
            throw new IllegalArgumentException("pages [" + from + ", " + to + ") outside " + region
                    + " of " + region.pages() + " pages");
        }
    }
}
