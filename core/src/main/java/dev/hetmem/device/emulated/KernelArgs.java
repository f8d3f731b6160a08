package dev.hetmem.device.emulated;

import java.lang.foreign.MemorySegment;

/**
 * The region arguments of one emulated kernel launch, as seen by one compute thread. Each compute
 * thread has its own instance (and its own {@link DeviceBuffer}s), so it must not be shared with
 * other threads or kept after the work item returns.
 */
public final class KernelArgs {
    private final DeviceBuffer[] buffers;
    /** Per argument, its device memory as one segment where the kernel reaches it plainly, else null. */
    private final MemorySegment[] plain;

    KernelArgs(DeviceBuffer[] buffers, MemorySegment[] plain) {
        this.buffers = buffers;
        this.plain = plain;
    }

    /**
     * Argument {@code i} as plain device memory: one segment over the consecutive frames the core
     * placed it in, with no page table in between (read-only unless the argument writes). Only for
     * arguments the kernel declares plain ({@link EmulatedKernel#plain}); in a tiled launch, the
     * tile's window. Valid while the work item runs.
     *
     * @param i the argument's position among the launch's {@code KernelArg}s
     * @return the argument's bytes, {@code length} of them, starting at its first byte
     * @throws IndexOutOfBoundsException if {@code i} is not an argument's position
     * @throws IllegalStateException if the kernel does not declare argument {@code i} plain
     */
    public MemorySegment plain(int i) {
        checkIndex(i);
        MemorySegment m = plain[i];
        if (m == null) {
            if (buffers[i].length() == 0) {
                return MemorySegment.NULL;
            }
            throw new IllegalStateException("argument " + i + " is reached through the page table: declare it plain "
                    + "(EmulatedKernel.plain(kernel, " + i + ")) to have it as one segment");
        }
        return m;
    }

    /**
     * Argument {@code i}, in launch order, reached through the device's page table. Not for a
     * non-empty argument the kernel declares plain: its pages may already be placed anew for another launch
     * while this kernel runs (it keeps the frames its {@link #plain} segment was bound to, not the
     * page table's entries).
     *
     * @param i the argument's position among the launch's {@code KernelArg}s, in [0, {@link #count()})
     * @return the argument's buffer, the same object on every call from this thread
     * @throws IndexOutOfBoundsException if {@code i} is negative or not below {@link #count()}
     * @throws IllegalStateException if the kernel declares argument {@code i} plain and it is not empty
     */
    public DeviceBuffer arg(int i) {
        checkIndex(i);
        if (plain[i] != null) {
            throw new IllegalStateException("argument " + i + " is declared plain: reach it by plain(" + i + "), not "
                    + "through the page table");
        }
        return buffers[i];
    }

    private void checkIndex(int i) {
        if (i < 0 || i >= buffers.length) {
            throw new IndexOutOfBoundsException("argument " + i + " of a launch with " + buffers.length + " arguments");
        }
    }

    /**
     * The number of region arguments the launch was given.
     *
     * @return the argument count, at least 0
     */
    public int count() {
        return buffers.length;
    }
}
