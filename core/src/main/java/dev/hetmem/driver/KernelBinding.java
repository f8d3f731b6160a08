package dev.hetmem.driver;

import dev.hetmem.Access;

/**
 * One region argument of a launch as the driver sees it: the virtual address range the kernel may
 * touch and with which access. The core has made every page of it resident and mapped (in a tiled
 * launch only the pages the tile's items declared; in a launch that takes device faults, none up
 * front). A plain argument bound by frame ({@link #firstFrame} at least 0) may leave the page table
 * while the kernel runs, to be placed anew for another launch: its frames stay allocated and
 * unchanged until the launch ends, so the kernel must reach it through them only.
 *
 * @param va host virtual address of the argument's first byte (the region's address plus the
 *           argument's offset; not necessarily page aligned)
 * @param length the argument's length in bytes; a kernel access outside [va, va + length) is a
 *               {@link DeviceFaultException}
 * @param access how the kernel may use it: a write through a {@link Access#READ} argument is a
 *               {@link DeviceFaultException}
 * @param firstFrame for a plain argument ({@link DeviceKernel#plainArgument}) of a device that
 *                   {@link DeviceDriver#bindsPlainArgumentsByFrame binds them by frame}: the device
 *                   frame of the argument's first page, its other pages in the frames after it,
 *                   fixed while the kernel runs whatever the page table says meanwhile; -1 otherwise
 * @param windowFrom with {@code windowTo}: the bytes [windowFrom, windowTo) of the argument (offsets
 *                   from {@code va}) that this launch's items declared they touch (a tile of a
 *                   launch tiled by per-item windows, where nothing else of the argument is kept in
 *                   place); a driver that checks accesses should fail others as outside the
 *                   argument. [0, length) for a whole argument
 * @param windowTo   the end of that window
 */
public record KernelBinding(long va, long length, Access access, long firstFrame, long windowFrom, long windowTo) {
    /**
     * A binding with no frame named: the driver finds the pages through its page table.
     *
     * @param va the argument's first byte in the unified address space
     * @param length the argument's length in bytes
     * @param access what the kernel may do with it
     */
    public KernelBinding(long va, long length, Access access) {
        this(va, length, access, -1);
    }

    /**
     * A binding of the whole argument.
     *
     * @param va the argument's first byte in the unified address space
     * @param length the argument's length in bytes
     * @param access what the kernel may do with it
     * @param firstFrame the device frame of its first page, or -1 for none
     */
    public KernelBinding(long va, long length, Access access, long firstFrame) {
        this(va, length, access, firstFrame, 0, length);
    }

    /**
     * Checks the components.
     *
     * @throws IllegalArgumentException if {@code firstFrame} is below -1, or the window does not lie in the argument
     */
    public KernelBinding {
        if (firstFrame < -1) {
            throw new IllegalArgumentException("first frame " + firstFrame + " must be a frame (at least 0) or -1 for none");
        }
        if (windowFrom < 0 || windowFrom > windowTo || windowTo > length) {
            throw new IllegalArgumentException("window [" + windowFrom + ", " + windowTo + ") must lie in [0, " + length + ")");
        }
    }

    /**
     * This binding with its first page's frame named.
     *
     * @param frame the device frame of the argument's first page
     * @return a binding like this one naming {@code frame}
     */
    public KernelBinding atFrame(long frame) {
        return new KernelBinding(va, length, access, frame, windowFrom, windowTo);
    }

    /**
     * This binding with only bytes [from, to) of the argument declared touched.
     *
     * @param from the window's first byte, from the argument's start
     * @param to the window's end (exclusive)
     * @return a binding like this one with that window
     */
    public KernelBinding window(long from, long to) {
        return new KernelBinding(va, length, access, firstFrame, from, to);
    }
}
