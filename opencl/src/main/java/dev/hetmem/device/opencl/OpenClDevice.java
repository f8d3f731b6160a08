package dev.hetmem.device.opencl;

import dev.hetmem.driver.CopyBatch;
import dev.hetmem.driver.CopyEngine;
import dev.hetmem.driver.DeviceContext;
import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.driver.DeviceFaultHandler;
import dev.hetmem.driver.DeviceKernel;
import dev.hetmem.driver.DeviceMemoryException;
import dev.hetmem.driver.FaultCountdown;
import dev.hetmem.driver.KernelBinding;
import dev.hetmem.driver.RunTooLargeException;
import dev.hetmem.driver.VaRanges;

import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

import static dev.hetmem.driver.PageGeometry.PAGE_SHIFT;

/**
 * An OpenCL device as a hetmem node. Its memory is one or more pool buffers (each within the
 * device's maximum allocation) that the core's buddy allocator carves into 4 KiB frames; copies
 * are non-blocking OpenCL transfers, all of a batch in flight at once on an out-of-order queue and
 * waited for together, or, on a CPU device that shares the host's memory (PoCL's), CPU copies into
 * the host memory the pools were created over ({@link Builder#sharedPools}, {@link SharedPoolMemory}),
 * which run while kernels do; its page table is a host-side mirror of the logical one
 * ({@link DevicePageTable}) whose entries for a launch's arguments are uploaded before the kernel
 * runs; kernels are OpenCL C built with the project's {@code hetmem.h} ({@link #compile}).
 *
 * <p>This class is the {@link DeviceDriver} the core sees and the public face of the device; the
 * work is done by package-private pieces: {@link OpenClContext} (the OpenCL handles, pools and
 * frame addressing), {@link OpenClCopyEngine} (copies), {@link OpenClLauncher} (launches and their
 * page-table upload); {@link PlainBuffers} holds the buffers and programs outside hetmem's
 * management.
 *
 * <p>{@link #hostAddress} is 0 (the fault service does not read pool memory in place, shared or
 * not), so the userfaultfd host-fault mode refuses this device; host views work.
 *
 * <p>Locks (docs/design.md, lock table): this object's monitor (L5) guards {@code attached} in
 * {@link #attach}/{@link #detach}; the launcher's launch lock (L4) serialises launches and closing.
 *
 * <p>Fault injection for tests, as on the emulated device: {@link #failAllocation}, {@link #failCopy},
 * {@link #failExecute}, and {@link #loseDevice}, after which every operation fails as a device that
 * fell off the bus does.
 */
public final class OpenClDevice implements DeviceDriver {
    private static final System.Logger LOG = System.getLogger(OpenClDevice.class.getName());

    private final OpenClContext ctx;
    private final String name;
    /** The host mirror of the device page table: written by map/unmap/protect, read by launches. */
    private final DevicePageTable pageTable = new DevicePageTable();
    private final OpenClCopyEngine copies;
    private final OpenClLauncher launcher;
    private final FaultCountdown allocationFailure = new FaultCountdown();
    private final FaultCountdown executeFailure = new FaultCountdown();
    private final AtomicLong invalidations = new AtomicLong();
    /** Programs built here and not yet closed; close closes them before it releases the context. */
    private final Set<OpenClProgram> programs = ConcurrentHashMap.newKeySet();
    // guarded by this object's monitor for writes (attach/detach); read without it
    private volatile DeviceContext attached;

    private OpenClDevice(Builder b) {
        this.ctx = new OpenClContext(b.platform, b.device, b.name, b.capacity, b.maxPoolBytes, b.borrowed, b.sharedPools,
                b.populate);
        this.name = ctx.name;
        this.launcher = new OpenClLauncher(ctx, pageTable);
        this.copies = new OpenClCopyEngine(ctx);
        LOG.log(System.Logger.Level.DEBUG, () -> name + ": " + ctx.pools.length + " pool buffer(s), " + ctx.capacity + " bytes");
    }

    /**
     * Starts describing a device to open: by default the first device of the first platform, with a
     * quarter of its global memory (rounded down to 2 MiB, at least 2 MiB) as capacity, in as few
     * pool buffers as its maximum allocation allows, named {@code "opencl:"} followed by the
     * device's name. Nothing is opened until {@link Builder#build()}.
     *
     * @return a new builder with the defaults above
     */
    public static Builder builder() {
        return new Builder();
    }

