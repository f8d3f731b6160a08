package dev.hetmem.device.emulated;

import dev.hetmem.driver.DeviceKernel;

/**
 * A kernel for the emulated device, written in Java. It runs once per work item in
 * [0, globalSize), spread over the device's compute threads, and reaches its region arguments only
 * through {@link KernelArgs}, that is through the device's page table.
 */
@FunctionalInterface
public interface EmulatedKernel extends DeviceKernel {
    void run(KernelArgs args, long workItem);
}
