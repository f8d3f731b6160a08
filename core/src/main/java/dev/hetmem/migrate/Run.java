package dev.hetmem.migrate;

import dev.hetmem.internal.RegionState;
import dev.hetmem.pagetable.Block;

/**
 * Consecutive pages of one block that need the same action and are in the same state (the same
 * holders, the same writer): the unit the phases of a migration work on. Never crosses a block, so
 * at most 512 pages.
 */
final class Run {
    /** The target already holds the data; the other copies go and the target becomes the writer. */
    static final int COLLAPSE = 1;
    /** The data is copied from a holder to the target, which becomes the only holder and writer. */
    static final int MOVE = 2;
    /** Resident nowhere: the target gets zero-filled pages. */
    static final int POPULATE = 3;
    /** Resident nowhere: the target gets pages filled from a host buffer ({@link #bufferAddress}). */
    static final int LOAD = 4;
    /** The target gets a read-only copy from a holder; the holders keep theirs but lose write (READ_MOSTLY). */
    static final int DUPLICATE = 5;
    /** The target maps the host's copy in place (ACCESSED_BY): nothing is copied or allocated. */
    static final int REMOTE_MAP = 6;

    final RegionState region;
    final Block block;
    final int first;
    final int count;
    final int action;
    /** Nodes holding the pages before the migration (bit n for node n). */
    final int holders;
    /** The node the data is copied from (MOVE only). */
    final int source;
    /** For LOAD: where the run's first page's bytes are in host memory. */
    long bufferAddress;
    /** Target frames, one per page (device targets of MOVE and POPULATE), filled by the allocate phase. */
    int[] frames;
    /** How many of {@link #frames} are really allocated (all, unless allocation failed part-way). */
    int framesAllocated;
    /** Whether the caller asked to write these pages (POPULATE of a read makes zeros nobody may write yet). */
    boolean write;
    /** The pages the batch's caller asked for; null for batches of no caller (loads, evictions). */
    MigrationEngine.Needed needed;
    /** Frames this run holds in the engine's in-flight count (allocated, not yet committed or undone). */
    int reserved;

    Run(RegionState region, Block block, int first, int count, int action, int holders, int source) {
        this.region = region;
        this.block = block;
        this.first = first;
        this.count = count;
        this.action = action;
        this.holders = holders;
        this.source = source;
    }

    /** Region page number of the run's first page. */
    long page() {
        return (block.index() << (Block.SHIFT - Block.PAGE_SHIFT)) + first;
    }

    long va() {
        return region.pageAddress(page());
    }

    long bytes() {
        return (long) count << Block.PAGE_SHIFT;
    }

    /** The same state and action, for [from, from+n) of this run (vanilla mode's single pages). */
    Run slice(int from, int n) {
        Run r = new Run(region, block, first + from, n, action, holders, source);
        r.write = write;
        r.needed = needed;
        return r;
    }
}