    /**
     * Opens the first device of the first platform, with the default capacity; the same as
     * {@code builder().build()}.
     *
     * @return the opened device, not yet attached to a node
     * @throws OpenClUnavailableException if there is no OpenCL loader, platform or device here
     * @throws OpenClException if an OpenCL call fails while opening the device or its pool buffers
     */
    public static OpenClDevice create() {
        return builder().build();
    }

    /**
     * Chooses the OpenCL device to open and how much of its memory hetmem manages; obtained from
     * {@link OpenClDevice#builder()}. Each setter checks its own argument and returns this builder;
     * {@link #build()} checks the whole against the device. A builder is not thread-safe.
     */
    public static final class Builder {
        private int platform;
        private int device;
        private long capacity;
        private long maxPoolBytes = Long.MAX_VALUE;
        private String name;
        private OpenClContext.Borrowed borrowed;
        private boolean sharedPools = true;
        private boolean populate;

        /** A builder with the defaults; {@link OpenClDevice#builder()} makes one. */
        public Builder() {
        }

        /**
         * Platform index, as {@link OpenClPlatforms#devices()} numbers them (default 0).
         *
         * @param index the platform's position among this machine's platforms, from 0
         * @return this builder
         * @throws IllegalArgumentException if {@code index} is negative
         */
        public Builder platform(int index) {
            if (index < 0) {
                throw new IllegalArgumentException("platform index " + index + " is negative");
            }
            this.platform = index;
            return this;
        }

        /**
         * Device index within the platform (default 0), as {@link OpenClDeviceInfo#index()} gives it.
         *
         * @param index the device's position within its platform, from 0
         * @return this builder
         * @throws IllegalArgumentException if {@code index} is negative
         */
        public Builder device(int index) {
            if (index < 0) {
                throw new IllegalArgumentException("device index " + index + " is negative");
            }
            this.device = index;
            return this;
        }

        /**
         * Device memory hetmem manages, in bytes: a multiple of 2 MiB (default a quarter of the
         * device's global memory). Above the device's maximum allocation it is split into up to 4
         * pool buffers.
         *
         * @param bytes the managed device memory in bytes, a positive multiple of 2 MiB
         * @return this builder
         * @throws IllegalArgumentException if {@code bytes} is not a positive multiple of 2 MiB
         *         ({@link #build()} further refuses more than the device's global memory, or more
         *         than 4 pool buffers hold)
         */
        public Builder capacity(long bytes) {
            if (bytes < OpenClContext.CHUNK || bytes % OpenClContext.CHUNK != 0) {
                throw new IllegalArgumentException("OpenCL device capacity " + bytes + " must be a positive multiple of "
                        + OpenClContext.CHUNK + " (2 MiB)");
            }
            this.capacity = bytes;
            return this;
        }

        /**
         * Largest pool buffer, in bytes (default: the device's maximum allocation). Smaller pools
         * suit devices whose allocator prefers them; capacity above it is split into more pools.
         * A value above the device's maximum allocation has no effect.
         *
         * @param bytes the largest pool buffer in bytes, a positive multiple of 2 MiB
         * @return this builder
         * @throws IllegalArgumentException if {@code bytes} is not a positive multiple of 2 MiB
         */
        public Builder maxPoolBytes(long bytes) {
            if (bytes < OpenClContext.CHUNK || bytes % OpenClContext.CHUNK != 0) {
                throw new IllegalArgumentException("pool size " + bytes + " must be a positive multiple of "
                        + OpenClContext.CHUNK + " (2 MiB)");
            }
            this.maxPoolBytes = bytes;
            return this;
        }

        /**
         * Whether pool buffers live in host memory the device shares, where it does (default
         * true): on a CPU device with unified memory (PoCL's) the pools are created over host
         * memory hetmem maps ({@code CL_MEM_USE_HOST_PTR}) and pages move by CPU copies into it,
         * which run while kernels do; elsewhere, and with {@code false}, the pools are the
         * device's own buffers and pages move by OpenCL transfers. {@link OpenClDevice#sharesHostMemory()}
         * says which was chosen.
         *
         * @param shared false to keep the pools the device's own buffers and move pages by OpenCL transfers
         * @return this builder
         */
        public Builder sharedPools(boolean shared) {
            this.sharedPools = shared;
            return this;
        }

