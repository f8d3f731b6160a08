package dev.hetmem;

import java.util.Objects;

/**
 * A region argument of a kernel launch: the range the kernel may touch and how, and optionally the
 * part each work item touches.
 *
 * <p>Before a kernel runs, the core makes the argument's pages resident on the device with this
 * permission (GMEM's device fault), granule by granule; see {@link UnifiedMemory#launch} for what
 * happens when the arguments are larger than the device.
 *
 * <p>A per-item window ({@link #perItem(long, long)}) declares that work item {@code i} touches
 * only bytes {@code [i * stride, i * stride + extent)} of the argument (counted from its
 * {@code offset}); the launch may then run tile by tile, each tile with only its items' windows
 * resident. A kernel that touches more than its window fails on a device that cannot take faults.
 *
 * @param itemStride bytes between the windows of consecutive work items; 0 when no window is declared
 * @param itemExtent bytes of each item's window; 0 when no window is declared
 */
public record KernelArg(Region region, long offset, long length, Access access, long itemStride, long itemExtent) {
    public KernelArg {
        Objects.requireNonNull(region, "region");
        Objects.requireNonNull(access, "access");
        if (itemStride < 0 || itemExtent < 0 || (itemStride == 0) != (itemExtent == 0)) {
            throw new IllegalArgumentException("per-item window stride " + itemStride + " and extent " + itemExtent
                    + " must both be positive, or both 0 (no window)");
        }
    }

    /** An argument with no per-item window: every item may touch all of it. */
    public KernelArg(Region region, long offset, long length, Access access) {
        this(region, offset, length, access, 0, 0);
    }

    public static KernelArg read(Region r) {
        return new KernelArg(r, 0, r.size(), Access.READ);
    }

    public static KernelArg write(Region r) {
        return new KernelArg(r, 0, r.size(), Access.WRITE);
    }

    public static KernelArg readWrite(Region r) {
        return new KernelArg(r, 0, r.size(), Access.READ_WRITE);
    }

    public static KernelArg of(Region r, long offset, long length, Access access) {
        return new KernelArg(r, offset, length, access);
    }

    /** This argument, with work item {@code i} touching bytes {@code [i * stride, (i + 1) * stride)} of it. */
    public KernelArg perItem(long stride) {
        return perItem(stride, stride);
    }

    /**
     * This argument, with work item {@code i} touching bytes {@code [i * stride, i * stride + extent)}
     * of it (a row of a matrix: {@code stride} = row bytes; a stencil: {@code extent} larger than
     * {@code stride} by the halo).
     */
    public KernelArg perItem(long stride, long extent) {
        if (stride <= 0 || extent <= 0) {
            throw new IllegalArgumentException("per-item window stride " + stride + " and extent " + extent
                    + " must be positive");
        }
        return new KernelArg(region, offset, length, access, stride, extent);
    }

    /** Whether a per-item window is declared. */
    public boolean hasWindow() {
        return itemStride > 0;
    }

    /**
     * Bytes of the argument (relative to {@link #offset}) that items [from, to) touch, clamped to
     * the argument: {start, end}.
     */
    long[] window(long from, long to) {
        if (!hasWindow() || to <= from) {
            return new long[] {0, length};
        }
        long start = Math.min(length, saturatedProduct(from, itemStride));
        long lastStart = saturatedProduct(to - 1, itemStride);
        long end = lastStart > length - itemExtent ? length : lastStart + itemExtent;
        return new long[] {start, Math.max(start, Math.min(length, end))};
    }

    /** a * b for non-negative a and b, or Long.MAX_VALUE where it does not fit. */
    private static long saturatedProduct(long a, long b) {
        long lo = a * b;
        return Math.multiplyHigh(a, b) != 0 || lo < 0 ? Long.MAX_VALUE : lo;
    }
}
