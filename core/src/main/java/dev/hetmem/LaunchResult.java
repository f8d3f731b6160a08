package dev.hetmem;

/**
 * What a launch cost the memory manager: how many pages its arguments cover, how many granules
 * had to be faulted onto the device and in how many fault batches, and what moved.
 *
 * @param faults granules made resident on the device for the launch
 * @param faultBatches passes that brought them: one per tile whose arguments needed any, one per
 *                     device fault (as UVM counts fault-buffer batches and the kernel's HMM test
 *                     device counts one fault for a whole-buffer access)
 */
public record LaunchResult(long pagesTouched, long faults, long pagesMigrated, long bytesMigrated,
                           long faultNanos, long kernelNanos, long faultBatches) {}
