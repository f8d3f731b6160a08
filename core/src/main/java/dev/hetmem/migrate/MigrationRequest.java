package dev.hetmem.migrate;

import dev.hetmem.internal.RegionState;

/**
 * Pages [from, to) of a region must be resident on the target node, writable there if
 * {@code write}. The engine also moves the rest of each granule around them when it can.
 */
public record MigrationRequest(RegionState region, long from, long to, boolean write) {
    public MigrationRequest {
        if (from < 0 || to > region.pages() || from >= to) {
            throw new IllegalArgumentException("pages [" + from + ", " + to + ") outside " + region
                    + " of " + region.pages() + " pages");
        }
    }
}
