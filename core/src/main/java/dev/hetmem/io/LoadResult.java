package dev.hetmem.io;

import dev.hetmem.Region;

/**
 * A finished load: the region holding the file's bytes, where they went, how long it took, whether
 * direct I/O was used (and if not, why), and the most host memory the load used besides the
 * region itself (the device ring, or a host staging copy). {@code allocationNanos} is direct-I/O loading's
 * T(allocation) where the load populated host pages ahead of its reads (the overlapped scheme to the
 * host): the time until every page was there; 0 elsewhere.
 *
 * @param region the new region holding the file's bytes from offset 0; the caller frees it
 * @param node the node the bytes were loaded to: 0 for the host, 1..n for a device
 * @param bytes the file's size in bytes
 * @param nanos the load's wall-clock time in nanoseconds, allocation of the region included
 * @param scheme the scheme the file was read with
 * @param direct whether the reads bypassed the page cache (O_DIRECT)
 * @param fallbackReason why the reads were not direct (buffered or memory-mapped reads asked for,
 *        an empty file, or a file system that refused O_DIRECT), or {@code null} when they were
 * @param peakExtraHostBytes the most host memory in bytes the load used besides the region: the
 *        device ring, the whole file when a non-overlapped scheme staged it on the host for a
 *        device, or 0 for a load to the host
 * @param allocationNanos nanoseconds until the populating threads had every host page in place,
 *        for an overlapped load to the host; 0 for other loads
 */
public record LoadResult(Region region, int node, long bytes, long nanos, LoadScheme scheme, boolean direct,
                         String fallbackReason, long peakExtraHostBytes, long allocationNanos) {
    /**
     * Returns the load's wall-clock time in seconds.
     *
     * @return {@link #nanos()} divided by 10^9
     */
    public double seconds() {
        return nanos / 1e9;
    }

    /**
     * GB/s: 1e9 bytes per second.
     *
     * @return the file's bytes per nanosecond of the load, or 0 when the load took no measurable time
     */
    public double gbps() {
        return nanos == 0 ? 0 : bytes / (double) nanos;
    }
}
