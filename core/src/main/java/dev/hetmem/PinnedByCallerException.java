package dev.hetmem;

import dev.hetmem.internal.RegionState;

/**
 * The pages an operation needs are held elsewhere by the calling thread itself (an open host view,
 * or the kernel it is running: launched by it, or whose work item it runs on a compute thread, with
 * whatever the launching thread held when it launched), so waiting for them would never end.
 * Close the view, or call after the launch returns, and try again.
 */
public final class PinnedByCallerException extends IllegalStateException {
    /**
     * An exception naming the pinned pages and where they are held; thrown by the core, not by
     * users.
     *
     * @param region   the region whose pages are pinned (the core's own record of it)
     * @param node     the node the pages are pinned on: 0 for the host, 1..n for a device
     * @param fromPage the first pinned page, as a 4 KiB page index in the region
     * @param toPage   the page after the last pinned one
     */
    public PinnedByCallerException(RegionState region, int node, long fromPage, long toPage) {
        super("pages [" + fromPage + ", " + toPage + ") of " + region + " are pinned on node " + node
                + " by this thread (an open host view, or a running kernel: its own, or the one whose work item calls, or"
                + " what that kernel's launching thread held when it launched); release them first");
    }
}
