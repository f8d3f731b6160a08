package dev.hetmem;

/**
 * Advice on a range of a region (GMEM's hmadvise, CUDA's cudaMemAdvise). It applies to exactly the
 * range given.
 */
public sealed interface Advice {

    /** Migrate the range to {@code node} now (granule-aligned outward), so later accesses do not fault. */
    record Prefetch(int node) implements Advice {}

    /**
     * The contents may be discarded: every node's frames are freed, and the next touch anywhere
     * reads zeros. Pages open in a host view or used by a running kernel wait until released.
     */
    record DontNeed() implements Advice {}

    /** Faults on this range migrate {@code bytes}-sized, aligned granules (a power of two, at least 4 KiB). */
    record Granularity(long bytes) implements Advice {}

    /**
     * Pages are mostly read: a read from a node that lacks the page makes a read-only copy there
     * instead of moving it, so several nodes read it locally; a write collapses the copies to the
     * writer. {@code false} turns it off (existing copies stay until the next write).
     */
    record ReadMostly(boolean enabled) implements Advice {}

    /**
     * The pages should live on {@code node}: when that device is full, its blocks that prefer it are
     * evicted last. {@code -1} clears the preference.
     */
    record PreferredLocation(int node) implements Advice {}

    static Advice preferredLocation(int node) {
        return new PreferredLocation(node);
    }

    /**
     * Device {@code node} accesses these pages where they are: while a page is on the host, the
     * device maps the host's copy (if its driver can reach host memory, as the emulated device can)
     * instead of migrating it; otherwise pages migrate as usual. {@code enabled = false} removes it.
     */
    record AccessedBy(int node, boolean enabled) implements Advice {}

    static Advice accessedBy(int node) {
        return new AccessedBy(node, true);
    }

    static Advice notAccessedBy(int node) {
        return new AccessedBy(node, false);
    }

    static Advice readMostly(boolean enabled) {
        return new ReadMostly(enabled);
    }

    static Advice prefetch(int node) {
        return new Prefetch(node);
    }

    static Advice dontNeed() {
        return new DontNeed();
    }

    static Advice granularity(long bytes) {
        return new Granularity(bytes);
    }
}
