package dev.hetmem;

import java.util.List;

/**
 * A snapshot of counters for one scope: a whole {@link UnifiedMemory} or one {@link Region}.
 * {@code metadataBytes} is what the core keeps to track the scope's pages (page table, frame maps,
 * attributes; for a memory also the device allocators).
 *
 * <pre>{@code
 * System.out.print(mem.stats().format());
 * long onDevice = region.stats().node(1).residentBytes();
 * }</pre>
 *
 * @param nodes         one entry per node, in node order (index 0 is the host)
 * @param metadataBytes bytes the core keeps to track the scope
 * @param touchedBytes  bytes of the scope's pages resident anywhere, summed over nodes (a page
 *                      with copies on two nodes counts twice)
 */
public record Stats(List<NodeStats> nodes, long metadataBytes, long touchedBytes) {
    /**
     * The counters of one node.
     *
     * @param id the node: 0 for the host, 1..n for devices
     * @return the counters of node {@code id}
     * @throws IndexOutOfBoundsException if there is no node {@code id}
     */
    public NodeStats node(int id) {
        return nodes.get(id);
    }

    /**
     * Metadata bytes per GiB of memory touched (resident somewhere); 0 when nothing is touched.
     *
     * @return {@code metadataBytes} scaled to 2^30 bytes of {@code touchedBytes}
     */
    public double metadataPerGiB() {
        return touchedBytes == 0 ? 0 : metadataBytes * (double) (1L << 30) / touchedBytes;
    }

    /**
     * A table for people: one line per node.
     *
     * @return a header line, one line per node (resident bytes, faults, fault batches, bytes
     *         migrated in per {@link Trigger}, evictions), and a metadata line, each ending in a line
     *         separator
     */
    public String format() {
        StringBuilder s = new StringBuilder();
        s.append(String.format("%-5s %-9s %12s %8s %8s %13s %13s %13s %13s %13s %9s %9s%n", "node", "kind", "resident", "faults",
                "batches", "in:fault", "in:prefetch", "in:release", "in:load", "in:eviction", "evictions", "thrashing"));
        for (NodeStats n : nodes) {
            s.append(String.format("%-5d %-9s %12s %8d %8d %13s %13s %13s %13s %13s %9d %9d%n", n.node().id(), n.node().kind(),
                    bytes(n.residentBytes()), n.faults(), n.faultBatches(), bytes(n.bytesMigrated(Trigger.FAULT)),
                    bytes(n.bytesMigrated(Trigger.PREFETCH)), bytes(n.bytesMigrated(Trigger.RELEASE)),
                    bytes(n.bytesMigrated(Trigger.LOAD)), bytes(n.bytesMigrated(Trigger.EVICTION)), n.evictions(), n.thrashingEvents()));
        }
        long kept = nodes.isEmpty() ? 0 : nodes.get(0).retainedBytes();
        if (kept > 0) {
            s.append(String.format("host frames kept for release by the chunk: %s%n", bytes(kept)));
        }
        s.append(String.format("metadata %s for %s touched", bytes(metadataBytes), bytes(touchedBytes)));
        if (touchedBytes >= 256L << 20) {
            // per GiB only where it means something: small scopes are dominated by fixed costs
            s.append(String.format(" (%.0f bytes per GiB)", metadataPerGiB()));
        }
        s.append(String.format("%n"));
        return s.toString();
    }

    /** The same table as {@link #format()}. */
    @Override
    public String toString() {
        return format();
    }

    static String bytes(long b) {
        if (b < 10 * 1024) {
            return b + " B";
        }
        if (b < 10L << 20) {
            return String.format("%.1f KiB", b / 1024.0);
        }
        if (b < 10L << 30) {
            return String.format("%.1f MiB", b / (double) (1L << 20));
        }
        return String.format("%.2f GiB", b / (double) (1L << 30));
    }
}
