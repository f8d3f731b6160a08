package dev.hetmem.stress;

import java.util.concurrent.atomic.AtomicLongArray;

/**
 * The work items of one stress launch that finished, each marked by the kernel itself once its
 * store is done, where the device kind can tell its items apart ({@link #recording}): after a
 * launch that failed part-way, a long of an item marked here must hold its old value plus the
 * delta, and any other its old value. Without it the stress could only ask that the items that ran
 * form a prefix of each compute thread's share, and a store lost at the end of a share that did run
 * read as items that never ran.
 */
public final class ItemsRun {
    private final AtomicLongArray bits;
    private final long items;
    private volatile boolean recording;
    private volatile long failAt = -1;

    /**
     * Room for items [0, items), none marked.
     *
     * @param items how many items the launch has
     */
    public ItemsRun(long items) {
        this.items = items;
        this.bits = new AtomicLongArray(Math.toIntExact(Math.ceilDiv(items, 64)));
    }

    /** Said by a device kind whose kernel will mark every item it finishes (before the launch). */
    public void recording() {
        recording = true;
    }

    /**
     * Whether the launch's kernel marks its items: only then does {@link #ran} tell.
     *
     * @return true once a device kind said it records
     */
    public boolean isRecording() {
        return recording;
    }

    /**
     * Item {@code i} finished: called by the kernel after the item's last store.
     *
     * @param i the item, in [0, items)
     */
    public void mark(long i) {
        if (i < 0 || i >= items) {
            throw new IndexOutOfBoundsException("item " + i + " of " + items);
        }
        long bit = 1L << i;
        bits.getAndUpdate((int) (i >>> 6), v -> v | bit);
    }

    /**
     * Whether item {@code i} finished.
     *
     * @param i the item, in [0, items)
     * @return true if its kernel marked it
     */
    public boolean ran(long i) {
        return (bits.get((int) (i >>> 6)) & (1L << i)) != 0;
    }

    /**
     * Asks a recording kernel to throw at item {@code i}, before its store, as user code that fails
     * part-way through a launch does (an injected failure): the items that finished keep their
     * stores, the others none.
     *
     * @param i the item that throws, or -1 for none
     */
    public void failAt(long i) {
        failAt = i;
    }

    /**
     * Called by a recording kernel at the start of item {@code i}: throws where {@link #failAt} asked.
     *
     * @param i the item about to run
     * @throws InjectedItemFailure if item {@code i} is to fail
     */
    public void checkFailure(long i) {
        if (i == failAt) {
            throw new InjectedItemFailure(i);
        }
    }

    /** What a kernel's item throws where {@link #failAt} asked it to: the stress program's own failure. */
    public static final class InjectedItemFailure extends RuntimeException {
        InjectedItemFailure(long item) {
            // suppression on: a failure the launch attaches to it (an undo, a cancelled prefetch's) must show,
            // so that StressRun.injected refuses it as not only injected
            super("injected: work item " + item + " of the launch threw", null, true, false);
        }
    }
}
