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
 * resident. A kernel that touches more than its window fails on a device that cannot take faults,
 * in a launch with a plain argument (each tile's windowed arguments are bound to their windows
 * there), and in userfaultfd mode (only with host views does the launch fault in what a tile's
 * items reach outside their windows); otherwise such an access faults the page in. The check is by
 * page on OpenCL (an access outside the tile's window but in one of its pages goes through: that
 * page is in place for the tile) and to the byte on the emulated device.
 *
 * <pre>{@code
 * mem.launch(1, kernel, rows, KernelArg.read(matrix).perItem(rowBytes), KernelArg.write(out).perItem(4));
 * }</pre>
 *
 * <p>The range is checked when the argument is launched: a region of another memory or a range
 * outside the region is refused there with {@link IllegalArgumentException} or
 * {@link IndexOutOfBoundsException}.
 *
 * @param region     the region the kernel reaches; not null
 * @param offset     the argument's first byte, as a region offset
 * @param length     the argument's size in bytes (positive)
 * @param access     how the kernel uses the range; not null
 * @param itemStride bytes between the windows of consecutive work items (or groups of
 *                   {@code itemsPerWindow} items); 0 when no window is declared
 * @param itemExtent bytes of each window; 0 when no window is declared
 * @param itemsPerWindow consecutive work items that share one window (1, or a work-group's size
 *                   for an output written once per group: {@link #perItems})
 */
public record KernelArg(Region region, long offset, long length, Access access, long itemStride, long itemExtent,
                        long itemsPerWindow) {
    /**
     * Checks the components.
     *
     * @param region     the region the kernel reaches; not null
     * @param offset     the argument's first byte, as a region offset
     * @param length     the argument's size in bytes (positive)
     * @param access     how the kernel uses the range; not null
     * @param itemStride bytes between the windows of consecutive work items; 0 for no window
     * @param itemExtent bytes of each item's window; 0 for no window
     * @param itemsPerWindow consecutive items that share one window; at least 1
     * @throws NullPointerException if {@code region} or {@code access} is null
     * @throws IllegalArgumentException if {@code itemStride} or {@code itemExtent} is negative, or
     *         only one of them is 0, or {@code itemsPerWindow} is below 1
     */
    public KernelArg {
        Objects.requireNonNull(region, "region");
        Objects.requireNonNull(access, "access");
        if (itemStride < 0 || itemExtent < 0 || (itemStride == 0) != (itemExtent == 0)) {
            throw new IllegalArgumentException("per-item window stride " + itemStride + " and extent " + itemExtent
                    + " must both be positive, or both 0 (no window)");
        }
        if (itemsPerWindow < 1) {
            throw new IllegalArgumentException("items per window " + itemsPerWindow + " must be at least 1");
        }
    }

    /**
     * An argument with item {@code i} touching bytes {@code [i * itemStride, i * itemStride + itemExtent)}.
     *
     * @param region     the region the kernel reaches; not null
     * @param offset     the argument's first byte, as a region offset
     * @param length     the argument's size in bytes (positive)
     * @param access     how the kernel uses the range; not null
     * @param itemStride bytes between the windows of consecutive work items; 0 for no window
     * @param itemExtent bytes of each item's window; 0 for no window
     * @throws NullPointerException if {@code region} or {@code access} is null
     * @throws IllegalArgumentException as the canonical constructor
     */
    public KernelArg(Region region, long offset, long length, Access access, long itemStride, long itemExtent) {
        this(region, offset, length, access, itemStride, itemExtent, 1);
    }

    /**
     * An argument with no per-item window: every item may touch all of it.
     *
     * @param region the region the kernel reaches; not null
     * @param offset the argument's first byte, as a region offset
     * @param length the argument's size in bytes (positive)
     * @param access how the kernel uses the range; not null
     * @throws NullPointerException if {@code region} or {@code access} is null
     */
    public KernelArg(Region region, long offset, long length, Access access) {
        this(region, offset, length, access, 0, 0);
    }

    /**
     * The whole of {@code r}, with access {@link Access#READ} and no per-item window.
     *
     * @param r the region; not null
     * @return an argument covering bytes [0, {@code r.size()}) of {@code r}
     */
    public static KernelArg read(Region r) {
        return new KernelArg(r, 0, r.size(), Access.READ, 0, 0, 1);
    }

    /**
     * The whole of {@code r}, with access {@link Access#WRITE} and no per-item window.
     *
     * @param r the region; not null
     * @return an argument covering bytes [0, {@code r.size()}) of {@code r}
     */
    public static KernelArg write(Region r) {
        return new KernelArg(r, 0, r.size(), Access.WRITE, 0, 0, 1);
    }

    /**
     * The whole of {@code r}, with access {@link Access#READ_WRITE} and no per-item window.
     *
     * @param r the region; not null
     * @return an argument covering bytes [0, {@code r.size()}) of {@code r}
     */
    public static KernelArg readWrite(Region r) {
        return new KernelArg(r, 0, r.size(), Access.READ_WRITE, 0, 0, 1);
    }

    /**
     * Part of {@code r}, with no per-item window; the same as the four-argument constructor.
     *
     * @param r      the region; not null
     * @param offset the argument's first byte, as a region offset
     * @param length the argument's size in bytes (positive)
     * @param access how the kernel uses the range; not null
     * @return an argument covering bytes [offset, offset + length) of {@code r}
     */
    public static KernelArg of(Region r, long offset, long length, Access access) {
        return new KernelArg(r, offset, length, access);
    }

    /**
     * This argument, with work item {@code i} touching bytes {@code [i * stride, (i + 1) * stride)} of it.
     *
     * @param stride bytes of each item's window and between consecutive windows; positive
     * @return a copy of this argument with the window declared
     * @throws IllegalArgumentException if {@code stride} is not positive
     */
    public KernelArg perItem(long stride) {
        return perItem(stride, stride);
    }

    /**
     * This argument, with work item {@code i} touching bytes {@code [i * stride, i * stride + extent)}
     * of it (a row of a matrix: {@code stride} = row bytes; a stencil: {@code extent} larger than
     * {@code stride} by the halo).
     *
     * @param stride bytes between the windows of consecutive items; positive
     * @param extent bytes of each item's window; positive, and may be larger or smaller than
     *               {@code stride}
     * @return a copy of this argument with the window declared
     * @throws IllegalArgumentException if {@code stride} or {@code extent} is not positive
     */
    public KernelArg perItem(long stride, long extent) {
        if (stride <= 0 || extent <= 0) {
            throw new IllegalArgumentException("per-item window stride " + stride + " and extent " + extent
                    + " must be positive");
        }
        return new KernelArg(region, offset, length, access, stride, extent, 1);
    }

    /**
     * This argument, with every {@code items} consecutive work items sharing one window: items
     * {@code [u * items, (u + 1) * items)} touch bytes {@code [u * stride, u * stride + extent)}
     * (a work-group reduction writing one partial result per group of {@code items}). A tiled
     * launch then cuts tiles at multiples of {@code items}.
     *
     * @param items  work items per window; positive
     * @param stride bytes between consecutive windows; positive
     * @param extent bytes of each window; positive
     * @return a copy of this argument with the window declared
     * @throws IllegalArgumentException if a value is not positive
     */
    public KernelArg perItems(long items, long stride, long extent) {
        if (items <= 0) {
            throw new IllegalArgumentException("items per window " + items + " must be positive");
        }
        KernelArg w = perItem(stride, extent);
        return new KernelArg(region, offset, length, access, w.itemStride, w.itemExtent, items);
    }

    /**
     * Whether a per-item window is declared.
     *
     * @return true after {@link #perItem(long)} or {@link #perItem(long, long)}, or when
     *         {@code itemStride} is positive
     */
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
        long start = Math.min(length, saturatedProduct(from / itemsPerWindow, itemStride));
        long lastStart = saturatedProduct((to - 1) / itemsPerWindow, itemStride);
        long end = lastStart > length - itemExtent ? length : lastStart + itemExtent;
        return new long[] {start, Math.max(start, Math.min(length, end))};
    }

    /** a * b for non-negative a and b, or Long.MAX_VALUE where it does not fit. */
    private static long saturatedProduct(long a, long b) {
        long lo = a * b;
        return Math.multiplyHigh(a, b) != 0 || lo < 0 ? Long.MAX_VALUE : lo;
    }
}
