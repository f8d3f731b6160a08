package dev.hetmem.driver;

/**
 * A kernel one driver can run. Each driver defines its own kernel type (Java code for the emulated
 * device, a compiled program for OpenCL) extending this marker; {@link DeviceDriver#execute}
 * rejects kernels of another kind. Users pass it to {@code UnifiedMemory.launch}, which hands it
 * to the driver of the node named there unchanged.
 */
public interface DeviceKernel {
    /**
     * Whether the kernel reaches region argument {@code index} (in launch order) through a plain
     * pointer, with no page table in between: an OpenCL {@code __global T *} parameter, an emulated
     * kernel's {@code KernelArgs.plain}. The core then places the argument's pages (or, in a tiled
     * launch, its tile's window) in consecutive frames of the device, in page order, before the
     * kernel runs, and the driver passes the first frame's address. The page table stays page by
     * page: residency, eviction, duplication and host faults work on those pages as on any other.
     *
     * @param index the argument's position among the launch's region arguments
     * @return true for a plain argument; the default is false (every argument reached through the
     *         device's page table)
     */
    default boolean plainArgument(int index) {
        return false;
    }

    /**
     * Tiles of a tiled launch hold a multiple of this many work items (an OpenCL work-group, which
     * a tile may not split); the launch's global size must be a multiple of it too.
     *
     * @return items per indivisible group, at least 1; the default is 1
     */
    default long itemMultiple() {
        return 1;
    }
}
