package dev.hetmem.device.emulated;

/**
 * The region arguments of one emulated kernel launch, as seen by one compute thread. Each compute
 * thread has its own instance (and its own {@link DeviceBuffer}s), so it must not be shared with
 * other threads or kept after the work item returns.
 */
public final class KernelArgs {
    private final DeviceBuffer[] buffers;

    KernelArgs(DeviceBuffer[] buffers) {
        this.buffers = buffers;
    }

    /**
     * Argument {@code i}, in launch order.
     *
     * @param i the argument's position among the launch's {@code KernelArg}s, in [0, {@link #count()})
     * @return the argument's buffer, the same object on every call from this thread
     * @throws IndexOutOfBoundsException if {@code i} is negative or not below {@link #count()}
     */
    public DeviceBuffer arg(int i) {
        if (i < 0 || i >= buffers.length) {
            throw new IndexOutOfBoundsException("argument " + i + " of a launch with " + buffers.length + " arguments");
        }
        return buffers[i];
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
