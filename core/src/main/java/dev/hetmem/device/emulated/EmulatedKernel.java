package dev.hetmem.device.emulated;

import dev.hetmem.driver.DeviceKernel;

/**
 * A kernel for the emulated device, written in Java. It runs once per work item in
 * [0, globalSize), spread over the device's compute threads, and reaches its region arguments only
 * through {@link KernelArgs}, that is through the device's page table.
 */
@FunctionalInterface
public interface EmulatedKernel extends DeviceKernel {
    /**
     * Runs one work item. Called once for each item of the launch (or tile), on several compute
     * threads at once and in no set order; each thread has its own {@code args}. Threads take the
     * items in chunks of consecutive ids ({@link EmulatedDevice#itemsPerChunk}), in order within a
     * chunk. An exception fails the launch: the rest of its chunk does not run, no thread begins a
     * chunk after it (each finishes the one it is in), and the first exception reaches the caller
     * of {@code UnifiedMemory.launch}. Calls that would wait for the kernel ({@code free},
     * {@code close}) are refused inside it with {@link IllegalStateException}, and so is every call
     * into the memory manager from an item of a launch that takes device faults.
     *
     * @param args the launch's region arguments, in launch order
     * @param workItem the item's global id, in [0, globalSize)
     */
    void run(KernelArgs args, long workItem);

    /**
     * {@code body}, reaching arguments {@code plainArguments} as plain device memory
     * ({@link KernelArgs#plain}) rather than through the page table: the core places their pages
     * in consecutive frames before each run. In a tiled launch such a kernel sees each tile as a
     * launch of its own: item ids from 0, windowed arguments from their window's first byte.
     *
     * @param body the kernel
     * @param plainArguments positions of the plain arguments among the launch's region arguments
     * @return a kernel that runs {@code body} with those arguments placed
     * @throws IllegalArgumentException if a position is negative
     * @throws NullPointerException if {@code body} is null
     */
    static EmulatedKernel plain(EmulatedKernel body, int... plainArguments) {
        java.util.Objects.requireNonNull(body, "body");
        java.util.BitSet set = new java.util.BitSet();
        for (int i : plainArguments) {
            if (i < 0) {
                throw new IllegalArgumentException("plain argument position " + i + " is negative");
            }
            set.set(i);
        }
        return new EmulatedKernel() {
            @Override
            public void run(KernelArgs args, long workItem) {
                body.run(args, workItem);
            }

            @Override
            public boolean plainArgument(int index) {
                return index >= 0 && set.get(index);
            }
        };
    }
}