        /**
         * Whether {@link #build()} backs every byte of the pools at once (default false: on first
         * use). An OpenCL implementation, and the host memory shared pools are made of, allocates
         * lazily: the first copy into each frame then pays for the allocation (on a CPU device,
         * the host kernel's page faults, 0.4-2 GB/s on this project's machines), which a GPU's memory never
         * does. Populating costs that once, at build, for the whole capacity (the default capacity
         * is a quarter of the device's global memory, on a CPU device a quarter of the host's:
         * set a capacity too; on a CPU device the fill needs that much host memory at once, and a
         * capacity the host cannot back runs the process out of memory during the build). Benchmarks
         * populate, so that they measure copies, not allocation.
         *
         * @param populate true to write the whole pool once when the device is built
         * @return this builder
         */
        public Builder populate(boolean populate) {
            this.populate = populate;
            return this;
        }

        /**
         * The device's name in hetmem (node listings, messages, {@link OpenClDevice#name()});
         * default {@code "opencl:"} followed by the name OpenCL reports.
         *
         * @param name the name to use
         * @return this builder
         * @throws NullPointerException if {@code name} is null
         */
        public Builder name(String name) {
            this.name = Objects.requireNonNull(name, "name");
            return this;
        }

        /**
         * Runs on an OpenCL context, device and command queue the caller already has (LWJGL and
         * JOCL expose them as {@code long}s), instead of opening a platform and device by index:
         * the device's kernels and the caller's share one context, and hetmem's launches go to the
         * caller's queue. hetmem makes its own pool buffers, copy queue and fault word in that
         * context; it retains the context and the queue while it uses them and, when closed,
         * releases only those references and what it made: the caller's handles stay valid, and
         * the caller releases them (after or before closing hetmem, as it likes).
         *
         * @param context a {@code cl_context}
         * @param device a {@code cl_device_id} of that context, a device of a platform here
         * @param queue an in-order {@code cl_command_queue} of that context and device
         * @return this builder
         * @throws IllegalArgumentException if a handle is 0 ({@link #build()} further refuses a
         *         queue of another context or device, an out-of-order queue, or a device of no
         *         platform here)
         */
        public Builder existing(long context, long device, long queue) {
            if (context == 0 || device == 0 || queue == 0) {
                throw new IllegalArgumentException("context 0x" + Long.toHexString(context) + ", device 0x"
                        + Long.toHexString(device) + ", queue 0x" + Long.toHexString(queue) + ": none may be NULL");
            }
            this.borrowed = new OpenClContext.Borrowed(context, device, queue);
            return this;
        }

        /**
         * Opens the chosen device: creates its context, an in-order kernel queue, a copy queue (out
         * of order where the device allows) and the pool buffers, touching both ends of each pool
         * so that memory the device cannot back fails here. What was created is released if a
         * step fails.
         *
         * @return the opened device, not yet attached to a node
         * @throws OpenClUnavailableException if there is no OpenCL loader, platform or device here
         * @throws IllegalArgumentException if there is no such platform or device index, if the
         *         capacity exceeds the device's global memory or needs more than 4 pool buffers,
         *         or if the device's maximum allocation is under 2 MiB
         * @throws OpenClException if an OpenCL call fails while opening the device
         */
        public OpenClDevice build() {
            return new OpenClDevice(this);
        }
    }

    /**
     * What OpenCL says of this device.
     *
     * @return the device's platform, name, type, version and memory sizes, as read when it was opened
     */
    public OpenClDeviceInfo info() {
        return ctx.info;
    }

    /**
     * Pool buffers the device memory is split into.
     *
     * @return the number of pool buffers, 1 to 4; kernels of this device take one parameter each
     */
    public int poolCount() {
        return ctx.pools.length;
    }

    OpenClContext context() {
        return ctx;
    }

    OpenClLauncher launcher() {
        return launcher;
    }

    // ---- fault injection --------------------------------------------------------------------

    /**
     * The frame preparation after the next {@code after} ones fails with
     * {@link DeviceMemoryException}, as a device out of memory would; only that one fails, and
     * -1 disarms.
     *
     * @param after how many preparations succeed first (0: the next one fails), or -1 to disarm
     */
    public void failAllocation(int after) {
        allocationFailure.arm(after);
    }

    /**
     * From now on the device refuses to back runs of {@code pages} frames or more (a device whose
     * memory is too fragmented for large runs); 0 disarms. Smaller runs are prepared as usual.
     * A refused run fails with {@link RunTooLargeException}.
     *
     * @param pages the smallest run, in 4 KiB frames, to refuse; 0 (or less) to disarm
     */
    public void failRunsOfAtLeast(int pages) {
        this.refuseRunsOf = pages;
    }

