package dev.hetmem.device.emulated;

import dev.hetmem.Access;
import dev.hetmem.KernelArg;
import dev.hetmem.LaunchResult;
import dev.hetmem.Region;
import dev.hetmem.UnifiedMemory;
import dev.hetmem.driver.CopyBatch;
import dev.hetmem.driver.HostCopy;
import dev.hetmem.driver.CopyEngine;
import dev.hetmem.driver.DeviceContext;
import dev.hetmem.driver.DeviceCopyException;
import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.driver.DeviceFaultHandler;
import dev.hetmem.driver.DeviceKernel;
import dev.hetmem.driver.DeviceMemoryException;
import dev.hetmem.driver.FaultCountdown;
import dev.hetmem.driver.KernelBinding;
import dev.hetmem.driver.RunTooLargeException;
import dev.hetmem.driver.VaRanges;
import dev.hetmem.host.Libc;
import dev.hetmem.host.StreamingCopy;

import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.atomic.AtomicInteger;

import static dev.hetmem.driver.PageGeometry.PAGE_SHIFT;
import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;

/**
 * The emulated device: hetmem's counterpart of the Linux kernel's test_hmm "dmirror" device, the
 * device every core test runs on. Its memory is an off-heap pool of fixed capacity (reserved with
 * MAP_NORESERVE, so an idle device costs nothing), its page table is its own, its kernels are Java
 * code that reaches memory only through that page table, and it has a copy engine (a thread that
 * performs queued transfers) so copies can be offloaded.
 *
 * <p>It implements the driver interface and uses only the public API besides: its dmirror-style
 * {@link #read} and {@link #write} commands are kernel launches.
 *
 * <p>Fault injection for tests: {@link #failAllocation(int)}, {@link #failCopy(int)} and
 * {@link #failExecute(int)}.
 */
public final class EmulatedDevice implements DeviceDriver {
    /** Device memory of a device built without {@link Builder#capacity}: 256 MiB, in bytes. */
    public static final long DEFAULT_CAPACITY = 256L << 20;
    /**
     * A tile's windows kept to this by default ({@link Builder#tileCacheBytes}): 2 MiB, a core's L2
     * on the development machine (AMD EPYC, 2 MiB L2 a core, 32 MiB L3 shared). There, sweeping
     * 128 MiB through a 64 MiB device in one launch took 12.3-13.9 ms in quarter-device tiles and
     * 8.1-10.3 ms in 2 MiB ones, two ahead and dropped behind, beside 9.1-10.3 ms for the hand-written
     * double-buffered program with 2 MiB buffers (medians of sweeps 51-200 in one JVM each).
     */
    public static final long DEFAULT_TILE_CACHE_BYTES = 2L << 20;

    private final String name;
    private final long capacity;
    private final int computeThreads;
    private final long tileCacheBytes;
    private final long pool;
    private final EmulatedPageTable pageTable = new EmulatedPageTable();
    private final FaultCountdown allocationFailure = new FaultCountdown();
    private final FaultCountdown copyFailure = new FaultCountdown();
    private final FaultCountdown executeFailure = new FaultCountdown();
    private final ExecutorService compute;
    /** Runs launches' work items; tracks what faulting launches' items may be using. */
    private final ComputeUnits units;
    private final CopyThread copyThread;
    private volatile DeviceContext context;
    private volatile boolean closed;

