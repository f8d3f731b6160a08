package dev.hetmem;

/**
 * What a launch cost the memory manager: how many pages its arguments cover, how many granules
 * had to be faulted onto the device and in how many fault batches, and what moved. Returned by
 * {@link UnifiedMemory#launch}.
 *
 * @param pagesTouched  4 KiB pages the arguments cover, each page of each argument counted once
 *                      however many tiles used it
 * @param faults granules made resident on the device for the launch
 * @param pagesMigrated 4 KiB pages whose data moved to the device for the launch
 * @param bytesMigrated {@code pagesMigrated} in bytes (4096 per page)
 * @param faultNanos    nanoseconds spent making arguments resident before the kernel ran, summed
 *                      over tiles; 0 for a launch whose device faulted pages in while it ran
 *                      (that time is in {@code kernelNanos})
 * @param kernelNanos   nanoseconds the kernel ran, summed over tiles
 * @param faultBatches passes that brought them: one per tile whose arguments needed any, one per
 *                     device fault (as UVM counts fault-buffer batches and the kernel's HMM test
 *                     device counts one fault for a whole-buffer access)
 */
public record LaunchResult(long pagesTouched, long faults, long pagesMigrated, long bytesMigrated,
                           long faultNanos, long kernelNanos, long faultBatches) {}