    private volatile int refuseRunsOf;

    /**
     * The copy operation after the next {@code after} ones fails (earlier ones complete); -1 disarms.
     *
     * @param after how many copy operations succeed first (0: the next one fails), or -1 to disarm
     */
    public void failCopy(int after) {
        copies.failCopy(after);
    }

    /**
     * The kernel run after the next {@code after} ones fails before it is enqueued, as a device out
     * of resources refuses a launch; -1 disarms. Every run counts (each tile of a tiled launch is
     * one); the failing one throws {@link DeviceMemoryException}, and the switch is disarmed after it
     * fires.
     *
     * @param after how many kernel runs succeed first (0: the next one fails), or -1 to disarm
     */
    public void failExecute(int after) {
        executeFailure.arm(after);
    }

    /**
     * From now on the device behaves as one that was lost (a GPU reset, a PCIe link down): every
     * operation fails with CL_DEVICE_NOT_AVAILABLE before it reaches the device. Pages on the host
     * stay readable; pages whose only copy was on the device cannot come back.
     */
    public void loseDevice() {
        ctx.lose();
    }

    // ---- DeviceDriver -----------------------------------------------------------------------

    @Override
    public String kind() {
        return "opencl";
    }

    @Override
    public String name() {
        return name;
    }

    /**
     * Whether the pools live in host memory the device shares, so that pages move by CPU copies
     * ({@link Builder#sharedPools}); false where they are the device's own buffers.
     *
     * @return true where pages move by CPU copies into memory the device shares
     */
    public boolean sharesHostMemory() {
        return ctx.shared();
    }

    @Override
    public long memoryBytes() {
        return ctx.capacity;
    }

    @Override
    public synchronized void detach(DeviceContext context) {
        if (this.attached == context) {
            this.attached = null;
        }
    }

    /** This device's monitor is lock L5 (device): docs/design.md, lock table, L5. */
    @Override
    public synchronized void attach(DeviceContext context) {
        if (attached != null) {
            throw new IllegalStateException("device " + name + " is already attached to node " + attached.node());
        }
        attached = context;
    }

    /**
     * The node this device is attached as.
     *
     * @return the node id (1 or more) the memory manager gave this device, or -1 while it is not
     *         attached (before it is, or after it was detached)
     */
    public int node() {
        DeviceContext c = attached;
        return c == null ? -1 : c.node();
    }

    @Override
    public void prepareFrames(int first, int count) {
        if (ctx.lost()) {
            throw new DeviceMemoryException("OpenCL device " + name + " was lost (CL_DEVICE_NOT_AVAILABLE)");
        }
        if (allocationFailure.fire()) {
            throw new DeviceMemoryException("injected allocation failure on " + name + " (frames " + first + ".." + (first + count - 1) + ")");
        }
        int refuse = refuseRunsOf;
        if (refuse > 0 && count >= refuse) {
            throw new RunTooLargeException("injected: " + name + " cannot back a run of " + count + " frames (runs of "
                    + refuse + " or more are refused)");
        }
    }

    @Override
    public void copy(CopyBatch batch, int from, int to) {
        copies.copy(batch, from, to);
    }

    /** Its pools are buffers of one context: {@code clEnqueueCopyBuffer} copies between them. */
    @Override
    public boolean canCopyWithin() {
        return true;
    }

    @Override
    public void copyWithin(int[] sourceFrames, int[] frames, int[] pages, int count) {
        copies.copyWithin(sourceFrames, frames, pages, count);
    }

    /** The device's copy engine, whichever kind of pool it has (plain buffers' transfers go through it). */
    OpenClCopyEngine copies() {
        return copies;
    }

    /** Its copy queue's transfers; none where the pools are shared host memory (the core's CPU copy threads copy then). */
    @Override
    public CopyEngine copyEngine() {
        return ctx.shared() ? null : copies;
    }

    @Override
    public void map(long va, int frame, int pages, boolean writable) {
        if (!ctx.holds(frame, pages)) {
            throw new IllegalArgumentException("frames " + frame + "+" + pages + " outside device memory of " + ctx.capacity + " bytes");
        }
        // a run may cross into the next pool: enter it pool by pool
        while (pages > 0) {
            int n = ctx.runInPool(frame, pages);
            pageTable.map(va, ctx.pageTableEntry(frame, writable), n);
            va += (long) n << PAGE_SHIFT;
            frame += n;
            pages -= n;
        }
    }

    @Override
    public void unmap(long va, long pages) {
        pageTable.unmap(va, pages);
    }

