package dev.hetmem;

import static dev.hetmem.driver.PageGeometry.PAGE_SHIFT;

/**
 * Counters of one node, within one scope (a whole memory or one region), taken at one moment: an
 * element of {@link Stats#nodes()}. Counters count from the scope's creation.
 */
public final class NodeStats {
    private final NodeInfo node;
    private final long residentBytes;
    private final long freeBytes;
    private final long faults;
    private final long faultBatches;
    private final long[] pagesIn;
    private final long evictions;
    private final long thrashingEvents;
    private final long retainedBytes;
    private final long plainPrefetchesUnplaced;
    private final long pagesDroppedBehind;

    NodeStats(NodeInfo node, long residentBytes, long freeBytes, long faults, long faultBatches, long[] pagesIn,
              long evictions, long thrashingEvents, long retainedBytes, long plainPrefetchesUnplaced,
              long pagesDroppedBehind) {
        this.pagesDroppedBehind = pagesDroppedBehind;
        this.retainedBytes = retainedBytes;
        this.plainPrefetchesUnplaced = plainPrefetchesUnplaced;
        this.faultBatches = faultBatches;
        this.evictions = evictions;
        this.thrashingEvents = thrashingEvents;
        this.node = node;
        this.residentBytes = residentBytes;
        this.freeBytes = freeBytes;
        this.faults = faults;
        this.pagesIn = pagesIn;
    }

    /**
     * Which node these counters are for.
     *
     * @return the node's id, kind, name and capacity
     */
    public NodeInfo node() {
        return node;
    }

    /**
     * Bytes of the scope's pages resident on this node.
     *
     * @return resident bytes, a multiple of 4096; a page with read-only copies counts on each node
     *         that holds one
     */
    public long residentBytes() {
        return residentBytes;
    }

    /**
     * Host frames of pages that left the host, kept mapped until they are released by the 2 MiB
     * chunk ({@link UnifiedMemory.Builder#hostRetainBudget(long)}): counted in the process's
     * resident set, not in {@link #residentBytes()}.
     *
     * @return bytes of kept frames for the host node; 0 for a device
     */
    public long retainedBytes() {
        return retainedBytes;
    }

    /**
     * Free device memory (memory scope, device nodes); -1 for the host or a region scope.
     *
     * @return bytes of this device's memory not holding any page, or -1
     */
    public long freeBytes() {
        return freeBytes;
    }

    /**
     * Faults taken on this node: host faults for node 0, device faults for a device.
     *
     * @return granules made resident on this node because they were accessed (host views, launches,
     *         device faults, and faults the userfaultfd service resolved)
     */
    public long faults() {
        return faults;
    }

    /**
     * Fault batches: passes of the memory manager that serviced faults together (one host view,
     * one launch's or tile's arguments, one device fault, one page the userfaultfd service took).
     * Faults counts granules; this counts the round trips that brought them, as the kernel's HMM
     * test device counts one fault for a whole-buffer read.
     *
     * @return the number of fault batches, at most {@link #faults()}
     */
    public long faultBatches() {
        return faultBatches;
    }

    /**
     * Eviction batches that made room on this device.
     *
     * @return the number of eviction batches; 0 for the host
     */
    public long evictions() {
        return evictions;
    }

    /**
     * Blocks that bounced to this node and away too often, and were held home for a while (see
     * {@link UnifiedMemory.Builder#thrashControl(boolean)}).
     *
     * @return the number of times a block was found thrashing
     */
    public long thrashingEvents() {
        return thrashingEvents;
    }

    /**
     * Plain prefetches to this device ({@link UnifiedMemory#prefetchPlainAsync}) that found no run of
     * consecutive frames at all and were prefetched as {@link UnifiedMemory#prefetchAsync} does: their
     * pages lie wherever frames were free, and a launch taking the range as a plain argument moves
     * them again.
     *
     * @return how many plain prefetches were not placed; 0 for the host
     */
    public long plainPrefetchesUnplaced() {
        return plainPrefetchesUnplaced;
    }

    /**
     * Pages of this device whose copies a tiled launch dropped once their tile had run (drop-behind,
     * on a device whose tiles keep to the CPU caches: {@code DeviceDriver.tileCacheBytes}): copies of
     * read windows that the host holds too, so nothing was copied or lost. Not counted in
     * {@link #evictions()}.
     *
     * @return the copies dropped behind tiles; 0 for the host
     */
    public long pagesDroppedBehind() {
        return pagesDroppedBehind;
    }

    /**
     * Pages that arrived on this node for this reason.
     *
     * @param trigger why the pages moved; not null
     * @return 4 KiB pages whose data moved to this node for {@code trigger}
     */
    public long pagesMigrated(Trigger trigger) {
        return pagesIn[trigger.ordinal()];
    }

    /**
     * Bytes that arrived on this node for this reason.
     *
     * @param trigger why the pages moved; not null
     * @return {@link #pagesMigrated(Trigger)} in bytes (4096 per page)
     */
    public long bytesMigrated(Trigger trigger) {
        return pagesIn[trigger.ordinal()] << PAGE_SHIFT;
    }

    /**
     * Pages that arrived on this node, for any reason.
     *
     * @return the sum of {@link #pagesMigrated(Trigger)} over every {@link Trigger}
     */
    public long pagesMigrated() {
        long n = 0;
        for (long p : pagesIn) {
            n += p;
        }
        return n;
    }

    @Override
    public String toString() {
        return "node " + node.id() + " (" + node.kind() + "): " + Stats.bytes(residentBytes) + " resident"
                + (freeBytes >= 0 ? ", " + Stats.bytes(freeBytes) + " free" : "") + ", " + faults + " faults in " + faultBatches + " batches, "
                + evictions + " evictions, " + thrashingEvents + " thrashing events"
                + (pagesDroppedBehind > 0 ? ", " + pagesDroppedBehind + " pages dropped behind tiles" : "");
    }
}
