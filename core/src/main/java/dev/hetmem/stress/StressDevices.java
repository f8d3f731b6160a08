package dev.hetmem.stress;

import dev.hetmem.Region;
import dev.hetmem.UnifiedMemory;
import dev.hetmem.driver.DeviceDriver;

import java.lang.foreign.MemorySegment;

/**
 * One kind of device as the stress program uses it: how to make one, and the two kernels the
 * program launches on it (copy bytes into a region, copy them out). The core provides the
 * emulated device's; a driver module provides its own (the OpenCL module does).
 */
public interface StressDevices {
    /** The driver kind, as {@link DeviceDriver#kind()} says it. */
    String kind();

    /** A device of {@code capacity} bytes (rounded up as the driver needs). */
    DeviceDriver create(String name, long capacity);

    /** A kernel on {@code node} writes {@code bytes} from {@code src} into [offset, offset+bytes) of r. */
    void write(UnifiedMemory mem, int node, Region r, long offset, MemorySegment src, long bytes);

    /** A kernel on {@code node} reads [offset, offset+bytes) of r into {@code dst}. */
    void read(UnifiedMemory mem, int node, Region r, long offset, MemorySegment dst, long bytes);

    /**
     * One launch on {@code node} over the first {@code longs} longs of r (all of it, however large
     * against the device): item i adds {@code delta} to long i. With {@code windows} each item
     * declares its 8 bytes ({@code KernelArg.perItem(8)}), so the launch may run tiled; without, a
     * region larger than the device runs by device faults where the device takes them, and is refused
     * (naming the per-item declaration) where it does not.
     */
    void addToEach(UnifiedMemory mem, int node, Region r, long longs, long delta, boolean windows);

    /**
     * One launch on {@code node} with [offset, offset+bytes) of r as an {@code Access.EXCLUSIVE}
     * argument: item i adds 1 to int i of it with a device atomic.
     */
    void incrementIntsExclusively(UnifiedMemory mem, int node, Region r, long offset, long bytes);

    /** Arms (or, with -1, disarms) the device's injected allocation failure after {@code after} more. */
    void failAllocation(DeviceDriver device, int after);

    /** Arms (or, with -1, disarms) the device's injected copy failure after {@code after} more. */
    void failCopy(DeviceDriver device, int after);

    /**
     * Whether the userfaultfd host-fault mode can run with these devices (their memory must be
     * readable by the host in place).
     */
    default boolean supportsUserfaultfd() {
        return true;
    }

    /** The memory that used {@code device} is closed: drop whatever was kept for it. */
    default void forget(DeviceDriver device) {}

    /** Why this kind cannot run here, or null when it can. */
    default String unavailableReason() {
        return null;
    }
}
