package dev.hetmem.loader;

import dev.hetmem.Region;

/**
 * What the loader needs from the core, and no more: a region of exactly the file's size (zero
 * included), the host view it writes into, the device fill of the ring path, the prefetch of the
 * non-overlapped schemes, and freeing on failure. {@link dev.hetmem.UnifiedMemory} implements it.
 */
public interface LoadTarget {
    Region allocateForLoad(long bytes);

    /** Fills untouched pages [offset, offset+length) of the region on a device from host memory at {@code buffer}. */
    void fillDevice(Region region, long offset, long length, int node, long buffer);

    void prefetch(Region region, int node);

    boolean isDevice(int node);

    /** Bytes of memory node {@code node} has (the host's physical memory for node 0), or -1 if unknown. */
    long nodeBytes(int node);

    /** How pages of {@code region}'s host side are populated ahead of a loader's reads. */
    HostPopulator hostPopulator(Region region);
}
