package dev.hetmem.stress;

import dev.hetmem.Region;
import dev.hetmem.UnifiedMemory;
import dev.hetmem.driver.DeviceDriver;

import java.lang.foreign.MemorySegment;

/**
 * One kind of device as the stress program uses it: how to make one, and the kernels the program
 * launches on it (copy bytes into a region and out, add to each long, device atomics, a stencil of
 * pair sums). The core provides the emulated device's; a driver module provides its own (the
 * OpenCL module does).
 */
public interface StressDevices {
    /**
     * The driver kind, as {@link DeviceDriver#kind()} says it.
     *
     * @return the kind's name, such as "emulated" or "opencl"; it appears in {@link StressConfig#describe()}
     */
    String kind();

    /**
     * A device of {@code capacity} bytes (rounded up as the driver needs).
     *
     * @param name the device's name; its threads' names start with it
     * @param capacity the device memory in bytes: 2 MiB or 64 MiB (see {@link StressConfig#deviceBytes()})
     * @return a new driver, not yet attached to a memory
     */
    DeviceDriver create(String name, long capacity);

    /**
     * A kernel on {@code node} writes {@code bytes} from {@code src} into [offset, offset+bytes) of r.
     * Returns when the kernel has finished.
     *
     * @param mem the memory to launch on
     * @param node the device node (1..n) to run the kernel on
     * @param r the region written
     * @param offset where in r to write, in bytes (page-aligned in the program)
     * @param src the bytes to write, at least {@code bytes} long and readable from the device's threads
     * @param bytes how many bytes to write (whole 4 KiB pages in the program)
     * @param plain whether the kernel reaches the range by a plain pointer
     *              ({@link dev.hetmem.driver.DeviceKernel#plainArgument}) rather than the page table
     * @throws dev.hetmem.ProtectionException if a page of the range is read-only
     */
    void write(UnifiedMemory mem, int node, Region r, long offset, MemorySegment src, long bytes, boolean plain);

    /**
     * A kernel on {@code node} reads [offset, offset+bytes) of r into {@code dst}.
     * Returns when the kernel has finished.
     *
     * @param mem the memory to launch on
     * @param node the device node (1..n) to run the kernel on
     * @param r the region read
     * @param offset where in r to read, in bytes (page-aligned in the program)
     * @param dst where the bytes go, at least {@code bytes} long and writable from the device's threads
     * @param bytes how many bytes to read (whole 4 KiB pages in the program)
     * @param plain whether the kernel reaches the range by a plain pointer
     */
    void read(UnifiedMemory mem, int node, Region r, long offset, MemorySegment dst, long bytes, boolean plain);

    /**
     * One launch on {@code node} over the first {@code longs} longs of r (all of it, however large
     * against the device): item i adds {@code delta} to long i. With {@code windows} each item
     * declares its 8 bytes ({@code KernelArg.perItem(8)}), so the launch may run tiled; without, a
     * region larger than the device runs by device faults where the device takes them, and is refused
     * (naming the per-item declaration) where it does not.
     *
     * @param mem the memory to launch on
     * @param node the device node (1..n) to run the kernel on
     * @param r the region whose longs (little-endian) are added to
     * @param longs how many longs, from the region's start
     * @param delta what each long gains
     * @param windows whether each item declares its own 8 bytes ({@code KernelArg.perItem(8)})
     * @param plain whether the kernel reaches the region by a plain pointer (then item ids restart
     *              at 0 in each tile, and a region larger than the device needs windows)
     * @throws dev.hetmem.driver.DeviceMemoryException if the region does not fit the device and
     *         neither windows nor device faults let it run
     * @param ran where the kind's kernel can tell its items apart (not a plain pointer's tiles, whose ids
     *            restart), it says so ({@link ItemsRun#recording}) and marks each item whose store is done
     * @throws dev.hetmem.ProtectionException if a page of the range is read-only
     */
    void addToEach(UnifiedMemory mem, int node, Region r, long longs, long delta, boolean windows, boolean plain, ItemsRun ran);