    @Override
    public void protect(long va, long pages, boolean writable) {
        pageTable.protect(va, pages, writable);
    }

    /**
     * Kernels see the entries uploaded at their launch, and a launch runs only with its arguments
     * pinned, so no running kernel holds a released entry (a plain argument's page may leave the
     * table while its kernel runs, but that kernel reaches the frame by the sub-buffer it was bound
     * to, and the frame is freed only after the kernel's pin): the invalidation is the next upload.
     */
    @Override
    public void invalidate(VaRanges ranges) {
        invalidations.incrementAndGet();
    }

    /**
     * A plain argument is a sub-buffer over the frames its binding names, made before the kernel is
     * enqueued; the kernel never reads the page table for it.
     */
    @Override
    public boolean bindsPlainArgumentsByFrame() {
        return true;
    }

    /**
     * TLB invalidations requested so far. Each costs nothing here (see {@link #invalidate}); the
     * count lets tests and benchmarks see how often the core asked.
     *
     * @return the number of {@link #invalidate} calls since the device was opened
     */
    public long invalidations() {
        return invalidations.get();
    }

    @Override
    public int probe(long va) {
        int e = pageTable.entry(va);
        if ((e & DevicePageTable.PRESENT) == 0) {
            return 0;
        }
        return PTE_PRESENT | ((e & DevicePageTable.WRITABLE) != 0 ? PTE_WRITABLE : 0);
    }

    /** A sub-buffer's origin alignment (CL_DEVICE_MEM_BASE_ADDR_ALIGN). */
    @Override
    public int plainAlignment() {
        return (int) Math.min(dev.hetmem.driver.PageGeometry.PAGE_BYTES, ctx.baseAlignment);
    }

    /** One pool buffer's frames: a plain argument is one sub-buffer of one pool. */
    @Override
    public int contiguousFrames() {
        return ctx.framesPerPool;
    }

    @Override
    public long probeFrame(long va) {
        int e = pageTable.entry(va);
        if ((e & DevicePageTable.PRESENT) == 0) {
            return -1;
        }
        return ctx.frameOf(e);
    }

    // ---- programs and launches ---------------------------------------------------------------

    /**
     * Builds OpenCL C source whose kernels reach region arguments through {@code hetmem.h}
     * ({@link OpenClProgram#HEADER}, put in front of {@code source}; build log line numbers are
     * those of {@code source}). The program stays open until it or this device is closed.
     *
     * @param source the OpenCL C source of the kernels
     * @return the built program
     * @throws OpenClBuildException if the source does not compile; it carries the build log
     * @throws IllegalStateException if the device is closed
     * @throws OpenClException if the device was lost or another OpenCL call fails
     * @throws NullPointerException if {@code source} is null
     */
    public OpenClProgram compile(String source) {
        return compile(source, "");
    }

    /**
     * As {@link #compile(String)}, with extra build options (such as {@code -DBLOCK=16}).
     *
     * @param source the OpenCL C source of the kernels
     * @param options OpenCL build options appended to the driver's own; empty for none
     * @return the built program
     * @throws OpenClBuildException if the source does not compile; it carries the build log
     * @throws IllegalStateException if the device is closed
     * @throws OpenClException if the device was lost or another OpenCL call fails
     * @throws NullPointerException if {@code source} or {@code options} is null
     */
    public OpenClProgram compile(String source, String options) {
        return build(source, "-DHM_POOLS=" + ctx.pools.length + " ", options, false);
    }

    /** Builds {@code source} with {@code flags} then {@code options} and keeps the program until it or the device closes. */
    OpenClProgram build(String source, String flags, String options, boolean plain) {
        ctx.checkUsable("clBuildProgram");
        // -cl-kernel-arg-info: scalar arguments are checked against the parameters' declared types
        OpenClProgram p = OpenClProgram.build(this, ctx.cl, ctx.context, ctx.device, source,
                flags + "-cl-kernel-arg-info " + Objects.requireNonNull(options, "options"), plain);
        programs.add(p);
        // the device may have closed during the build, its close listing its programs before this one was
        // added: refused, and released here (either this sees the close, or the close sees the program)
        try {
            ctx.checkUsable("clBuildProgram");
        } catch (RuntimeException e) {
            p.close();
            throw e;
        }
        return p;
    }

    void forget(OpenClProgram p) {
        programs.remove(p);
    }