    private EmulatedDevice(Builder b) {
        this.name = b.name;
        this.capacity = b.capacity;
        this.computeThreads = b.computeThreads;
        this.tileCacheBytes = b.tileCacheBytes;
        this.pool = Libc.mmap(0, capacity, Libc.PROT_READ | Libc.PROT_WRITE,
                Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS | Libc.MAP_NORESERVE);
        // device memory is managed in 2 MiB chunks, as on GPUs: back it with huge pages where the host allows
        Libc.tryMadvise(pool, capacity, Libc.MADV_HUGEPAGE);
        if (b.populate) {
            // real device memory exists before it is used: fault the whole pool in now, so copies
            // into it measure copying and not the host kernel's page allocation
            int err = Libc.tryMadvise(pool, capacity, Libc.MADV_POPULATE_WRITE);
            if (err != 0) {
                Libc.memset(pool, 0, capacity);
            }
        }
        AtomicInteger n = new AtomicInteger();
        this.compute = computeThreads > 1
                ? Executors.newFixedThreadPool(computeThreads - 1,
                        r -> Thread.ofPlatform().daemon().name(name + "-compute-" + n.getAndIncrement()).unstarted(r))
                : null;
        this.units = new ComputeUnits(name, computeThreads, compute, pageTable, this::frameAddress);
        this.copyThread = new CopyThread();
    }

    /**
     * A builder with the defaults: name "emulated", {@link #DEFAULT_CAPACITY}, one compute thread
     * per available processor, memory backed on first use.
     *
     * @return a new builder
     */
    public static Builder builder() {
        return new Builder();
    }

    /**
     * An emulated device of the default capacity (256 MiB), with the {@link #builder()} defaults.
     *
     * @return a new device, not yet attached to a memory
     */
    public static EmulatedDevice create() {
        return builder().build();
    }

    /**
     * Configures an emulated device; each setter checks its argument and returns this builder.
     * Not thread-safe.
     */
    public static final class Builder {
        private String name = "emulated";
        private long capacity = DEFAULT_CAPACITY;
        private int computeThreads = Runtime.getRuntime().availableProcessors();
        private long tileCacheBytes = DEFAULT_TILE_CACHE_BYTES;
        private boolean populate;

        /** A builder with the defaults; {@link EmulatedDevice#builder()} makes one. */
        public Builder() {
        }

        /**
         * Backs the whole pool with memory at once, as real device memory is (default: on first use).
         *
         * @param populate true to touch all of the device's memory when it is built, so that copies
         *                 into it do not pay for the host kernel's page allocation
         * @return this builder
         */
        public Builder populate(boolean populate) {
            this.populate = populate;
            return this;
        }

        /**
         * The device's name, as {@code name()} reports it and as its thread names begin.
         *
         * @param name the name (default "emulated"); not null
         * @return this builder
         * @throws NullPointerException if {@code name} is null
         */
        public Builder name(String name) {
            this.name = Objects.requireNonNull(name, "name");
            return this;
        }

        /**
         * Device memory in bytes: a multiple of 4 KiB, from 4 KiB to 1 TiB. It is reserved without
         * being backed (MAP_NORESERVE) unless {@link #populate} asks for it.
         *
         * @param bytes the capacity (default {@link #DEFAULT_CAPACITY})
         * @return this builder
         * @throws IllegalArgumentException if {@code bytes} is not a multiple of 4096 in
         *         [4096, 2^40]
         */
        public Builder capacity(long bytes) {
            if (bytes < PAGE_BYTES || bytes > (1L << 40) || (bytes & (PAGE_BYTES - 1)) != 0) {
                throw new IllegalArgumentException("emulated device capacity " + bytes
                        + " must be a multiple of 4096 in [4096, 2^40]");
            }
            this.capacity = bytes;
            return this;
        }

        /**
         * How much of a tile's data the caches keep for its kernel ({@link DeviceDriver#tileCacheBytes}):
         * a tiled launch on this device keeps its tiles to this size. 0 makes it tile as a device with
         * memory of its own does (tiles a quarter of the device, one prefetched ahead, none dropped).
         *
         * @param bytes the bytes, at least 0 (default {@link #DEFAULT_TILE_CACHE_BYTES})
         * @return this builder
         * @throws IllegalArgumentException if {@code bytes} is negative
         */
        public Builder tileCacheBytes(long bytes) {
            if (bytes < 0) {
                throw new IllegalArgumentException("tile cache bytes " + bytes + " must not be negative");
            }
            this.tileCacheBytes = bytes;
            return this;
        }

