package dev.hetmem.migrate;

import java.util.BitSet;

/**
 * Device frames that left the page table while a running kernel still reads them
 * (DETACHABLE_PINS in {@link dev.hetmem.internal.Pins}): allocated, named by no page, and freed
 * when the last kernel that bound them ends. Recorded here so that {@code verify()} counts them as
 * held rather than lost, and sees any frame that a page names while it is kept.
 *
 * <p>This object's monitor is a leaf lock (docs/design.md, lock table, L25).
 */
final class KeptFrames {
    private final BitSet[] frames;

    KeptFrames(int nodes) {
        frames = new BitSet[nodes];
        for (int n = 0; n < nodes; n++) {
            frames[n] = new BitSet();
        }
    }

    /** Marks {@code kept}, all or none: a frame kept already, or twice in {@code kept} (a bug), throws with nothing marked. */
    synchronized void keep(int node, int[] kept) {
        for (int i = 0; i < kept.length; i++) {
            if (frames[node].get(kept[i])) {
                for (int j = 0; j < i; j++) {
                    frames[node].clear(kept[j]);
                }
                throw new IllegalStateException("device node " + node + ": frame " + kept[i] + " kept twice for running kernels");
            }
            frames[node].set(kept[i]);
        }
    }

    synchronized void release(int node, int[] kept) {
        for (int f : kept) {
            frames[node].clear(f);
        }
    }

    /** A copy of the frames of {@code node} kept now. */
    synchronized BitSet on(int node) {
        return (BitSet) frames[node].clone();
    }
}
