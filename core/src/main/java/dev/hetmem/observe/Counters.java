package dev.hetmem.observe;

import dev.hetmem.Trigger;

import java.util.concurrent.atomic.LongAdder;

/**
 * Event counters of one scope (the whole memory, or one region), per node: faults taken and pages
 * that arrived on the node, by trigger. LongAdders, because copy threads and faulting threads
 * update them concurrently and nobody reads them on a hot path.
 */
public final class Counters {
    private static final int TRIGGERS = Trigger.values().length;

    private final int nodes;
    private final LongAdder[] faults;
    private final LongAdder[] faultBatches;
    private final LongAdder[] pagesIn;
    private final LongAdder[] evictions;
    private final LongAdder[] thrashing;
    private final LongAdder[] unplaced;
    private final LongAdder[] droppedBehind;

    public Counters(int nodes) {
        this.nodes = nodes;
        this.faults = adders(nodes);
        this.faultBatches = adders(nodes);
        this.pagesIn = adders(nodes * TRIGGERS);
        this.evictions = adders(nodes);
        this.thrashing = adders(nodes);
        this.unplaced = adders(nodes);
        this.droppedBehind = adders(nodes);
    }

    private static LongAdder[] adders(int n) {
        LongAdder[] a = new LongAdder[n];
        for (int i = 0; i < n; i++) {
            a[i] = new LongAdder();
        }
        return a;
    }

    public int nodes() {
        return nodes;
    }

    /**
     * One fault batch on {@code node} (host faults on node 0, device faults on device nodes):
     * {@code count} granules made resident by one pass of the engine, as UVM services the faults
     * of one fault-buffer read together and the kernel's HMM test device counts one fault per
     * {@code hmm_range_fault} pass. A batch of none is not counted.
     */
    public void fault(int node, long count) {
        if (count > 0) {
            faults[node].add(count);
            faultBatches[node].increment();
        }
    }

    /** Fault batches counted on {@code node} (see {@link #fault}). */
    public long faultBatches(int node) {
        return faultBatches[node].sum();
    }

    public void migrated(int toNode, Trigger trigger, long pages) {
        pagesIn[toNode * TRIGGERS + trigger.ordinal()].add(pages);
    }

    /** An eviction batch left {@code node} with {@code pages} pages. */
    public void evicted(int node) {
        evictions[node].increment();
    }

    public long evictions(int node) {
        return evictions[node].sum();
    }

    /** A block that kept moving to {@code node} and away was held home. */
    public void thrashed(int node) {
        thrashing[node].increment();
    }

    public long thrashingEvents(int node) {
        return thrashing[node].sum();
    }

    /** A plain prefetch to {@code node} found no run of consecutive frames and was prefetched as an ordinary one. */
    public void plainPrefetchUnplaced(int node) {
        unplaced[node].increment();
    }

    public long plainPrefetchesUnplaced(int node) {
        return unplaced[node].sum();
    }

    /** A tiled launch dropped {@code pages} of {@code node}'s copies of a tile's read windows once it ran. */
    public void droppedBehind(int node, long pages) {
        droppedBehind[node].add(pages);
    }

    public long pagesDroppedBehind(int node) {
        return droppedBehind[node].sum();
    }

    public long faults(int node) {
        return faults[node].sum();
    }

    public long pagesIn(int node, Trigger trigger) {
        return pagesIn[node * TRIGGERS + trigger.ordinal()].sum();
    }
}
