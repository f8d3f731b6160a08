package dev.hetmem;

import static dev.hetmem.driver.PageGeometry.PAGE_SHIFT;

/** Counters of one node, within one scope (a whole memory or one region). */
public final class NodeStats {
    private final NodeInfo node;
    private final long residentBytes;
    private final long freeBytes;
    private final long faults;
    private final long faultBatches;
    private final long[] pagesIn;
    private final long evictions;
    private final long thrashingEvents;

    NodeStats(NodeInfo node, long residentBytes, long freeBytes, long faults, long faultBatches, long[] pagesIn,
              long evictions, long thrashingEvents) {
        this.faultBatches = faultBatches;
        this.evictions = evictions;
        this.thrashingEvents = thrashingEvents;
        this.node = node;
        this.residentBytes = residentBytes;
        this.freeBytes = freeBytes;
        this.faults = faults;
        this.pagesIn = pagesIn;
    }

    public NodeInfo node() {
        return node;
    }

    /** Bytes of the scope's pages resident on this node. */
    public long residentBytes() {
        return residentBytes;
    }

    /** Free device memory (memory scope, device nodes); -1 for the host or a region scope. */
    public long freeBytes() {
        return freeBytes;
    }

    /** Faults taken on this node: host faults for node 0, device faults for a device. */
    public long faults() {
        return faults;
    }

    /**
     * Fault batches: passes of the memory manager that serviced faults together (one host view,
     * one launch's or tile's arguments, one device fault, one page the userfaultfd service took).
     * Faults counts granules; this counts the round trips that brought them, as the kernel's HMM
     * test device counts one fault for a whole-buffer read.
     */
    public long faultBatches() {
        return faultBatches;
    }

    /** Eviction batches that made room on this device. */
    public long evictions() {
        return evictions;
    }

    /** Blocks that bounced to this node and away too often, and were held home for a while. */
    public long thrashingEvents() {
        return thrashingEvents;
    }

    /** Pages that arrived on this node for this reason. */
    public long pagesMigrated(Trigger trigger) {
        return pagesIn[trigger.ordinal()];
    }

    public long bytesMigrated(Trigger trigger) {
        return pagesIn[trigger.ordinal()] << PAGE_SHIFT;
    }

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
                + evictions + " evictions, " + thrashingEvents + " thrashing events";
    }
}
