package dev.hetmem;

/**
 * Advice on a range of a region (GMEM's hmadvise, CUDA's cudaMemAdvise). It applies to exactly the
 * range given, through {@link Region#advise(long, long, Advice)} or
 * {@link UnifiedMemory#advise(Region, long, long, Advice)}; attributes are kept per 4 KiB page.
 * Create advice with the static factories:
 *
 * <pre>{@code
 * region.advise(0, region.size(), Advice.readMostly(true));
 * region.advise(0, 64L << 20, Advice.prefetch(1));   // to device node 1 now
 * }</pre>
 */
public sealed interface Advice {

    /**
     * Migrate the range to {@code node} now (granule-aligned outward), so later accesses do not fault.
     * Advising waits until the pages have moved; {@link UnifiedMemory#prefetchAsync} does not wait.
     *
     * @param node the node to move the pages to: 0 for the host, 1..n for a device; another value
     *             makes {@code advise} throw {@link IllegalArgumentException}
     */
    record Prefetch(int node) implements Advice {}

    /**
     * The contents may be discarded: every node's frames are freed, and the next touch anywhere
     * reads zeros. Only whole pages are discarded: a page the range covers in part keeps its bytes,
     * unless the range ends at the region's end. Pages open in a host view or used by a running
     * kernel wait until released.
     */
    record DontNeed() implements Advice {}

    /**
     * Faults on this range migrate {@code bytes}-sized, aligned granules (a power of two, at least 4 KiB).
     *
     * @param bytes the granule size: a power of two from 4096 (one page) to 1 GiB; another value
     *              makes {@code advise} throw {@link IllegalArgumentException}
     */
    record Granularity(long bytes) implements Advice {}

    /**
     * Pages are mostly read: a read from a node that lacks the page makes a read-only copy there
     * instead of moving it, so several nodes read it locally; a write collapses the copies to the
     * writer. {@code false} turns it off (existing copies stay until the next write).
     *
     * @param enabled true to allow read-only copies, false to stop making them
     */
    record ReadMostly(boolean enabled) implements Advice {}

    /**
     * The pages should live on {@code node}: when that device is full, its blocks that prefer it are
     * evicted last. {@code -1} clears the preference.
     *
     * @param node the preferred node (0 for the host, 1..n for a device), or -1 for none
     */
    record PreferredLocation(int node) implements Advice {}

    /**
     * Advice that the range should live on {@code node}.
     *
     * @param node the preferred node (0 for the host, 1..n for a device), or -1 to clear the
     *             preference; another value makes {@code advise} throw {@link IllegalArgumentException}
     * @return a {@link PreferredLocation} for {@code node}
     */
    static Advice preferredLocation(int node) {
        return new PreferredLocation(node);
    }

    /**
     * Device {@code node} accesses these pages where they are: while a page is on the host, the
     * device maps the host's copy (if its driver can reach host memory, as the emulated device can)
     * instead of migrating it; otherwise pages migrate as usual. {@code enabled = false} removes it.
     *
     * @param node    the device node (1..n); the host, node 0, is refused with
     *                {@link IllegalArgumentException}
     * @param enabled true to add the device to the range's accessed-by set, false to remove it
     */
    record AccessedBy(int node, boolean enabled) implements Advice {}

    /**
     * Advice that device {@code node} reaches the range where it is, mapping host pages in place.
     *
     * @param node the device node (1..n)
     * @return an {@link AccessedBy} that adds {@code node}
     */
    static Advice accessedBy(int node) {
        return new AccessedBy(node, true);
    }

    /**
     * Advice that undoes {@link #accessedBy(int)}: pages migrate to device {@code node} as usual.
     *
     * @param node the device node (1..n)
     * @return an {@link AccessedBy} that removes {@code node}
     */
    static Advice notAccessedBy(int node) {
        return new AccessedBy(node, false);
    }

    /**
     * Advice that the range is mostly read, so reads from other nodes duplicate pages instead of
     * moving them.
     *
     * @param enabled true to turn read duplication on, false to turn it off
     * @return a {@link ReadMostly} advice
     */
    static Advice readMostly(boolean enabled) {
        return new ReadMostly(enabled);
    }

    /**
     * Advice that moves the range, widened to whole granules, to {@code node} now. The pages the
     * widening adds move where nothing keeps them: a page of them that a pin holds elsewhere (a
     * host view, a kernel) stays where it is; the range's own pages wait for such pins.
     *
     * @param node the target node: 0 for the host, 1..n for a device
     * @return a {@link Prefetch} to {@code node}
     */
    static Advice prefetch(int node) {
        return new Prefetch(node);
    }

    /**
     * Advice that the range's contents may be discarded: its frames are freed on every node, and it
     * reads zeros afterwards.
     *
     * @return a {@link DontNeed} advice
     */
    static Advice dontNeed() {
        return new DontNeed();
    }

    /**
     * Advice that faults on the range migrate granules of {@code bytes}. Refused when applied if a
     * granule of the range (aligned to its size) would hold a freed page: a fault would bring that
     * page back with its granule.
     *
     * @param bytes the granule size: a power of two from 4096 to 1 GiB (checked when applied)
     * @return a {@link Granularity} of {@code bytes}
     */
    static Advice granularity(long bytes) {
        return new Granularity(bytes);
    }
}