        /**
         * Threads that run a kernel's work items (the caller is one of them).
         *
         * @param threads the compute threads, in [1, 1024] (default: available processors); 1 runs
         *                every item on the launching thread
         * @return this builder
         * @throws IllegalArgumentException if {@code threads} is outside [1, 1024]
         */
        public Builder computeThreads(int threads) {
            if (threads < 1 || threads > 1024) {
                throw new IllegalArgumentException("compute threads " + threads + " outside [1, 1024]");
            }
            this.computeThreads = threads;
            return this;
        }

        /**
         * Makes the device: reserves its memory and starts its copy-engine thread and compute pool,
         * which {@link EmulatedDevice#close()} releases.
         *
         * @return a new device, not yet attached to a memory
         * @throws dev.hetmem.HetmemException if the memory cannot be reserved
         */
        public EmulatedDevice build() {
            return new EmulatedDevice(this);
        }
    }

    // ---- fault injection -------------------------------------------------------------------

    /**
     * The allocation after the next {@code after} ones (frame preparations) fails; -1 disarms.
     * The failing {@code prepareFrames} throws {@link DeviceMemoryException}, and the switch is
     * disarmed after it fires.
     *
     * @param after how many frame preparations succeed first: 0 fails the next one; -1 disarms
     */
    public void failAllocation(int after) {
        allocationFailure.arm(after);
    }

    /**
     * From now on the device refuses to back runs of {@code pages} frames or more (as a device whose
     * memory is too fragmented for huge pages); 0 disarms. Smaller runs are prepared as usual.
     * The refusal is a {@link RunTooLargeException}, and it stays until disarmed.
     *
     * @param pages the smallest run, in 4 KiB frames, that is refused; 0 (or less) disarms
     */
    public void failRunsOfAtLeast(int pages) {
        this.refuseRunsOf = pages;
    }

    private volatile int refuseRunsOf;

    /**
     * The copy operation after the next {@code after} ones fails (earlier ones complete); -1 disarms.
     * Operations of {@code copy}, of the copy engine, and peer copies all count; the failing one
     * throws {@link DeviceCopyException}, and the switch is disarmed after it fires.
     *
     * @param after how many copy operations succeed first: 0 fails the next one; -1 disarms
     */
    public void failCopy(int after) {
        copyFailure.arm(after);
    }

    /**
     * The kernel run after the next {@code after} ones fails before any of its work items runs, as a
     * device out of resources refuses a launch; -1 disarms. Every {@code execute} counts (each tile
     * of a tiled launch is one); the failing one throws {@link DeviceMemoryException}, and the switch
     * is disarmed after it fires.
     *
     * @param after how many kernel runs succeed first: 0 fails the next one; -1 disarms
     */
    public void failExecute(int after) {
        executeFailure.arm(after);
    }

    // ---- DeviceDriver ----------------------------------------------------------------------

