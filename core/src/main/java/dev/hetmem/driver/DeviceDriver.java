package dev.hetmem.driver;

import java.util.List;

/**
 * What a device must implement to join a {@link dev.hetmem.UnifiedMemory}: only what depends on
 * the hardware (GMEM's {@code struct gm_mmu}). The core does allocation policy, faults, migration,
 * coherence and advice.
 *
 * <p>Addresses: the device sees each region at the same virtual address as the host does (HMM's
 * mirror), so {@code va} arguments are host virtual addresses of region pages. Frames are 4 KiB
 * units of the device memory the driver registered, numbered from 0; the core's buddy allocator
 * hands them out.
 *
 * <p>Threading: the core calls {@link #map}, {@link #unmap}, {@link #protect} and
 * {@link #invalidate} with the page-table locks of the pages concerned held, possibly from several
 * threads for disjoint pages. {@link #copy} may be called from several copy threads at once for
 * disjoint parts of one batch. A driver's internal locks are leaves: it never calls back into the
 * core while holding them.
 */
public interface DeviceDriver extends AutoCloseable {

    /** The driver family: "emulated", "opencl", "cuda". */
    String kind();

    /** A human-readable device name. */
    String name();

    /** Device memory, in bytes (a multiple of 4 KiB), that the core manages for this device. */
    long memoryBytes();

    /** Called once when the memory is built, before any other call. */
    void attach(DeviceContext context);

    /**
     * Undoes {@link #attach} when the memory being built fails before it is usable (another device
     * refused, the fault service could not start): the device can then be attached again.
     */
    default void detach(DeviceContext context) {}

    /**
     * Called after the core allocated frames [first, first+count) for a migration and before any
     * copy into them (GMEM's physical "prepare"). A driver may refuse, by throwing
     * {@link DeviceMemoryException}; the core then undoes the migration. {@link RunTooLargeException}
     * says smaller runs may do: the core then goes on with smaller ones.
     */
    default void prepareFrames(int first, int count) {}

    /**
     * Performs operations [from, to) of the batch synchronously: host-to-device copies, device-to-host
     * copies and zero fills. Throws {@link DeviceCopyException} if any failed; the core then undoes
     * the whole migration, so partial results need no cleaning.
     */
    void copy(CopyBatch batch, int from, int to);

    /**
     * Whether the calling thread is running this device's kernel code right now (a kernel calling
     * back into the memory manager): the core refuses calls that would then wait for the kernel,
     * and so for themselves. Drivers whose kernels never run Java code keep the default.
     */
    default boolean runsKernelOnCurrentThread() {
        return false;
    }

    /**
     * Whether this device can copy frames straight from {@code source}'s memory (a peer path: NVLink,
     * PCIe peer-to-peer, or a shared pool). Without one, device-to-device migration stages each page
     * through its host page.
     */
    default boolean canCopyFrom(DeviceDriver source) {
        return false;
    }

    /**
     * Copies {@code pages} frames from {@code source}'s frames starting at {@code sourceFrame} into this
     * device's frames starting at {@code frame}. Only called when {@link #canCopyFrom} said yes; throws
     * {@link DeviceCopyException} on failure (the migration is then undone).
     */
    default void copyFromPeer(DeviceDriver source, int sourceFrame, int frame, int pages) {
        throw new UnsupportedOperationException(name() + " has no peer path from " + source.name());
    }

    /** The device's own asynchronous copy engine, or null if it has none. */
    default CopyEngine copyEngine() {
        return null;
    }

    /** Enters device page-table entries: pages [va, va + pages*4K) map to frames [frame, frame+pages). */
    void map(long va, int frame, int pages, boolean writable);

    /**
     * Where the host can read a frame in place, or 0 where it cannot (memory the CPU does not
     * reach). The userfaultfd host-fault mode needs it: its fault service copies frames home in C,
     * without calling back into Java.
     */
    default long hostAddress(int frame) {
        return 0;
    }

