package dev.hetmem.migrate;

import dev.hetmem.internal.RegionState;
import dev.hetmem.driver.PageGeometry;
import dev.hetmem.pagetable.Block;

import static dev.hetmem.driver.PageGeometry.firstPage;

/**
 * Consecutive pages of one block that need the same action and are in the same state (the same
 * holders, the same writer): the unit the phases of a migration work on. Never crosses a block, so
 * at most a block of pages. The state carried from phase to phase of a batch
 * (frames allocated, frames counted in flight) lives here.
 */
final class Run {
    final RegionState region;
    final Block block;
    final int first;
    final int count;
    final Action action;
    /** Nodes holding the pages before the migration (bit n for node n). */
    final int holders;
    /** The node the data is copied from (MOVE and DUPLICATE), else -1. */
    final int source;
    /** For LOAD: where the run's first page's bytes are in host memory. */
    long bufferAddress;
    /** Target frames, one per page (device targets of every action that {@link Action#allocates}), filled by the allocate phase. */
    int[] frames;
    /** How many of {@link #frames} are really allocated (all, unless allocation failed part-way). */
    int framesAllocated;
    /** Whether the caller asked to write these pages (POPULATE of a read makes zeros nobody may write yet). */
    boolean write;
    /** The pages the batch's caller asked for; null for batches of no caller (loads, evictions). */
    Needed needed;
    /** Frames this run holds in the engine's in-flight count (allocated, not yet committed or undone). */
    int reserved;
    /** Whether the copy phase handed the run's copy home to the host side ({@code HostSide.copyHomeAll}). */
    boolean copiedHome;

    Run(RegionState region, Block block, int first, int count, Action action, int holders, int source) {
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
        return firstPage(block.index()) + first;
    }

    long va() {
        return region.pageAddress(page());
    }

    long bytes() {
        return PageGeometry.bytes(count);
    }

    /** The frames of the run's pages on device {@code node} (block locked, pages resident there), in a new array. */
    int[] framesOn(int node) {
        int[] out = new int[count];
        for (int i = 0; i < count; i++) {
            out[i] = block.frame(node, first + i);
        }
        return out;
    }

    /**
     * How many pages from page {@code i} of the run lie in consecutive frames both on device
     * {@code node} (where they are copied from) and in {@link #frames} (where they are copied to):
     * one device-to-device copy's worth.
     */
    int stretchOn(int node, int i) {
        int src = block.frame(node, first + i);
        int n = 1;
        while (i + n < count && frames[i + n] == frames[i] + n && block.frame(node, first + i + n) == src + n) {
            n++;
        }
        return n;
    }

    /** The same state and action, for [from, from+n) of this run (vanilla mode's single pages). */
    Run slice(int from, int n) {
        Run r = new Run(region, block, first + from, n, action, holders, source);
        r.write = write;
        r.needed = needed;
        return r;
    }
}
