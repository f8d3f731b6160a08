package dev.hetmem.migrate;

import dev.hetmem.internal.RegionState;

/**
 * Pages [from, to) of a region must be resident on the target node, writable there if
 * {@code write}, and held there for the target alone if {@code exclusive} (device-exclusive
 * access: see {@link Exclusivity}), and in consecutive frames of the target, in page order, if
 * {@code contiguous} (a plain kernel argument, reached by one base pointer: see {@link Placement}).
 * A read with {@code duplicate} leaves the holders their copies, as a READ_MOSTLY range does (a
 * read streamed through a device larger data than it holds: evicting the copy is then only
 * dropping it). The engine also moves the rest of each granule around them when it can.
 */
public record MigrationRequest(RegionState region, long from, long to, boolean write, boolean exclusive,
                               boolean contiguous, boolean duplicate) {
    public MigrationRequest(RegionState region, long from, long to, boolean write) {
        this(region, from, to, write, false, false, false);
    }

    public MigrationRequest(RegionState region, long from, long to, boolean write, boolean exclusive) {
        this(region, from, to, write, exclusive, false, false);
    }

    public MigrationRequest {
        if (from < 0 || to > region.pages() || from >= to) {
            throw new IllegalArgumentException("pages [" + from + ", " + to + ") outside " + region
                    + " of " + region.pages() + " pages");
        }
    }
}
