package dev.hetmem.pagetable;

import dev.hetmem.driver.PageGeometry;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.atomic.AtomicReferenceArray;
import java.util.function.Consumer;

/**
 * The logical page table of one region: the single source of truth for where each page is.
 *
 * <p>Blocks are created on first touch. The directory has two levels of 512 entries per 1 GiB, so
 * an untouched region costs one reference per GiB (8 KiB for a terabyte) and nothing per page.
 * Per-node resident page counts are kept as pages change (KFD SVM's {@code vram_pages}), so
 * "how much of this region is on device 2" is O(1).
 */
public final class PageTable {
    private static final int LEAF_SHIFT = 9;
    private static final int LEAF_SIZE = 1 << LEAF_SHIFT;

    private final long pages;
    private final long blocks;
    private final int nodes;
    private final AtomicReferenceArray<AtomicReferenceArray<Block>> directory;
    /** Per node; a counter each, not one shared array: every commit of every thread adds to two of them. */
    private final LongAdder[] residentPages;
    private final AtomicLong metadataBytes = new AtomicLong();
    private final AtomicLong blockCount = new AtomicLong();
    private volatile ResidencyListener listener = ResidencyListener.NONE;

    /** Told when a block first holds a page on a node, and when it holds none there any more. */
    public interface ResidencyListener {
        ResidencyListener NONE = new ResidencyListener() {
            @Override
            public void gained(Block block, int node) {}

            @Override
            public void lost(Block block, int node) {}
        };

        void gained(Block block, int node);

        void lost(Block block, int node);
    }

    public void listener(ResidencyListener l) {
        this.listener = l;
    }

    void gained(Block b, int node) {
        listener.gained(b, node);
    }

    void lost(Block b, int node) {
        listener.lost(b, node);
    }

    public PageTable(long bytes, int nodes) {
        this.pages = Math.ceilDiv(bytes, PageGeometry.PAGE_BYTES);
        this.blocks = Math.ceilDiv(bytes, PageGeometry.BLOCK_BYTES);
        this.nodes = nodes;
        long leaves = Math.ceilDiv(blocks, LEAF_SIZE);
        if (leaves > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("region of " + bytes + " bytes has too many blocks for the page table");
        }
        this.directory = new AtomicReferenceArray<>((int) leaves);
        this.residentPages = new LongAdder[nodes];
        for (int n = 0; n < nodes; n++) {
            residentPages[n] = new LongAdder();
        }
        // a resident-page counter per node: its LongAdder and reference, before any contention
        // spreads it over cells (at most one per CPU, 128 bytes each, and only where threads collide)
        metadataBytes.set(64 + 16 + 4L * leaves + 16 + 4L * nodes + 32L * nodes);
    }

    public long pages() {
        return pages;
    }

    public long blocks() {
        return blocks;
    }

    public int nodes() {
        return nodes;
    }

    /** Pages in block {@code index} (the last block of a region may be partial). */
    public int pagesIn(long index) {
        return (int) Math.min(PageGeometry.BLOCK_PAGES, pages - (index << (PageGeometry.BLOCK_SHIFT - PageGeometry.PAGE_SHIFT)));
    }

    /** The block, or null if never touched. */
    public Block block(long index) {
        AtomicReferenceArray<Block> leaf = directory.get((int) (index >>> LEAF_SHIFT));
        return leaf == null ? null : leaf.get((int) (index & (LEAF_SIZE - 1)));
    }

