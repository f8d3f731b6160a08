package dev.hetmem.driver;

import java.util.Arrays;

/**
 * A growable list of virtual address ranges (for one coalesced TLB invalidation). Each range is
 * [start, start + length) in bytes of host virtual address space; the core adds page-aligned
 * ranges. Not thread-safe: the core fills one per device and step, then hands it to
 * {@link DeviceDriver#invalidate}, which only reads it.
 */
public final class VaRanges {
    private long[] starts = new long[8];
    private long[] lengths = new long[8];
    private int size;

    /** An empty list of ranges. */
    public VaRanges() {
    }

    /**
     * Adds [va, va+length), merging with the previous range when they touch. Ranges are not sorted
     * and overlaps are not removed; only a range that starts where the last one ends is merged.
     *
     * @param va the first byte's host virtual address
     * @param length the range's length in bytes
     */
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

    /**
     * The number of ranges, after merging.
     *
     * @return the range count; 0 when empty
     */
    public int size() {
        return size;
    }

    /**
     * Whether the list holds no range.
     *
     * @return true if {@link #size()} is 0
     */
    public boolean isEmpty() {
        return size == 0;
    }

    /**
     * Where range {@code i} begins.
     *
     * @param i the range's index, in [0, {@link #size()})
     * @return the host virtual address of the range's first byte
     */
    public long start(int i) {
        return starts[i];
    }

    /**
     * How long range {@code i} is.
     *
     * @param i the range's index, in [0, {@link #size()})
     * @return the range's length in bytes
     */
    public long length(int i) {
        return lengths[i];
    }

    /** Removes every range, keeping the arrays for reuse. */
    public void clear() {
        size = 0;
    }
}
