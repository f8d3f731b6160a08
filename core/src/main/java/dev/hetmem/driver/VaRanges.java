package dev.hetmem.driver;

import java.util.Arrays;

/** A growable list of virtual address ranges (for one coalesced TLB invalidation). */
public final class VaRanges {
    private long[] starts = new long[8];
    private long[] lengths = new long[8];
    private int size;

    /** Adds [va, va+length), merging with the previous range when they touch. */
    public void add(long va, long length) {
        if (size > 0 && starts[size - 1] + lengths[size - 1] == va) {
            lengths[size - 1] += length;
            return;
        }
        if (size == starts.length) {
            starts = Arrays.copyOf(starts, size * 2);
            lengths = Arrays.copyOf(lengths, size * 2);
        }
        starts[size] = va;
        lengths[size] = length;
        size++;
    }

    public int size() {
        return size;
    }

    public boolean isEmpty() {
        return size == 0;
    }

    public long start(int i) {
        return starts[i];
    }

    public long length(int i) {
        return lengths[i];
    }

    public void clear() {
        size = 0;
    }
}
