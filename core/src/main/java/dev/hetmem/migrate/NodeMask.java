package dev.hetmem.migrate;

/**
 * Walks the set bits of a node mask (bit n for node n, node 0 the host), so that the phases say
 * which nodes they visit instead of repeating the bit arithmetic:
 * {@code for (int n = NodeMask.first(m); n >= 0; n = NodeMask.next(m, n))}.
 */
final class NodeMask {
    private NodeMask() {
    }

    /** The lowest node in {@code mask}, or -1. */
    static int first(int mask) {
        return mask == 0 ? -1 : Integer.numberOfTrailingZeros(mask);
    }

    /** The lowest node in {@code mask} above {@code node}, or -1. */
    static int next(int mask, int node) {
        int rest = node >= 31 ? 0 : mask & (-1 << (node + 1));
        return rest == 0 ? -1 : Integer.numberOfTrailingZeros(rest);
    }

    /** {@code mask} without the host (node 0) and without {@code node}. */
    static int devicesBut(int mask, int node) {
        return mask & ~(1 << node) & ~1;
    }
}
