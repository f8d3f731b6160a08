package dev.hetmem;

/**
 * What a launch cost the memory manager: how many pages its arguments cover, how many granules
 * had to be faulted onto the device, and what moved.
 */
public record LaunchResult(long pagesTouched, long faults, long pagesMigrated, long bytesMigrated,
                           long faultNanos, long kernelNanos) {}
