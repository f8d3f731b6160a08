package dev.hetmem.device.emulated;

/** The region arguments of one emulated kernel launch, as seen by one compute thread. */
public final class KernelArgs {
    private final DeviceBuffer[] buffers;

    KernelArgs(DeviceBuffer[] buffers) {
        this.buffers = buffers;
    }

    /** Argument {@code i}, in launch order. */
    public DeviceBuffer arg(int i) {
        if (i < 0 || i >= buffers.length) {
            throw new IndexOutOfBoundsException("argument " + i + " of a launch with " + buffers.length + " arguments");
        }
        return buffers[i];
    }

    public int count() {
        return buffers.length;
    }
}