    /**
     * A device buffer outside hetmem's management: a {@code __global} scalar argument of this
     * device's kernels, or a buffer for {@link PlainBuffers#run}. Its contents are undefined
     * until written; the caller closes it (closing the device does not).
     *
     * @param bytes the buffer's size in bytes, positive
     * @return a new buffer of {@code bytes} in this device's memory, outside the pools
     * @throws IllegalArgumentException if {@code bytes} is not positive
     * @throws IllegalStateException if the device is closed
     * @throws OpenClException if the device was lost or OpenCL cannot allocate the buffer
     */
    public PlainBuffer plainBuffer(long bytes) {
        return PlainBuffers.allocate(this, bytes);
    }

    /**
     * A buffer of this device that hetmem does not manage ({@link #plainBuffer}). Declared here,
     * where callers name it; implemented by {@link PlainBuffers}.
     */
    public sealed interface PlainBuffer extends AutoCloseable permits PlainBuffers.Buffer {
        /**
         * The buffer's size.
         *
         * @return the size in bytes given to {@link OpenClDevice#plainBuffer}
         */
        long byteSize();

        /**
         * Copies {@code src} (native, at most {@link #byteSize} bytes) to the start of the buffer, blocking.
         *
         * @param src the native segment to copy from; all its bytes are copied (none for an empty one)
         * @throws IllegalArgumentException if {@code src} is not native or is larger than the buffer
         * @throws IllegalStateException if the device is closed
         * @throws OpenClException if the device was lost or the transfer fails
         */
        void write(MemorySegment src);

        /**
         * Copies the start of the buffer into {@code dst} (native, at most {@link #byteSize} bytes), blocking.
         *
         * @param dst the native segment to fill; as many bytes as it holds are copied (none for an empty one)
         * @throws IllegalArgumentException if {@code dst} is not native, read-only, or larger than the buffer
         * @throws IllegalStateException if the device is closed
         * @throws OpenClException if the device was lost or the transfer fails
         */
        void read(MemorySegment dst);

        /** Releases the buffer; again does nothing. */
        @Override
        void close();
    }

    @Override
    public void execute(DeviceKernel kernel, long globalSize, List<KernelBinding> arguments) {
        if (!(kernel instanceof OpenClKernel k) || k.program().device() != this || k.program().plain()) {
            throw new IllegalArgumentException("the OpenCL device " + name + " runs kernels it compiled (OpenClKernel from its compile()), not "
                    + (kernel == null ? "null" : kernel));
        }
        failIfInjected(0, globalSize);
        launcher.execute(k, globalSize, arguments);
    }

    private void failIfInjected(long globalOffset, long globalSize) {
        if (executeFailure.fire()) {
            throw new DeviceMemoryException("injected launch failure on " + name + " (out of resources): none of work items ["
                    + globalOffset + ", " + (globalOffset + globalSize) + ") ran");
        }
    }

    /**
     * One tile of a tiled launch (work items from {@code globalOffset}, passed to OpenCL as the global
     * work offset, so {@code get_global_id} stays global). OpenCL kernels cannot take device faults:
     * every page they may touch must be resident before they start.
     */
    @Override
    public void execute(DeviceKernel kernel, long globalOffset, long globalSize, List<KernelBinding> arguments,
                        DeviceFaultHandler faults) {
        if (faults != null) {
            throw new UnsupportedOperationException(name + " (OpenCL) cannot take device faults: declare per-item "
                    + "windows (KernelArg.perItem) for arguments larger than the device");
        }
        if (!(kernel instanceof OpenClKernel k) || k.program().device() != this || k.program().plain()) {
            throw new IllegalArgumentException("the OpenCL device " + name + " runs kernels it compiled (OpenClKernel from its compile()), not "
                    + (kernel == null ? "null" : kernel));
        }
        failIfInjected(globalOffset, globalSize);
        launcher.execute(k, globalOffset, globalSize, arguments);
    }

    /**
     * Closes once: marks the device closed (after any launch in progress), lets the copy engine
     * finish what was submitted, closes the programs, drains both queues, then releases the page
     * table, the pools, the queues and the context.
     */
    @Override
    public void close() {
        if (!launcher.closeLaunches()) {
            return;
        }
        copies.stop();
        for (OpenClProgram p : List.copyOf(programs)) {
            p.close();
        }
        ctx.finishQueues();
        launcher.release();
        ctx.release();
    }

    @Override
    public String toString() {
        return "OpenClDevice[" + name + ", " + ctx.capacity + " bytes in " + ctx.pools.length + " pool(s)]";
    }
}
