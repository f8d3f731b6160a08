package dev.hetmem;

import dev.hetmem.internal.RegionState;

/**
 * The pages an operation needs are held elsewhere by the calling thread itself (an open host view,
 * or the kernel it is running), so waiting for them would never end.
 */
public final class PinnedByCallerException extends IllegalStateException {
    public PinnedByCallerException(RegionState region, int node, long fromPage, long toPage) {
        super("pages [" + fromPage + ", " + toPage + ") of " + region + " are pinned on node " + node
                + " by this thread (an open host view or a running kernel); release them first");
    }
}