    @Override
    public String kind() {
        return "emulated";
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public long memoryBytes() {
        return capacity;
    }

    @Override
    public synchronized void detach(DeviceContext context) {
        if (this.context == context) {
            this.context = null;
        }
    }

    @Override
    public synchronized void attach(DeviceContext context) {
        if (this.context != null) {
            throw new IllegalStateException("device " + name + " is already attached to node " + this.context.node());
        }
        this.context = context;
    }

    /**
     * How many consecutive work items a compute thread takes at a time in a launch (or tile) of
     * {@code globalSize} items on a device of {@code computeThreads} compute threads: a chunk's
     * items run in order on one thread, and a thread that finishes a chunk takes the next one
     * left, so a thread held up (by another runnable thread on the machine's cores) leaves its
     * chunks to the others.
     *
     * @param globalSize     the launch's work items, at least 0
     * @param computeThreads the device's compute threads, at least 1
     * @return the items per chunk (the last chunk may be shorter), at least 1
     * @throws IllegalArgumentException if an argument is outside its range
     */
    public static long itemsPerChunk(long globalSize, int computeThreads) {
        if (computeThreads < 1) {
            throw new IllegalArgumentException("computeThreads " + computeThreads + " is less than 1");
        }
        if (globalSize < 0) {
            throw new IllegalArgumentException("globalSize " + globalSize + " is negative");
        }
        return WorkItems.chunk(globalSize, computeThreads);
    }

    /**
     * The node id this device was given, or -1 before it is attached.
     *
     * @return the node id, from 1, while attached to a memory; -1 otherwise
     */
    public int node() {
        DeviceContext c = context;
        return c == null ? -1 : c.node();
    }

    @Override
    public void prepareFrames(int first, int count) {
        if (allocationFailure.fire()) {
            throw new DeviceMemoryException("injected allocation failure on " + name + " (frames " + first
                    + ".." + (first + count - 1) + ")");
        }
        int refuse = refuseRunsOf;
        if (refuse > 0 && count >= refuse) {
            throw new RunTooLargeException("injected: " + name + " cannot back a run of " + count + " frames (runs of "
                    + refuse + " or more are refused)");
        }
    }

    @Override
    public long hostAddress(int frame) {
        return frameAddress(frame, 1);
    }

    private long frameAddress(int frame, int pages) {
        long off = (long) frame << PAGE_SHIFT;
        if (frame < 0 || off + ((long) pages << PAGE_SHIFT) > capacity) {
            throw new DeviceCopyException("frames " + frame + "+" + pages + " outside device memory of " + capacity + " bytes");
        }
        return pool + off;
    }

    @Override
    public void copy(CopyBatch batch, int from, int to) {
        boolean streaming = batch.streaming();   // the engine's decision for the whole batch (HostCopy)
        for (int i = from; i < to; i++) {
            if (copyFailure.fire()) {
                throw new DeviceCopyException("injected copy failure on " + name + " at operation " + i
                        + " of a batch of " + batch.size());
            }
            long bytes = (long) batch.pages(i) << PAGE_SHIFT;
            long dev = frameAddress(batch.frame(i), batch.pages(i));
            switch (batch.op(i)) {
                case CopyBatch.TO_DEVICE -> StreamingCopy.copy(dev, batch.hostAddress(i), bytes, streaming);
                case CopyBatch.TO_HOST -> StreamingCopy.copy(batch.hostAddress(i), dev, bytes, streaming);
                case CopyBatch.ZERO -> Libc.memset(dev, 0, bytes);
                default -> throw new DeviceCopyException("unknown copy operation " + batch.op(i));
            }
        }
    }

    /**
     * Emulated devices all live in host memory: any two have a peer path (a plain memcpy between pools).
     *
     * @param source the device the pages are on now
     * @return true if {@code source} is another emulated device
     */
    @Override
    public boolean canCopyFrom(DeviceDriver source) {
        return source instanceof EmulatedDevice && source != this;
    }

    @Override
    public void copyFromPeer(DeviceDriver source, int sourceFrame, int frame, int pages) {
        EmulatedDevice from = (EmulatedDevice) source;
        if (copyFailure.fire()) {
            throw new DeviceCopyException("injected copy failure on " + name + " (peer copy from " + from.name + ")");
        }
        long bytes = (long) pages << PAGE_SHIFT;
        // one call per stretch of frames: decided per call, by its size (no fault asks for a peer copy)
        StreamingCopy.copy(frameAddress(frame, pages), from.frameAddress(sourceFrame, pages), bytes, HostCopy.streams(bytes));
        peerCopies.addAndGet(pages);
    }

    /** Its memory is one pool in host memory: a frame is copied to another by memcpy. */
    @Override
    public boolean canCopyWithin() {
        return true;
    }

    @Override
    public void copyWithin(int[] sourceFrames, int[] frames, int[] pages, int count) {
        long total = 0;
        for (int i = 0; i < count; i++) {
            total += (long) pages[i] << PAGE_SHIFT;
        }
        boolean streaming = HostCopy.streams(total);
        for (int i = 0; i < count; i++) {
            if (copyFailure.fire()) {
                throw new DeviceCopyException("injected copy failure on " + name + " (copy within its memory)");
            }
            StreamingCopy.copy(frameAddress(frames[i], pages[i]), frameAddress(sourceFrames[i], pages[i]),
                    (long) pages[i] << PAGE_SHIFT, streaming);
            copiesWithin.addAndGet(pages[i]);
        }
    }

    /**
     * Pages copied from one frame of this device to another (a plain argument gathered into
     * consecutive frames) since the device was built.
     *
     * @return the count of 4 KiB pages
     */
    public long pagesCopiedWithin() {
        return copiesWithin.get();
    }

    private final java.util.concurrent.atomic.AtomicLong copiesWithin = new java.util.concurrent.atomic.AtomicLong();

    /**
     * Pages copied into this device straight from another device (no host staging).
     *
     * @return the count of 4 KiB pages received over the peer path since the device was built
     */
    public long peerCopiedPages() {
        return peerCopies.get();
    }

    private final java.util.concurrent.atomic.AtomicLong peerCopies = new java.util.concurrent.atomic.AtomicLong();

    @Override
    public CopyEngine copyEngine() {
        return copyThread;
    }

    @Override
    public void map(long va, int frame, int pages, boolean writable) {
        pageTable.map(va, frameAddress(frame, pages), pages, writable);
    }

    /**
     * Kernels here are Java code in the host's address space: host memory is directly reachable.
     *
     * @return always true
     */
    @Override
    public boolean canMapHost() {
        return true;
    }

    @Override
    public void mapHost(long va, long hostAddress, int pages, boolean writable) {
        pageTable.mapRemote(va, hostAddress, pages, writable);
    }

    @Override
    public void unmap(long va, long pages) {
        pageTable.unmap(va, pages);
    }

    @Override
    public void protect(long va, long pages, boolean writable) {
        pageTable.protect(va, pages, writable);
    }

    @Override
    public void invalidate(VaRanges ranges) {
        // Kernel threads cache page-table leaves, never entries, and leaves are never freed; what may
        // be stale is an entry a work item of a faulting launch read and is still using: wait for it
        // (TranslationEpochs). The count lets tests see one invalidation per batch.
        units.awaitQuiescent(ranges);
        pageTable.invalidated();
    }

    @Override
    public boolean takesDeviceFaults() {
        return true;
    }

    /** Its memory is host memory its compute threads read through this CPU's caches. */
    @Override
    public long tileCacheBytes() {
        return tileCacheBytes;
    }

    /** A plain argument is a pointer into the frames its binding names, taken before its items run. */
    @Override
    public boolean bindsPlainArgumentsByFrame() {
        return true;
    }

    @Override
    public boolean holdsTranslationsOnCurrentThread() {
        return units.holdsTranslationsOnCurrentThread();
    }

    /**
     * TLB invalidations requested so far: one per device per migration step that released or
     * protected entries here, so tests can check that invalidations are coalesced.
     *
     * @return the number of {@code invalidate} calls since the device was built
     */
    public long invalidations() {
        return pageTable.invalidations();
    }

    @Override
    public int probe(long va) {
        long e = pageTable.entry(va);
        if ((e & EmulatedPageTable.PRESENT) == 0) {
            return 0;
        }
        return PTE_PRESENT | ((e & EmulatedPageTable.WRITABLE) != 0 ? PTE_WRITABLE : 0)
                | ((e & EmulatedPageTable.REMOTE) != 0 ? PTE_REMOTE : 0);
    }

    @Override
    public long probeFrame(long va) {
        long e = pageTable.entry(va);
        if ((e & EmulatedPageTable.PRESENT) == 0 || (e & EmulatedPageTable.REMOTE) != 0) {
            return -1;
        }
        return ((e & ~EmulatedPageTable.FLAGS) - pool) >>> PAGE_SHIFT;
    }

    @Override
    public void execute(DeviceKernel kernel, long globalSize, List<KernelBinding> arguments) {
        execute(kernel, 0, globalSize, arguments, null);
    }

    @Override
    public void execute(DeviceKernel kernel, long globalOffset, long globalSize, List<KernelBinding> arguments,
                        DeviceFaultHandler faults) {
        if (!(kernel instanceof EmulatedKernel k)) {
            throw new IllegalArgumentException("the emulated device runs EmulatedKernel kernels, not "
                    + (kernel == null ? "null" : kernel.getClass().getName()));
        }
        if (closed) {
            throw new IllegalStateException("device " + name + " is closed");
        }
        if (globalOffset < 0 || globalSize < 0 || globalOffset > Long.MAX_VALUE - globalSize) {
            throw new IllegalArgumentException("work items [" + globalOffset + ", " + globalOffset + " + " + globalSize
                    + ") are outside [0, 2^63)");
        }
        if (executeFailure.fire()) {
            throw new DeviceMemoryException("injected launch failure on " + name + " (out of resources): none of work items ["
                    + globalOffset + ", " + (globalOffset + globalSize) + ") ran");
        }
        units.run(k, globalOffset, globalSize, arguments, faults);
    }

    @Override
    public boolean runsKernelOnCurrentThread() {
        return units.runsKernelOnCurrentThread();
    }

    // ---- dmirror-style commands -------------------------------------------------------------

    /** The region's memory, which this device must be attached to. */
    private UnifiedMemory memoryOf(Region region) {
        DeviceContext c = context;
        if (c == null) {
            throw new IllegalStateException("device " + name + " is not attached to a UnifiedMemory");
        }
        UnifiedMemory m = region.memory();
        if (m.driver(c.node()) != this) {
            throw new IllegalArgumentException(region + " belongs to a memory that device " + name + " is not attached to");
        }
        return m;
    }

    /**
     * Device read: faults {@code pages} pages at {@code offset} onto this device and copies them
     * into {@code dst}. Like dmirror's READ command.
     *
     * <p>It is one {@code UnifiedMemory.launch} of a single work item on this device's node, with
     * bytes [offset, offset + pages * 4096) of the region as a {@code READ} argument; it returns
     * once the bytes are in {@code dst}.
     *
     * @param region a region of the memory this device is attached to
     * @param offset the first byte read, as a region offset
     * @param pages how many 4 KiB pages to read, at least 1
     * @param dst where the bytes go: at least {@code pages * 4096} bytes, written from its start
     * @return the pages the command covered and the faults it took
     * @throws NullPointerException if {@code region} or {@code dst} is null
     * @throws IllegalArgumentException if {@code pages} is not positive, {@code dst} is too small,
     *         or the region belongs to a memory this device is not attached to
     * @throws IndexOutOfBoundsException if the range is outside the region
     * @throws IllegalStateException if the device is not attached to a memory
     */
    public CommandResult read(Region region, long offset, long pages, MemorySegment dst) {
        long bytes = checkCommand(region, offset, pages, dst);
        LaunchResult r = memoryOf(region).launch(node(), (EmulatedKernel) (args, item) -> args.arg(0).copyTo(0, dst, 0, bytes),
                1, KernelArg.of(region, offset, bytes, Access.READ));
        return new CommandResult(r.pagesTouched(), r.faults());
    }

    /**
     * Device write: faults the pages onto this device writable and copies {@code src} into them.
     * Like dmirror's WRITE command.
     *
     * <p>It is one {@code UnifiedMemory.launch} of a single work item on this device's node, with
     * bytes [offset, offset + pages * 4096) of the region as a {@code WRITE} argument; it returns
     * once the bytes are in the region.
     *
     * @param region a region of the memory this device is attached to
     * @param offset the first byte written, as a region offset
     * @param pages how many 4 KiB pages to write, at least 1
     * @param src where the bytes come from: at least {@code pages * 4096} bytes, read from its start
     * @return the pages the command covered and the faults it took
     * @throws NullPointerException if {@code region} or {@code src} is null
     * @throws IllegalArgumentException if {@code pages} is not positive, {@code src} is too small,
     *         or the region belongs to a memory this device is not attached to
     * @throws IndexOutOfBoundsException if the range is outside the region
     * @throws IllegalStateException if the device is not attached to a memory
     * @throws dev.hetmem.ProtectionException if a page of the range is read-only
     */
    public CommandResult write(Region region, long offset, long pages, MemorySegment src) {
        long bytes = checkCommand(region, offset, pages, src);
        LaunchResult r = memoryOf(region).launch(node(), (EmulatedKernel) (args, item) -> args.arg(0).copyFrom(src, 0, 0, bytes),
                1, KernelArg.of(region, offset, bytes, Access.WRITE));
        return new CommandResult(r.pagesTouched(), r.faults());
    }

    private static long checkCommand(Region region, long offset, long pages, MemorySegment buffer) {
        Objects.requireNonNull(region, "region");
        Objects.requireNonNull(buffer, "buffer");
        if (pages <= 0 || pages > (Long.MAX_VALUE >>> PAGE_SHIFT)) {
            throw new IllegalArgumentException("page count " + pages + " must be positive");
        }
        long bytes = pages << PAGE_SHIFT;
        if (buffer.byteSize() < bytes) {
            throw new IllegalArgumentException("buffer of " + buffer.byteSize() + " bytes is smaller than "
                    + pages + " pages (" + bytes + " bytes)");
        }
        return bytes;
    }

    // ---- copy engine -----------------------------------------------------------------------

    // Its queue is part of lock L12 (copy engine); this device's monitor is L5: docs/design.md, lock table, L5, L12.
    /** One thread draining a queue of transfers: the emulated DMA engine. */
    private final class CopyThread implements CopyEngine {
        private record Job(CopyBatch batch, int from, int to, CompletableFuture<Void> done) {}

        /** Queued by {@link #stop}, after every job submitted before the close. */
        private static final Job STOP = new Job(null, 0, 0, null);

        private final LinkedBlockingQueue<Job> queue = new LinkedBlockingQueue<>();
        private final Thread thread;

        CopyThread() {
            thread = Thread.ofPlatform().daemon().name(name + "-copy-engine").start(this::loop);
        }

        @Override
        public CompletableFuture<Void> submit(CopyBatch batch, int from, int to) {
            CompletableFuture<Void> done = new CompletableFuture<>();
            if (closed) {
                done.completeExceptionally(new DeviceCopyException("device " + name + " is closed"));
                return done;
            }
            Job job = new Job(batch, from, to, done);
            queue.add(job);
            if (closed && queue.remove(job)) {
                // a close between the check and the add: the thread may have drained and gone, and no one
                // would complete it
                done.completeExceptionally(new DeviceCopyException("device " + name + " is closed"));
            }
            return done;
        }

        private void loop() {
            while (true) {
                Job job;
                try {
                    job = queue.take();
                } catch (InterruptedException e) {
                    continue;   // only STOP ends the engine: a stray interrupt left every later copy waiting
                }
                if (job == STOP) {
                    drain();
                    return;
                }
                try {
                    copy(job.batch, job.from, job.to);
                    job.done.complete(null);
                } catch (Throwable t) {
                    job.done.completeExceptionally(t);
                }
            }
        }

        private void drain() {
            Job job;
            while ((job = queue.poll()) != null) {
                job.done.completeExceptionally(new DeviceCopyException("device " + name + " closed"));
            }
        }

        void stop() {
            // the jobs still queued fail now, as the close's: run after it, they would copy into the unmapped
            // pool should the wait below end first; the one running is waited for
            drain();
            queue.add(STOP);
            // through an interrupt of the closing thread (kept): the device's memory is unmapped next, under
            // a copy that may still run
            dev.hetmem.internal.Uninterruptibly.join(thread, 5000);
        }
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        copyThread.stop();
        if (compute != null) {
            compute.shutdownNow();
        }
        Libc.munmap(pool, capacity);
    }

    @Override
    public String toString() {
        return "EmulatedDevice[" + name + ", " + capacity + " bytes]";
    }
}
