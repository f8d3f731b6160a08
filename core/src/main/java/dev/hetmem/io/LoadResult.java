package dev.hetmem.io;

import dev.hetmem.Region;

/**
 * A finished load: the region holding the file's bytes, where they went, how long it took, whether
 * direct I/O was used (and if not, why), and the most host memory the load used besides the
 * region itself (the device ring, or a host staging copy). {@code allocationNanos} is direct-I/O loading's
 * T(allocation) where the load populated host pages ahead of its reads (the overlapped scheme to the
 * host): the time until every page was there; 0 elsewhere.
 */
public record LoadResult(Region region, int node, long bytes, long nanos, LoadScheme scheme, boolean direct,
                         String fallbackReason, long peakExtraHostBytes, long allocationNanos) {
    public double seconds() {
        return nanos / 1e9;
    }

    /** GB/s: 1e9 bytes per second. */
    public double gbps() {
        return nanos == 0 ? 0 : bytes / (double) nanos;
    }
}
