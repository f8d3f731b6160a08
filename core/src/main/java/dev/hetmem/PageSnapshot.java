package dev.hetmem;

import java.util.Objects;

/**
 * Where each page of a range was at one moment (the SNAPSHOT command of the kernel's HMM tests).
 * For each page: the set of nodes holding it, and the node that may write it (-1 when it is
 * read-only everywhere, or untouched). Taken by {@link Region#snapshot(long, long)}, which widens
 * the range to whole 4 KiB pages; page indexes here count from {@link #offset()}, and an index
 * outside [0, {@link #pages()}) throws {@link IndexOutOfBoundsException}.
 *
 * <pre>{@code
 * PageSnapshot s = region.snapshot(0, region.size());
 * long onDevice = s.countOn(1);
 * }</pre>
 */
public final class PageSnapshot {
    private final long offset;
    private final int[] residentMasks;
    private final byte[] writers;
    private final java.util.BitSet freed;

    PageSnapshot(long offset, int[] residentMasks, byte[] writers, java.util.BitSet freed) {
        this.offset = offset;
        this.residentMasks = residentMasks;
        this.writers = writers;
        this.freed = freed;
    }

    /**
     * Whether the page was freed by {@link Region#free(long, long)} (HMM's snapshot reports such a page as an error).
     *
     * @param page the page's index in this snapshot
     * @return true if the page was freed; a freed page is also resident nowhere
     */
    public boolean freed(int page) {
        Objects.checkIndex(page, residentMasks.length);
        return freed.get(page);
    }

    /**
     * Region offset of the first page.
     *
     * @return the offset in bytes of page 0, a multiple of 4096 (the requested offset rounded down)
     */
    public long offset() {
        return offset;
    }

    /**
     * The number of pages in the snapshot.
     *
     * @return the 4 KiB pages the requested range touches, whole or in part
     */
    public int pages() {
        return residentMasks.length;
    }

    /**
     * Never touched, or discarded: resident nowhere, reads as zeros.
     *
     * @param page the page's index in this snapshot
     * @return true if no node held the page
     */
    public boolean untouched(int page) {
        return residentMasks[page] == 0;
    }

    /**
     * Whether a node held a page.
     *
     * @param page the page's index in this snapshot
     * @param node the node: 0 for the host, 1..n for devices
     * @return true if {@code node} held a copy of the page, read-only or writable
     */
    public boolean residentOn(int page, int node) {
        return (residentMasks[page] & bitOf(node)) != 0;
    }

    /** Node {@code node}'s bit in a resident mask, or an exception naming the node and the limit. */
    private static int bitOf(int node) {
        if (node < 0 || node >= UnifiedMemory.MAX_NODES) {
            throw new IllegalArgumentException("node " + node + " outside [0, " + (UnifiedMemory.MAX_NODES - 1) + "]");
        }
        return 1 << node;
    }

    /**
     * Bit n set when node n holds the page.
     *
     * @param page the page's index in this snapshot
     * @return the set of nodes holding the page, as a bit mask; 0 when untouched
     */
    public int residentMask(int page) {
        return residentMasks[page];
    }

    /**
     * The node that may write the page, or -1.
     *
     * @param page the page's index in this snapshot
     * @return the writer node, the only node holding the page (single-writer rule); -1 when the page
     *         is untouched, read-only copies, or protected read-only
     */
    public int writer(int page) {
        return writers[page];
    }

    /**
     * Pages resident on {@code node}.
     *
     * @param node the node: 0 for the host, 1..n for devices
     * @return the number of pages in the snapshot that {@code node} held, read-only or writable
     */
    public long countOn(int node) {
        int bit = bitOf(node);
        long n = 0;
        for (int m : residentMasks) {
            if ((m & bit) != 0) {
                n++;
            }
        }
        return n;
    }

    /**
     * One page as text: "untouched", "node 1 rw", "nodes 0,2 ro", "freed".
     *
     * @param page the page's index in this snapshot
     * @return where the page was, and "rw" when it had a writer or "ro" when not
     */
    public String describe(int page) {
        int m = residentMasks[page];
        if (freed.get(page)) {
            return "freed";
        }
        if (m == 0) {
            return "untouched";
        }
        StringBuilder s = new StringBuilder(Integer.bitCount(m) > 1 ? "nodes " : "node ");
        boolean first = true;
        for (int n = 0; n < 32; n++) {
            if ((m & (1 << n)) != 0) {
                if (!first) {
                    s.append(',');
                }
                s.append(n);
                first = false;
            }
        }
        return s.append(writers[page] >= 0 ? " rw" : " ro").toString();
    }

    /** Where the pages are, in stretches of like pages: "pages 0-511 node 1 rw, 512 untouched". */
    @Override
    public String toString() {
        StringBuilder b = new StringBuilder("PageSnapshot[offset " + offset + ": ");
        int p = 0;
        int stretches = 0;
        while (p < pages()) {
            String d = describe(p);
            int q = p + 1;
            while (q < pages() && describe(q).equals(d)) {
                q++;
            }
            if (stretches++ > 0) {
                b.append(", ");
            }
            if (stretches > 16) {
                b.append("...");
                break;
            }
            b.append(q - p == 1 ? "page " + p : "pages " + p + "-" + (q - 1)).append(' ').append(d);
            p = q;
        }
        return b.append(']').toString();
    }
}
