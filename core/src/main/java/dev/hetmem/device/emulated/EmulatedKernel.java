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
     * threads at once and in no set order; each thread has its own {@code args}. An exception
     * fails the launch: the calling thread runs no further items, and the first exception reaches
     * the caller of {@code UnifiedMemory.launch}. Calls that would wait for the kernel ({@code free},
     * {@code close}) are refused inside it with {@link IllegalStateException}, and so is every call
     * into the memory manager from an item of a launch that takes device faults.
     *
     * @param args the launch's region arguments, in launch order
     * @param workItem the item's global id, in [0, globalSize)
     */
    void run(KernelArgs args, long workItem);
}