    /**
     * One launch adding {@code delta} to every long of the first {@code granules} granules of
     * {@code granule} bytes of {@code r} but the last page of each, one argument per granule and no
     * windows: pages inside the launch's granules that no argument holds, for host code to touch
     * while it runs (on a device too small for the arguments, it runs by device faults).
     *
     * @param mem the memory the launch runs in
     * @param node the device node to run on
     * @param r the region whose longs change
     * @param granule the granule size in bytes
     * @param granules how many granules, from the region's start, the launch covers
     * @param delta what is added to each long
     * @param ran as for {@link #addToEach}: item i adds to long i % (granule / 8 - 512) of granule i / that
     * @return false, having run nothing, where the kind makes no such launch; true once it ran
     */
    default boolean addToEachButLastPages(UnifiedMemory mem, int node, Region r, long granule, int granules, long delta,
                                          ItemsRun ran) {
        return false;
    }

    /**
     * One launch on {@code node} of {@code longs - 1} items, both arguments plain pointers with
     * per-item windows, however large against the device: item i writes long i plus long i + 1 of
     * {@code in} (read; its window, {@code perItem(8, 16)}, overlaps the next item's, so neighbouring
     * tiles share a page as a stencil's do) into long i of {@code out} ({@code perItem(8)}).
     *
     * @param mem the memory to launch on
     * @param node the device node (1..n) to run the kernel on
     * @param in the region read: its first {@code longs} longs (little-endian)
     * @param out the region written: its first {@code longs - 1} longs
     * @param longs how many longs of {@code in}, at least 2
     */
    void pairSums(UnifiedMemory mem, int node, Region in, Region out, long longs);

    /**
     * One launch on {@code node} with [offset, offset+bytes) of r as an {@code Access.EXCLUSIVE}
     * argument: item i adds 1 to int i of it with a device atomic.
     *
     * @param mem the memory to launch on
     * @param node the device node (1..n) to run the kernel on
     * @param r the region whose ints (little-endian) are incremented
     * @param offset where the range starts in r, in bytes (page-aligned in the program)
     * @param bytes the range's length in bytes (page-aligned in the program)
     * @throws dev.hetmem.ProtectionException if a page of the range is read-only
     */
    void incrementIntsExclusively(UnifiedMemory mem, int node, Region r, long offset, long bytes);

    /**
     * Arms (or, with -1, disarms) the device's injected allocation failure after {@code after} more.
     *
     * @param device a device made by {@link #create}
     * @param after how many allocations still succeed before one fails, or -1 to disarm
     */
    void failAllocation(DeviceDriver device, int after);

    /**
     * Arms (or, with -1, disarms) the device's injected copy failure after {@code after} more.
     *
     * @param device a device made by {@link #create}
     * @param after how many copies still succeed before one fails, or -1 to disarm
     */
    void failCopy(DeviceDriver device, int after);

    /**
     * Arms (or, with -1, disarms) the device's injected launch failure after {@code after} more kernel
     * runs: the failing run throws before any work item runs. A kind without it injects nothing.
     *
     * @param device a device made by {@link #create}
     * @param after how many kernel runs still succeed before one fails, or -1 to disarm
     */
    default void failExecute(DeviceDriver device, int after) {
    }

    /**
     * Whether this kind's sweep kernel throws at the item an {@link ItemsRun#failAt} names (it
     * records its items, so that what ran can be checked item by item).
     *
     * @return false by default: the request is ignored
     */
    default boolean throwsAtItems() {
        return false;
    }

    /**
     * Whether the userfaultfd host-fault mode can run with these devices (their memory must be
     * readable by the host in place).
     *
     * @return true by default; false leaves this kind out of the userfaultfd configurations
     */
    default boolean supportsUserfaultfd() {
        return true;
    }

    /**
     * The memory that used {@code device} is closed: drop whatever was kept for it. Does nothing
     * by default.
     *
     * @param device a device made by {@link #create}, whose memory is now closed
     */
    default void forget(DeviceDriver device) {}

    /**
     * From now on the device refuses to back runs of {@code pages} frames or more (a memory too
     * fragmented for them), until called with 0; a kind that cannot do so ignores it.
     *
     * @param device a device made by {@link #create}
     * @param pages the smallest run refused, in 4 KiB frames; 0 allows every run again
     */
    default void refuseRunsOfAtLeast(DeviceDriver device, int pages) {}

    /**
     * Why this kind cannot run here, or null when it can.
     *
     * @return a sentence naming what is missing, or {@code null} (the default) when the kind can run
     */
    default String unavailableReason() {
        return null;
    }
}
