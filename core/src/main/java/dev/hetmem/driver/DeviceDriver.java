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
 *
 * <p>Life cycle: a driver is handed to {@code UnifiedMemory.Builder.device}; building the memory
 * calls {@link #memoryBytes} and {@link #attach}; then migrations call {@link #prepareFrames},
 * {@link #copy} (or the {@link #copyEngine}), {@link #map} and friends, launches call
 * {@link #execute(DeviceKernel, long, long, List, DeviceFaultHandler)}, and
 * {@code UnifiedMemory.close()} ends with {@link #close}. The page-table locks named above are the
 * core's per-block locks: one lock per 2 MiB block of a region ({@link PageGeometry#BLOCK_BYTES}),
 * taken in ascending order and held from planning a migration until it has committed or been
 * undone. A migration revokes entries ({@link #unmap}, {@link #protect}, then {@link #invalidate}),
 * prepares frames, copies, and only then maps the target's entries; a failed allocation or copy
 * is undone by mapping the old entries again.
 *
 * <p>Rules a driver author needs that the method contracts below rely on:
 * <ul>
 *   <li><b>Which calls may fail.</b> {@link #prepareFrames}, {@link #copy} (and the
 *       {@link #copyEngine}'s futures, {@link #copyFromPeer}, {@link #copyWithin}) and
 *       {@link #execute(DeviceKernel, long, long, List, DeviceFaultHandler)} may fail, also after
 *       the device is lost; the core undoes the migration or fails the launch. {@link #map},
 *       {@link #unmap} and {@link #protect} must not throw, even on a lost device (keep the entries
 *       in a host-side table, as the OpenCL driver does): the core calls them in the middle of a
 *       revoke, a commit and an undo, and a failure there leaves entries out of line with the
 *       page table. {@link #invalidate} should not either (its contract says what the core does
 *       when it does).</li>
 *   <li><b>A failed copy is over before it is reported.</b> A copy call that throws, or a copy
 *       engine's future completed exceptionally, must have no transfer of the call still running:
 *       the core frees the call's frames and host pages at once and hands them to other migrations,
 *       which a late transfer would overwrite.</li>
 *   <li><b>Ranges may cross {@link #contiguousFrames} stretches.</b> Runs of consecutive frames
 *       in {@link #map} and in copy operations are joined wherever frames are consecutive, across
 *       the boundaries of the stretches (buffers) a driver made its memory of; a driver whose
 *       stretches are separate allocations splits such a range itself. Only a plain argument's
 *       frames are promised to stay within one stretch.</li>
 *   <li><b>Threads.</b> {@link #copy} runs on the core's copy threads ({@code hetmem-copy-N}) or
 *       on the migrating thread; every other call on the thread of the operation that needs it
 *       (a migration, a host or device fault, a launch, a close). A driver with a per-thread
 *       context (as CUDA's) makes it current in each call.</li>
 *   <li><b>No waiting for kernels under the block locks.</b> {@link #invalidate} is called with
 *       block locks held, also while a kernel of this device runs that bound plain arguments by
 *       frame; it waits only for work items that take device faults (HMM's mirror rule), never
 *       for a whole queue to drain.</li>
 * </ul>
 */
public interface DeviceDriver extends AutoCloseable {

    /**
     * The driver family: "emulated", "opencl", "cuda". Shown in {@code NodeInfo} and in error
     * messages, and used by the stress harness to pick the kernels it launches on this device.
     *
     * @return the family name, the same for every device of this driver; never null
     */
    String kind();

    /**
     * A human-readable device name, used in error messages, statistics and thread names.
     *
     * @return the device's name; never null
     */
    String name();

    /**
     * Device memory, in bytes (a multiple of 4 KiB), that the core manages for this device. Read
     * once while the memory is built, which fails with {@link IllegalArgumentException} unless the
     * value is a positive multiple of 4096; frames [0, memoryBytes / 4096) are then handed out by
     * the core's allocator. The value must not change afterwards.
     *
     * @return the managed capacity in bytes: a positive multiple of 4096
     */
    long memoryBytes();

    /**
     * Called once when the memory is built, before any other call but {@link #kind}, {@link #name}
     * and {@link #memoryBytes}: devices are attached in the order they were added to the builder,
     * on the building thread, with no core lock held. A driver that is already attached to another
     * memory should throw {@link IllegalStateException}; the build then detaches the devices
     * attached before it and fails with that exception.
     *
     * @param context the node id this device has in the memory being built
     */
    void attach(DeviceContext context);

    /**
     * Undoes {@link #attach} when the memory being built fails before it is usable (another device
     * refused, the fault service could not start): the device can then be attached again. Called
     * on the building thread, only for a device whose {@link #attach} returned, and never after the
     * memory is usable ({@link #close} ends a usable memory instead). The default does nothing.
     *
     * @param context the context given to {@link #attach}
     */
    default void detach(DeviceContext context) {}

    /**
     * Called after the core allocated frames [first, first+count) for a migration and before any
     * copy into them (GMEM's physical "prepare"). A driver may refuse, by throwing
     * {@link DeviceMemoryException}; the core then undoes the migration. {@link RunTooLargeException}
     * says smaller runs may do: the core then goes on with smaller ones.
     *
     * <p>Called on the migrating thread with the block locks of the migration held. A run is one
     * piece of the buddy allocator: {@code count} is a power of two from 1 to 512 (one 2 MiB block)
     * and {@code first} is a multiple of {@code count}. There is no matching release call: once a
     * migration no longer needs frames, the core gives them back to its allocator after their
     * entries were unmapped and invalidated. The default accepts every run.
     *
     * @param first the first frame of the run, in [0, memoryBytes / 4096)
     * @param count the number of 4 KiB frames in the run
     * @throws DeviceMemoryException if the device cannot back the run; the frames return to the
     *         allocator and the migration is undone
     * @throws RunTooLargeException if only a run this large cannot be backed; the core retries the
     *         rest of the batch with smaller runs, down to single frames
     */
    default void prepareFrames(int first, int count) {}

    /**
     * Performs operations [from, to) of the batch synchronously: host-to-device copies, device-to-host
     * copies and zero fills. Throws {@link DeviceCopyException} if any failed; the core then undoes
     * the whole migration, so partial results need no cleaning.
     *
     * <p>Called by the core's CPU copy phase (unless the memory uses the driver's {@link #copyEngine})
     * while the migrating thread holds the block locks of the pages concerned; large batches are cut
     * into disjoint index ranges that several copy threads run at once, and batches of migrations of
     * other blocks may be copied concurrently too. Nothing else writes the host pages and frames
     * named in the batch until the call returns.
     *
     * @param batch the copy phase of one migration; read only, never modified by the driver
     * @param from index of the first operation to perform, in [0, batch.size()]
     * @param to index after the last operation to perform, in [from, batch.size()]
     * @throws DeviceCopyException if an operation failed or named frames outside device memory
     */
    void copy(CopyBatch batch, int from, int to);

    /**
     * Whether the calling thread is running this device's kernel code right now (a kernel calling
     * back into the memory manager): the core refuses calls that would then wait for the kernel,
     * and so for themselves. Drivers whose kernels never run Java code keep the default.
     *
     * <p>Asked by {@code free} and {@code close} of the memory, from any thread, with no core lock
     * held; it must be cheap and must not block.
     *
     * @return true if the calling thread is executing a work item of one of this device's kernels
     */
    default boolean runsKernelOnCurrentThread() {
        return false;
    }

    /**
     * Whether this device can copy frames straight from {@code source}'s memory (a peer path: NVLink,
     * PCIe peer-to-peer, or a shared pool). Without one, device-to-device migration stages each page
     * through its host page.
     *
     * <p>Asked by the copy phase of a device-to-device migration, on the migrating thread with block
     * locks held, once per run: it must be cheap, must not block, and should give the same answer for
     * the same source every time.
     *
     * @param source the device the pages are on now; another device of the same memory
     * @return true if {@link #copyFromPeer} works from {@code source}; the default is false
     */
    default boolean canCopyFrom(DeviceDriver source) {
        return false;
    }

    /**
     * Copies {@code pages} frames from {@code source}'s frames starting at {@code sourceFrame} into this
     * device's frames starting at {@code frame}. Only called when {@link #canCopyFrom} said yes; throws
     * {@link DeviceCopyException} on failure (the migration is then undone).
     *
     * <p>Called on the migrating thread, with the block locks of the pages held, on the target
     * device's driver, after {@link #prepareFrames} accepted the target frames; the pages belong to
     * one 2 MiB block, so {@code pages} is at most 512. It returns once the copy is complete.
     *
     * @param source the device whose frames are read
     * @param sourceFrame the first frame read on {@code source}
     * @param frame the first frame written on this device
     * @param pages the number of 4 KiB frames to copy, at least 1
     * @throws DeviceCopyException if the copy failed
     * @throws UnsupportedOperationException by the default, which has no peer path
     */
    default void copyFromPeer(DeviceDriver source, int sourceFrame, int frame, int pages) {
        throw new UnsupportedOperationException(name() + " has no peer path from " + source.name());
    }

    /**
     * Whether {@link #copyWithin} works: frames copied to other frames of this device's own memory,
     * so that the core can gather a plain argument's pages into consecutive frames without sending
     * them through the host. The default is false: such pages then leave the device and come back.
     *
     * @return true if {@link #copyWithin} is implemented
     */
    default boolean canCopyWithin() {
        return false;
    }

    /**
     * Copies {@code count} runs of this device's frames: run i is {@code pages[i]} frames from
     * {@code sourceFrames[i]} to {@code frames[i]}. No frame is both read and written by the call.
     * Only called when {@link #canCopyWithin} said yes; throws {@link DeviceCopyException} on
     * failure (the move is then undone and the source frames keep the data). The runs may be
     * copied in any order or at once; the call returns once all are complete.
     *
     * <p>Called on the migrating thread, with the block locks of the pages held, after
     * {@link #prepareFrames} accepted the target frames; the source frames hold pages nobody
     * writes meanwhile (their entries are released, no kernel holds them). A run's pages belong to
     * one 2 MiB block, so {@code pages[i]} is at most 512.
     *
     * @param sourceFrames the first frame read, per run
     * @param frames the first frame written, per run
     * @param pages the number of 4 KiB frames, per run, each at least 1
     * @param count the number of runs, at most the arrays' length
     * @throws DeviceCopyException if a copy failed
     * @throws UnsupportedOperationException by the default
     */
    default void copyWithin(int[] sourceFrames, int[] frames, int[] pages, int count) {
        throw new UnsupportedOperationException(name() + " cannot copy within its own memory");
    }

    /**
     * The device's own asynchronous copy engine, or null if it has none. Asked by each copy phase
     * when the memory was built with {@code CopyPath.ENGINE}; the core then submits the whole batch
     * to it and waits for the future with the block locks held, instead of calling {@link #copy}.
     *
     * @return the copy engine, the same one on every call; or null (the default) to have the core's
     *         CPU threads call {@link #copy}
     */
    default CopyEngine copyEngine() {
        return null;
    }

    /**
     * Enters device page-table entries: pages [va, va + pages*4K) map to frames [frame, frame+pages).
     * Existing entries there, local or host ones, are replaced.
     *
     * <p>Called when a migration commits (after its copies completed) and when an undone migration
     * restores the source's entries, with the block locks of the pages held; the range never crosses
     * a 2 MiB block. It should not fail for frames inside device memory: the logical page table has
     * already changed when it is called, and nothing undoes that.
     *
     * @param va host virtual address of the first page, 4 KiB aligned
     * @param frame the first frame, in [0, memoryBytes / 4096)
     * @param pages the number of 4 KiB pages, at least 1
     * @param writable whether kernels may write through the entries; read-only otherwise
     */
    void map(long va, int frame, int pages, boolean writable);

    /**
     * Where the host can read a frame in place, or 0 where it cannot (memory the CPU does not
     * reach). The userfaultfd host-fault mode needs it: its fault service copies frames home in C,
     * without calling back into Java.
     *
     * <p>Asked for frame 0 when a memory with userfaultfd host faults is built (0 there refuses that
     * mode), then for any frame, from any thread, with or without block locks. The address must stay
     * valid, and show the frame's current contents, until {@link #close}.
     *
     * @param frame a frame in [0, memoryBytes / 4096)
     * @return the host address of the frame's first byte, or 0 (the default) if the host cannot
     *         reach device memory
     */
    default long hostAddress(int frame) {
        return 0;
    }

    /**
     * Whether the device can reach host memory directly (ACCESSED_BY maps pages remotely instead of
     * migrating them, and a thrashing block can stay home). The emulated device can; a discrete GPU
     * over PCIe usually can too, through pinned host memory.
     *
     * @return true if {@link #mapHost} works; the default is false
     */
    default boolean canMapHost() {
        return false;
    }

    /**
     * Enters entries that map [va, va + pages*4K) to host memory at {@code hostAddress}: the device
     * reads and writes the host's copy in place. Only called when {@link #canMapHost()}; released
     * with {@link #unmap} like any entry. {@link #probe} reports such entries with
     * {@link #PTE_REMOTE} and {@link #probeFrame} as absent.
     *
     * <p>Called, like {@link #map}, with the block locks of the pages held; today the core always
     * passes the page's own address, so {@code hostAddress == va}.
     *
     * @param va host virtual address of the first page, 4 KiB aligned
     * @param hostAddress host address the first page maps to, 4 KiB aligned
     * @param pages the number of 4 KiB pages, at least 1
     * @param writable whether kernels may write through the entries
     * @throws UnsupportedOperationException by the default, which cannot map host memory
     */
    default void mapHost(long va, long hostAddress, int pages, boolean writable) {
        throw new UnsupportedOperationException(name() + " cannot map host memory");
    }

    /**
     * Releases device page-table entries of [va, va + pages*4K); absent entries are ignored. Called
     * with the block locks of the pages held, when a page leaves the device (a migration, an
     * eviction, a dropped copy, DONT_NEED advice, a free); the core then calls {@link #invalidate}
     * for the range before it reuses or copies from the frames, so the change need not reach the
     * device's TLB yet. It should not fail.
     *
     * @param va host virtual address of the first page, 4 KiB aligned
     * @param pages the number of 4 KiB pages, at least 1
     */
    void unmap(long va, long pages);

    /**
     * Changes the write permission of present entries in [va, va + pages*4K); absent entries are
     * ignored. Called with the block locks of the pages held; a write permission taken away becomes
     * binding on the device with the {@link #invalidate} that follows. It should not fail.
     *
     * @param va host virtual address of the first page, 4 KiB aligned
     * @param pages the number of 4 KiB pages, at least 1
     * @param writable true to allow writes, false to make the entries read-only
     */
    void protect(long va, long pages, boolean writable);

    /**
     * One coalesced device TLB invalidation for all ranges released or protected since the last one.
     * Called once per device and step, with the block locks still held, after the step's
     * {@link #unmap} and {@link #protect} calls and before the core copies from or frees the frames
     * they named. When it returns, no access may go through an entry as it was before those calls
     * (see {@link #execute(DeviceKernel, long, long, List, DeviceFaultHandler)} for devices that take
     * faults). If it throws, the core keeps that device's frames allocated (the device may still use
     * them) and rethrows.
     *
     * @param ranges the byte ranges [start, start + length) of host virtual addresses changed; not
     *               empty, and owned by the core (do not keep it after returning)
     */
    void invalidate(VaRanges ranges);

    /**
     * The longest run of consecutive frames the device can hand a kernel as one pointer: the core
     * never places a plain argument ({@link DeviceKernel#plainArgument}) across a multiple of it
     * (an OpenCL driver whose memory is several buffers returns the frames of one). A multiple of
     * 512 (one 2 MiB block).
     *
     * @return frames per stretch that one pointer can span; the default is the whole device
     */
    default int contiguousFrames() {
        long frames = memoryBytes() >>> PageGeometry.PAGE_SHIFT;
        return (int) Math.min(Integer.MAX_VALUE, frames);
    }

    /**
     * Whether a running kernel reaches its plain arguments ({@link DeviceKernel#plainArgument})
     * only through the frames their bindings name ({@link KernelBinding#firstFrame}), bound before
     * it starts, never through this driver's page table while it runs. Then a read-only page of a
     * running kernel's plain argument may leave the page table (to be placed anew for another
     * launch) while the kernel goes on reading its frame, which the core frees only once the
     * kernel's pin is released: the next tile of a stencil need not wait for the running one.
     *
     * @return true if plain arguments are bound by {@link KernelBinding#firstFrame}; the default is false
     */
    default boolean bindsPlainArgumentsByFrame() {
        return false;
    }

    /**
     * Bytes a plain argument's first byte must be a multiple of, counted from its first frame (an
     * OpenCL sub-buffer's origin alignment): the core cuts tiles so that the windows of plain
     * arguments start at such multiples.
     *
     * @return a power of two from 1 to 4096; the default is 1
     */
    default int plainAlignment() {
        return 1;
    }

    /**
     * The device page-table entry for one page, for verification: 0 when absent, else
     * {@link #PTE_PRESENT}, plus {@link #PTE_WRITABLE} when writable. Called by
     * {@code UnifiedMemory.verify()} with the page's block lock held, and by tests.
     *
     * @param va host virtual address of the page, 4 KiB aligned
     * @return the entry's flags: 0, or {@link #PTE_PRESENT} with {@link #PTE_WRITABLE} and
     *         {@link #PTE_REMOTE} added as they apply
     */
    int probe(long va);

    /**
     * The frame a present entry maps to, for verification; -1 when absent. Called like
     * {@link #probe}.
     *
     * @param va host virtual address of the page, 4 KiB aligned
     * @return the frame number, or -1 when the entry is absent or maps host memory
     */
    long probeFrame(long va);

    /**
     * Runs a kernel whose region arguments are already resident and mapped with the permission they
     * declared. Throws if the kernel is not of this driver's kind.
     *
     * <p>The core never calls this one directly: it calls
     * {@link #execute(DeviceKernel, long, long, List, DeviceFaultHandler)}, whose default comes here
     * for a whole launch without device faults.
     *
     * @param kernel the kernel to run; of this driver's own {@link DeviceKernel} type
     * @param globalSize the number of work items, numbered [0, globalSize)
     * @param arguments the region arguments in launch order
     * @throws IllegalArgumentException if the kernel is not of this driver's kind
     * @throws DeviceFaultException if a work item made an illegal access
     */
    void execute(DeviceKernel kernel, long globalSize, List<KernelBinding> arguments);

    /**
     * Whether {@link #execute(DeviceKernel, long, long, List, DeviceFaultHandler)} runs items from a
     * non-zero {@code globalOffset}: the tiles of a launch larger than this device whose kernel
     * reaches its arguments through the page table (item ids stay global; a kernel with plain
     * arguments sees each tile as a launch of its own, from 0, and needs no offset). The default says
     * whether the driver overrides that {@code execute} (the interface's own runs whole launches only):
     * where it does not, such a launch fails before its first tile runs, naming this. A driver that
     * overrides it without honouring the offset says false here.
     *
     * @return true if this driver's five-argument {@code execute} runs from any item
     */
    default boolean runsFromAnyItem() {
        try {
            return getClass().getMethod("execute", DeviceKernel.class, long.class, long.class, List.class,
                    DeviceFaultHandler.class).getDeclaringClass() != DeviceDriver.class;
        } catch (NoSuchMethodException e) {
            throw new AssertionError("the interface declares it", e);
        }
    }

    /**
     * Runs work items [globalOffset, globalOffset + globalSize) of a kernel (one tile of a tiled
     * launch: item ids stay global; only where {@link #runsFromAnyItem} is true). With {@code faults} (only where {@link #takesDeviceFaults}),
     * an access to a page that is not mapped, or not writable for a write, is a device fault: the
     * driver calls {@link DeviceFaultHandler#fault} and, once it returns, retries the access;
     * without, such an access fails the launch as in {@link #execute(DeviceKernel, long, List)}.
     *
     * <p>Drivers that take device faults must keep the translations a work item uses valid only
     * while it may use them: {@link #invalidate} must not return while an item that read an entry
     * in the invalidated ranges before it was changed may still access memory through it (HMM's
     * requirement on a device page-table mirror). The default runs the whole range at offset 0 only.
     *
     * <p>Called by {@code UnifiedMemory.launch} on the launching thread, with no block lock held and
     * the arguments' regions kept from being freed, and returns when every item has run. Without
     * {@code faults}, the pages the items may touch (whole arguments, or the tile's declared
     * windows) are resident on this device, mapped and pinned for the call; with {@code faults},
     * nothing is pinned and other threads may unmap pages while items run. Any exception from an
     * item or from the handler fails the launch and reaches the caller of {@code launch}.
     *
     * @param kernel the kernel to run; of this driver's own {@link DeviceKernel} type
     * @param globalOffset the first work item's id, at least 0
     * @param globalSize the number of work items to run
     * @param arguments the region arguments in launch order
     * @param faults the core's fault handler, or null when every touched page is mapped up front
     * @throws DeviceFaultException if a work item made an illegal access
     * @throws UnsupportedOperationException by the default, for {@code faults} on a driver that does
     *         not take device faults or for a non-zero {@code globalOffset}
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
     * How much of a tile's data this CPU's caches keep between the copy that brings it to the device
     * and the kernel that reads it, for a device whose kernels run on this CPU and read its memory
     * through its caches; 0 for a device with memory of its own (a GPU), the default.
     *
     * <p>Where it is nonzero, a launch that runs tile by tile ({@code KernelArg.perItem}) keeps each
     * tile's windows to this size where the windows allow, prefetches two tiles ahead instead of one,
     * copies them with ordinary stores (which leave the data in the caches) and, once a tile has run,
     * drops the device's copies of its read windows that the host holds too (drop-behind), so that
     * the coming tiles are copied into frames the caches still hold. A hand-written double-buffered
     * program gets the same from its two small buffers; without this, a launch sweeping data twice
     * the size of such a device read each tile from memory, and its sweep took 1.3-1.4 times the
     * hand-written program's ({@code bench oversub}, one launch with windows).
     *
     * @return the bytes a tile's windows may take to stay in the caches, or 0 where caches do not matter
     */
    default long tileCacheBytes() {
        return 0;
    }

    /**
     * Whether a kernel of this device may touch pages that are not mapped, and have them faulted in
     * while it runs (HMM's device fault, UVM's replayable faults); false: every page a kernel may
     * touch must be resident before it starts.
     *
     * @return true if {@link #execute(DeviceKernel, long, long, List, DeviceFaultHandler)} accepts a
     *         fault handler; the default is false
     */
    default boolean takesDeviceFaults() {
        return false;
    }

    /**
     * Whether the calling thread is running a work item of a launch that takes device faults and
     * may be using a translation right now. Such a thread must not call into the core (anything that
     * takes block locks): an invalidation by another thread holding them would wait for it.
     *
     * <p>Asked before migrations, loads, launches and other calls that take block locks, from any
     * thread with no core lock held; it must be cheap and must not block.
     *
     * @return true if the calling thread may hold one of this device's translations; false inside
     *         {@link DeviceFaultHandler#fault}
     */
    default boolean holdsTranslationsOnCurrentThread() {
        return false;
    }

    /**
     * Releases the device's memory and threads. The core has unmapped everything before. Called
     * once, as the last call, by {@code UnifiedMemory.close()} after every region is freed; an
     * exception is logged and the other devices are closed anyway.
     */
    @Override
    void close();

    /** {@link #probe} flag: the entry is present. */
    int PTE_PRESENT = 1;
    /** {@link #probe} flag: the entry allows writes. */
    int PTE_WRITABLE = 2;
    /** The entry maps host memory ({@link #mapHost}). */
    int PTE_REMOTE = 4;
}