    public Block blockOrCreate(long index) {
        if (index < 0 || index >= blocks) {
            throw new IndexOutOfBoundsException("block " + index + " outside [0, " + blocks + ")");
        }
        int li = (int) (index >>> LEAF_SHIFT);
        AtomicReferenceArray<Block> leaf = directory.get(li);
        if (leaf == null) {
            AtomicReferenceArray<Block> fresh = new AtomicReferenceArray<>(LEAF_SIZE);
            if (directory.compareAndSet(li, null, fresh)) {
                addMetadata(16 + 4L * LEAF_SIZE);
                leaf = fresh;
            } else {
                leaf = directory.get(li);
            }
        }
        int bi = (int) (index & (LEAF_SIZE - 1));
        Block b = leaf.get(bi);
        if (b == null) {
            Block fresh = new Block(this, index, nodes);
            if (leaf.compareAndSet(bi, null, fresh)) {
                addMetadata(Block.baseBytes(nodes));
                blockCount.incrementAndGet();
                b = fresh;
            } else {
                b = leaf.get(bi);
            }
        }
        return b;
    }

    /** Visits every block created so far, in address order (without locking them). */
    public void forEachBlock(Consumer<Block> visitor) {
        for (int li = 0; li < directory.length(); li++) {
            AtomicReferenceArray<Block> leaf = directory.get(li);
            if (leaf == null) {
                continue;
            }
            for (int bi = 0; bi < LEAF_SIZE; bi++) {
                Block b = leaf.get(bi);
                if (b != null) {
                    visitor.accept(b);
                }
            }
        }
    }

    void residentChanged(int node, int delta) {
        residentPages[node].add(delta);
    }

    void addMetadata(long delta) {
        if (delta != 0) {
            metadataBytes.addAndGet(delta);
        }
    }

    public long residentPages(int node) {
        return residentPages[node].sum();
    }

    public long metadataBytes() {
        return metadataBytes.get();
    }

    public long blockCount() {
        return blockCount.get();
    }

    /**
     * Checks the single-writer invariant and the incremental counts against the bitmaps. Locks each
     * block in turn, so it can run beside other work; returns null if all holds, else what broke.
     */
    public String checkInvariants() {
        long[] counted = new long[nodes];
        StringBuilder problems = new StringBuilder();
        forEachBlock(b -> {
            b.lock.lock();
            try {
                int n = pagesIn(b.index());
                for (int p = 0; p < n; p++) {
                    int writers = 0;
                    int holders = 0;
                    for (int node = 0; node < nodes; node++) {
                        boolean r = b.isResident(node, p);
                        boolean w = b.isWritable(node, p);
                        if (w && !r) {
                            problems.append("block ").append(b.index()).append(" page ").append(p)
                                    .append(" writable but not resident on node ").append(node).append('\n');
                        }
                        if (w) {
                            writers++;
                        }
                        if (r) {
                            holders++;
                            counted[node]++;
                        }
                    }
                    for (int node = 1; node < nodes; node++) {
                        if (b.isRemote(node, p) && (!b.isResident(0, p) || b.isResident(node, p))) {
                            problems.append("block ").append(b.index()).append(" page ").append(p)
                                    .append(" mapped remotely by node ").append(node)
                                    .append(" but not resident on the host alone for it\n");
                        }
                        if (b.isExclusive(node, p) && !b.isWritable(node, p) && !b.isRemoteWritable(node, p)) {
                            problems.append("block ").append(b.index()).append(" page ").append(p)
                                    .append(" exclusive to node ").append(node).append(" that may not write it\n");
                        }
                        if (b.isRemoteWritable(node, p) && !b.isWritable(0, p)) {
                            problems.append("block ").append(b.index()).append(" page ").append(p)
                                    .append(" writable remotely by node ").append(node).append(" but not writable on the host\n");
                        }
                    }
                    if (writers > 1 || (writers == 1 && holders > 1)) {
                        problems.append("block ").append(b.index()).append(" page ").append(p)
                                .append(": ").append(writers).append(" writers, ").append(holders).append(" holders\n");
                    }
                }
            } finally {
                b.lock.unlock();
            }
        });
        for (int node = 0; node < nodes; node++) {
            if (counted[node] != residentPages(node)) {
                problems.append("node ").append(node).append(": counted ").append(counted[node])
                        .append(" resident pages, incremental count says ").append(residentPages(node)).append('\n');
            }
        }
        return problems.isEmpty() ? null : problems.toString();
    }
}
