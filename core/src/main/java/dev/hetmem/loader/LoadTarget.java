package dev.hetmem.loader;

import dev.hetmem.Region;

/**
 * What the loader needs from the core, and no more: a region of exactly the file's size (zero
 * included), the host view it writes into, the device fill of the ring path, the prefetch of the
 * non-overlapped schemes, and freeing on failure. {@link dev.hetmem.UnifiedMemory} implements it.
 */
public interface LoadTarget {
    Region allocateForLoad(long bytes);

    /**
     * Fills pages [offset, offset+length) of the region on a device from host memory at {@code buffer};
     * what host code left in them first (the region is listed while it loads) is replaced.
     */
    void fillDevice(Region region, long offset, long length, int node, long buffer);

    void prefetch(Region region, int node);

    boolean isDevice(int node);

    /** Bytes of memory node {@code node} has (the host's physical memory for node 0), or -1 if unknown. */
    long nodeBytes(int node);

    /**
     * Frees the region of a failed load, the calling thread's own views of it closed first (a free
     * closes its caller's views). Other threads may have opened host views of it meanwhile (it is
     * listed from the start), which refuse a free: they are waited for, within the memory's close
     * timeout, so that the half-loaded region does not stay allocated after the failure. Where
     * another thread's free or the memory's close has begun, that one frees it, and this returns.
     *
     * @throws IllegalStateException if views of other threads stayed open past the timeout, or the
     *         free failed
     */
    void freeFailed(Region region);

    /** How pages of {@code region}'s host side are populated ahead of a loader's reads. */
    HostPopulator hostPopulator(Region region);

    /**
     * Counts the calling thread's part of a load of {@code region} as an operation on it until the
     * handle closes (on the same thread): the region is not freed, nor the memory closed, under the
     * load's threads, and a free or close from inside (the progress callback) is refused at once.
     */
    Operation operateOn(Region region);

    /** An operation counted on a region; {@link #close} ends it. */
    interface Operation extends AutoCloseable {
        @Override
        void close();
    }
}