    /**
     * Whether the device can reach host memory directly (ACCESSED_BY maps pages remotely instead of
     * migrating them, and a thrashing block can stay home). The emulated device can; a discrete GPU
     * over PCIe usually can too, through pinned host memory.
     */
    default boolean canMapHost() {
        return false;
    }

    /**
     * Enters entries that map [va, va + pages*4K) to host memory at {@code hostAddress}: the device
     * reads and writes the host's copy in place. Only called when {@link #canMapHost()}; released
     * with {@link #unmap} like any entry.
     */
    default void mapHost(long va, long hostAddress, int pages, boolean writable) {
        throw new UnsupportedOperationException(name() + " cannot map host memory");
    }

    /** Releases device page-table entries of [va, va + pages*4K); absent entries are ignored. */
    void unmap(long va, long pages);

    /** Changes the write permission of present entries in [va, va + pages*4K). */
    void protect(long va, long pages, boolean writable);

    /** One coalesced device TLB invalidation for all ranges released or protected since the last one. */
    void invalidate(VaRanges ranges);

    /**
     * The device page-table entry for one page, for verification: 0 when absent, else
     * {@link #PTE_PRESENT}, plus {@link #PTE_WRITABLE} when writable.
     */
    int probe(long va);

    /** The frame a present entry maps to, for verification; -1 when absent. */
    long probeFrame(long va);

    /**
     * Runs a kernel whose region arguments are already resident and mapped with the permission they
     * declared. Throws if the kernel is not of this driver's kind.
     */
    void execute(DeviceKernel kernel, long globalSize, List<KernelBinding> arguments);

    /**
     * Runs work items [globalOffset, globalOffset + globalSize) of a kernel (one tile of a tiled
     * launch: item ids stay global). With {@code faults} (only where {@link #takesDeviceFaults}),
     * an access to a page that is not mapped, or not writable for a write, is a device fault: the
     * driver calls {@link DeviceFaultHandler#fault} and, once it returns, retries the access;
     * without, such an access fails the launch as in {@link #execute(DeviceKernel, long, List)}.
     *
     * <p>Drivers that take device faults must keep the translations a work item uses valid only
     * while it may use them: {@link #invalidate} must not return while an item that read an entry
     * in the invalidated ranges before it was changed may still access memory through it (HMM's
     * requirement on a device page-table mirror). The default runs the whole range at offset 0 only.
     */
    default void execute(DeviceKernel kernel, long globalOffset, long globalSize, List<KernelBinding> arguments,
                         DeviceFaultHandler faults) {
        if (faults != null && !takesDeviceFaults()) {
            throw new UnsupportedOperationException(name() + " (" + kind() + ") cannot take device faults");
        }
        if (globalOffset != 0) {
            throw new UnsupportedOperationException(name() + " (" + kind() + ") cannot run a kernel from item "
                    + globalOffset + "; it runs whole launches only");
        }
        execute(kernel, globalSize, arguments);
    }

    /**
     * Whether a kernel of this device may touch pages that are not mapped, and have them faulted in
     * while it runs (HMM's device fault, UVM's replayable faults); false: every page a kernel may
     * touch must be resident before it starts.
     */
    default boolean takesDeviceFaults() {
        return false;
    }

    /**
     * Whether the calling thread is running a work item of a launch that takes device faults and
     * may be using a translation right now. Such a thread must not call into the core (anything that
     * takes block locks): an invalidation by another thread holding them would wait for it.
     */
    default boolean holdsTranslationsOnCurrentThread() {
        return false;
    }

    /** Releases the device's memory and threads. The core has unmapped everything before. */
    @Override
    void close();

    int PTE_PRESENT = 1;
    int PTE_WRITABLE = 2;
    /** The entry maps host memory ({@link #mapHost}). */
    int PTE_REMOTE = 4;
}
