package dev.hetmem;

import dev.hetmem.driver.PageGeometry;
import dev.hetmem.driver.DeviceContext;
import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.driver.DeviceKernel;
import dev.hetmem.fault.UserfaultfdSides;
import dev.hetmem.host.HostSide;
import dev.hetmem.host.HostSides;
import dev.hetmem.loader.FileLoader;
import dev.hetmem.io.LoadOptions;
import dev.hetmem.io.LoadResult;
import dev.hetmem.loader.LoadTarget;
import dev.hetmem.internal.DeviceNode;
import dev.hetmem.internal.DriverBoundary;
import dev.hetmem.internal.Lifecycle;
import dev.hetmem.internal.Pins;
import dev.hetmem.internal.RegionState;
import dev.hetmem.internal.ResidencyRegistry;
import dev.hetmem.migrate.MigrationEngine;
import dev.hetmem.observe.Counters;

import dev.hetmem.phys.BuddyAllocator;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

import static dev.hetmem.driver.PageGeometry.PAGE_SHIFT;
import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;

/**
 * One address space shared by the host (node 0) and the devices attached when it was built
 * (nodes 1, 2, ...): GMEM's {@code gm_as}. Regions allocated here can be used from Java through
 * host views and from device kernels, and the memory manager keeps each page where it is used.
 *
 * <p>Thread-safe. {@link #close()} closes the calling thread's host views (as {@code Arena.close()}
 * invalidates its segments), waits for other threads' views and running kernels (bounded by
 * {@code closeTimeout}, then it fails loudly), then frees every region, every device frame, and the
 * drivers. {@link Region#free()} refuses at once while other threads hold views of the region.
 *
 * <pre>{@code
 * try (UnifiedMemory mem = UnifiedMemory.builder()
 *         .device(EmulatedDevice.builder().capacity(64L << 20).build())
 *         .build()) {
 *     Region r = mem.allocate(16L << 20);
 *     mem.launch(1, kernel, 1024, KernelArg.readWrite(r));
 * }
 * }</pre>
 */
public final class UnifiedMemory implements AutoCloseable {
    /** Regions are limited to 2^46 bytes (64 TiB), well inside the 47-bit user address space. */
    public static final long MAX_REGION_BYTES = 1L << 46;
    /** The fault granularity of a memory whose builder sets none: 2 MiB, in bytes. */
    public static final long DEFAULT_GRANULARITY = 2L << 20;
    static final int MAX_NODES = 31;

    private static final System.Logger LOG = System.getLogger(UnifiedMemory.class.getName());

    private final List<NodeInfo> nodeInfos;
    private final DeviceNode[] devices;
    private final MigrationEngine engine;
    private final Counters counters;
    private final ResidencyRegistry residency;
    /** The launches bringing arguments in, which asynchronous prefetches to their node let finish first. */
    private final BringIns bringIns;
    final long defaultGranularity;
    /** The default of {@link Builder#hostRetainBudget(long)}: 256 MiB of host frames kept for release by the chunk. */
    public static final long DEFAULT_HOST_RETAIN_BUDGET = 256L << 20;
    /** The most copy threads a memory takes ({@link Builder#copyThreads}); the default is the processors, up to this. */
    static final int MAX_COPY_THREADS = 256;

    /** How host code reaches regions: host views, or userfaultfd with its fault service (chosen at build). */
    private final HostSides hostSides;
    private final Map<Integer, Region> regions = new ConcurrentHashMap<>();
    private final AtomicInteger nextRegionId = new AtomicInteger(1);
    private final Lifecycle lifecycle = new Lifecycle("memory");
    /** How long close() and free() wait for running operations before failing loudly. */
    private final long closeTimeoutNanos;
    // Lock L2 (teardown): docs/design.md, lock table, L2.
    /** Guards the teardown once every operation has drained: whoever gets it first tears down. */
    private final Object teardown = new Object();
    private boolean tornDown;

    private UnifiedMemory(Builder b) {
        int nodes = b.drivers.size() + 1;
        this.devices = new DeviceNode[nodes];
        List<NodeInfo> infos = new ArrayList<>();
        infos.add(NodeInfo.host());
        for (int i = 0; i < b.drivers.size(); i++) {
            DeviceDriver d = b.drivers.get(i);
            long bytes = d.memoryBytes();
            if (bytes < PAGE_BYTES || (bytes & (PAGE_BYTES - 1)) != 0) {
                throw new IllegalArgumentException("device " + d.name() + " registers " + bytes
                        + " bytes; must be a positive multiple of 4096");
            }
            // the engine calls the driver through its boundary: an undeclared checked exception comes back unchecked
            devices[i + 1] = new DeviceNode(i + 1, DriverBoundary.of(d), new BuddyAllocator(bytes >>> PAGE_SHIFT));
            infos.add(new NodeInfo(i + 1, d.kind(), d.name(), bytes));
        }
        this.nodeInfos = List.copyOf(infos);
        this.counters = new Counters(nodes);
        this.residency = new ResidencyRegistry(nodes);
        this.bringIns = new BringIns(nodes, b.bringInWaitNanos);
        this.defaultGranularity = b.granularity;
        this.closeTimeoutNanos = b.closeTimeout.toNanos();
        // a build that fails part-way gives back everything it took: devices attached so far,
        // the copy threads, the fault service (its thread and descriptors)
        List<DeviceContext> attached = new ArrayList<>();
        MigrationEngine madeEngine = null;
        try {
            for (int i = 1; i < nodes; i++) {
                DeviceContext c = new DeviceContext(i);
                devices[i].driver().attach(c);
                attached.add(c);
            }
            madeEngine = new MigrationEngine(devices, b.copyThreads, b.mode, b.copyPath, counters, residency);
            madeEngine.thrashControl(b.thrashControl, b.thrashHold.toNanos());
            this.engine = madeEngine;
            this.statistics = new Statistics(nodeInfos, devices, madeEngine);
            List<DeviceDriver> drivers = new ArrayList<>(nodes - 1);   // through their boundaries, as every other call
            for (int i = 1; i < nodes; i++) {
                drivers.add(devices[i].driver());
            }
            this.hostSides = b.hostFaults == HostFaultMode.USERFAULTFD ? UserfaultfdSides.open(drivers)
                    : HostSides.hostViews(b.releasePolicy, b.hostRetainBudget);
        } catch (RuntimeException | Error e) {
            if (madeEngine != null) {
                madeEngine.close();
            }
            for (DeviceContext c : attached) {
                devices[c.node()].driver().detach(c);
            }
            background.shutdown();
            throw e;
        }
    }

    /**
     * Starts configuring a memory.
     *
     * @return a builder with no devices and every setting at its default
     */
    public static Builder builder() {
        return new Builder();
    }

    /** Configures a memory; devices are attached in order and become nodes 1, 2, ... */
    public static final class Builder {
        private Builder() {
        }

        private final List<DeviceDriver> drivers = new ArrayList<>();
        private int copyThreads = Math.min(MAX_COPY_THREADS, Runtime.getRuntime().availableProcessors());
        private MigrationMode mode = MigrationMode.BATCHED;
        private CopyPath copyPath = CopyPath.THREADS;
        private HostReleasePolicy releasePolicy = HostReleasePolicy.FREE;
        private long hostRetainBudget = DEFAULT_HOST_RETAIN_BUDGET;
        private long granularity = DEFAULT_GRANULARITY;
        private boolean thrashControl = true;
        private HostFaultMode hostFaults = HostFaultMode.HOST_VIEWS;
        private java.time.Duration closeTimeout = java.time.Duration.ofSeconds(60);
        private long bringInWaitNanos = BringIns.MAX_WAIT_NANOS;

        /**
         * How long {@link UnifiedMemory#close()} and {@link Region#free()} wait for operations
         * still running (kernels, migrations, loads), and {@code close()} for host views other
         * threads hold, before they fail, naming the threads and unmapping nothing (default 60 s;
         * 1 ms to 1 hour).
         *
         * @param timeout the longest wait; not null
         * @return this builder
         * @throws IllegalArgumentException if {@code timeout} is under 1 ms or over 1 hour
         */
        public Builder closeTimeout(java.time.Duration timeout) {
            this.closeTimeout = Checks.millisToHour("close timeout", timeout);
            return this;
        }

        /**
         * How host code reaches regions (default {@link HostFaultMode#HOST_VIEWS}). With
         * {@link HostFaultMode#USERFAULTFD}, {@link #build()} throws
         * {@link UserfaultfdUnavailableException} saying why if the mode cannot run here.
         *
         * @param mode the host fault mode; not null
         * @return this builder
         */
        public Builder hostFaults(HostFaultMode mode) {
            this.hostFaults = Objects.requireNonNull(mode, "mode");
            return this;
        }

        /**
         * Whether blocks that bounce between nodes are held home, devices that can reach host memory
         * mapping them in place meanwhile (default on; off only to measure against).
         *
         * @param on true to hold thrashing blocks home, false to let them bounce
         * @return this builder
         */
        public Builder thrashControl(boolean on) {
            this.thrashControl = on;
            return this;
        }

        private java.time.Duration thrashHold = java.time.Duration.ofMillis(200);

        /**
         * How long a thrashing block stays home (default 200 ms; 1 ms to 1 hour).
         *
         * @param hold how long a thrashing block is held home; not null
         * @return this builder
         * @throws IllegalArgumentException if {@code hold} is under 1 ms or over 1 hour
         */
        public Builder thrashHold(java.time.Duration hold) {
            this.thrashHold = Checks.millisToHour("thrash hold", hold);
            return this;
        }

        /**
         * Attaches a device: the first becomes node 1, the next node 2, and so on (at most 30).
         * The memory attaches the driver when it is built, and closes it when the memory closes.
         *
         * @param driver the device's driver, not yet attached to a memory; not null
         * @return this builder
         * @throws IllegalArgumentException if {@code driver} was added already, or 30 devices are added already
         */
        public Builder device(DeviceDriver driver) {
            Objects.requireNonNull(driver, "driver");
            if (drivers.contains(driver)) {
                throw new IllegalArgumentException("device " + driver.name() + " attached twice");
            }
            if (drivers.size() + 1 >= MAX_NODES) {
                throw new IllegalArgumentException("at most " + (MAX_NODES - 1) + " devices per memory");
            }
            drivers.add(driver);
            return this;
        }

        /**
         * Threads of the CPU copy phase, the caller included (default: the available processors, at most 256; 1 = serial),
         * and how many batches of one {@link UnifiedMemory#prefetch(Region, long[], long, int)} list run at once.
         * Asynchronous prefetches ({@link UnifiedMemory#prefetchAsync}, {@link UnifiedMemory#prefetchPlainAsync},
         * a tiled launch's next tile) copy on their own thread alone: they run beside a kernel.
         *
         * @param threads the number of threads, 1 to 256
         * @return this builder
         * @throws IllegalArgumentException if {@code threads} is outside [1, 256]
         */
        public Builder copyThreads(int threads) {
            if (threads < 1 || threads > MAX_COPY_THREADS) {
                throw new IllegalArgumentException("copy threads " + threads + " outside [1, " + MAX_COPY_THREADS + "]");
            }
            this.copyThreads = threads;
            return this;
        }

        /**
         * How the migration engine runs its phases (default {@link MigrationMode#BATCHED}).
         *
         * @param mode the migration mode; not null
         * @return this builder
         */
        public Builder migrationMode(MigrationMode mode) {
            this.mode = Objects.requireNonNull(mode, "mode");
            return this;
        }

        /**
         * Who performs migrations' copies (default {@link CopyPath#THREADS}).
         *
         * @param path the copy path; not null
         * @return this builder
         */
        public Builder copyPath(CopyPath path) {
            this.copyPath = Objects.requireNonNull(path, "path");
            return this;
        }

        /**
         * What happens to host frames of pages that moved to a device (default FREE; see the enum).
         *
         * @param policy the release policy; not null
         * @return this builder
         */
        public Builder hostReleasePolicy(HostReleasePolicy policy) {
            this.releasePolicy = Objects.requireNonNull(policy, "policy");
            return this;
        }

        /**
         * How many bytes of host frames of pages that moved to a device stay mapped (their contents
         * dead) before they go back to the kernel, over all regions (default 256 MiB). Frames are
         * handed back by the 2 MiB chunk: a chunk all of whose pages left goes at once, in one call;
         * frames of partly vacated chunks wait until their total passes this budget ({@link #DEFAULT_HOST_RETAIN_BUDGET} unless set), then the oldest
         * chunks go in the background; {@link UnifiedMemory#trimHost()} and a region's free release
         * them at once. A page that comes back meanwhile is copied into its old frame (no fault, no
         * zeroing). 0 releases every frame as its page leaves. Host views only: in userfaultfd mode a
         * page that left must fault on its next touch, so its frame always goes at once.
         *
         * @param bytes the budget in bytes, 0 or more
         * @return this builder
         * @throws IllegalArgumentException if {@code bytes} is negative
         */
        public Builder hostRetainBudget(long bytes) {
            if (bytes < 0) {
                throw new IllegalArgumentException("hostRetainBudget " + bytes + " bytes is negative (0 releases frames at once)");
            }
            this.hostRetainBudget = bytes;
            return this;
        }

        /**
         * Default fault granularity of new regions (power of two, 4 KiB to 1 GiB; default 2 MiB).
         *
         * @param bytes the granule size in bytes
         * @return this builder
         * @throws IllegalArgumentException if {@code bytes} is not a power of two from 4096 to 2^30
         */
        public Builder granularity(long bytes) {
            this.granularity = Checks.granularity(bytes);
            return this;
        }

        /** The longest an asynchronous prefetch waits for launches' bring-ins ({@link BringIns}): a test's own limit. */
        Builder bringInWait(long nanos) {
            this.bringInWaitNanos = nanos;
            return this;
        }

        /**
         * Builds the memory and attaches its devices. A build that fails gives back everything it
         * took (attached devices are detached again).
         *
         * @return a new memory, open, with the configured devices attached
         * @throws IllegalArgumentException if a device registers memory that is not a positive multiple of 4 KiB
         * @throws UserfaultfdUnavailableException if {@link HostFaultMode#USERFAULTFD} was asked for and
         *         cannot run here
         */
        public UnifiedMemory build() {
            return new UnifiedMemory(this);
        }
    }

    // ---- accessors for the package ---------------------------------------------------------

    MigrationEngine engine() {
        return engine;
    }

    BringIns bringIns() {
        return bringIns;
    }

    Counters counters() {
        return counters;
    }

    /** How long a close or a free waits for operations and views ({@link Builder#closeTimeout}). */
    long closeTimeoutNanos() {
        return closeTimeoutNanos;
    }

    /** Whether a close has begun (it frees every region itself). */
    boolean isClosing() {
        return lifecycle.isClosed();
    }

    void checkOpen() {
        lifecycle.checkOpen();
    }

    // ---- nodes -----------------------------------------------------------------------------

    /**
     * Node 0 (host) and the devices.
     *
     * @return an unmodifiable list indexed by node id: the host at 0, then each device
     */
    public List<NodeInfo> nodes() {
        return nodeInfos;
    }

    /**
     * One node of this memory.
     *
     * @param id the node: 0 for the host, 1..n for devices
     * @return the node's description
     * @throws IllegalArgumentException if this memory has no node {@code id}
     */
    public NodeInfo node(int id) {
        checkNode(id);
        return nodeInfos.get(id);
    }

    void checkNode(int id) {
        if (id < 0 || id >= nodeInfos.size()) {
            throw new IllegalArgumentException("unknown node " + id + ": this memory has nodes 0.." + (nodeInfos.size() - 1));
        }
    }

    DeviceNode device(int id) {
        checkNode(id);
        if (id == 0) {
            throw new IllegalArgumentException("node 0 is the host, not a device");
        }
        return devices[id];
    }

    /**
     * The driver of a device node.
     *
     * @param node the device node, 1..n
     * @return the driver attached as that node
     * @throws IllegalArgumentException if {@code node} is the host or not a node of this memory
     */
    public DeviceDriver driver(int node) {
        DeviceDriver d = DriverBoundary.unwrap(device(node).driver());   // the driver as the builder was given it
        lifecycle.checkOpen();   // a closed driver's memory is gone
        return d;
    }

    /**
     * How migrations run now: the builder's setting, or the last {@link #migrationMode(MigrationMode)}.
     *
     * @return the mode later migrations run in
     */
    public MigrationMode migrationMode() {
        return engine.mode();
    }

    /**
     * Switches how later migrations run (for benchmarks comparing the modes on one memory).
     *
     * @param mode the mode for later migrations; not null
     */
    public void migrationMode(MigrationMode mode) {
        Objects.requireNonNull(mode, "mode");
        lifecycle.checkOpen();
        engine.mode(mode);
    }

    /**
     * Who performs migrations' copies now: the builder's setting, or the last
     * {@link #copyPath(CopyPath)}.
     *
     * @return the path later migrations copy with
     */
    public CopyPath copyPath() {
        return engine.copyPath();
    }

    /**
     * Switches who performs later migrations' copies (for benchmarks comparing the paths).
     *
     * @param path the copy path for later migrations; not null
     */
    public void copyPath(CopyPath path) {
        Objects.requireNonNull(path, "path");
        lifecycle.checkOpen();
        engine.copyPath(path);
    }

    /**
     * Threads of the CPU copy phase, the caller included.
     *
     * @return the builder's {@code copyThreads}, 1 to 256
     */
    public int copyThreads() {
        return engine.copyThreads();
    }

    // ---- regions ---------------------------------------------------------------------------

    /**
     * Allocates a region of {@code bytes} (up to 64 TiB) with the memory's default granularity.
     *
     * @param bytes the region's size in bytes, 1 to {@link #MAX_REGION_BYTES}
     * @return a new region, zero-filled and resident nowhere
     * @throws IllegalArgumentException if {@code bytes} is outside [1, {@link #MAX_REGION_BYTES}]
     * @throws IllegalStateException if the memory is closed
     */
    public Region allocate(long bytes) {
        return allocate(bytes, defaultGranularity);
    }

    /**
     * Allocates a region whose faults migrate {@code granularity}-sized granules.
     *
     * @param bytes       the region's size in bytes, 1 to {@link #MAX_REGION_BYTES}
     * @param granularity the granule size in bytes: a power of two from 4096 to 2^30
     * @return a new region, zero-filled and resident nowhere
     * @throws IllegalArgumentException if {@code bytes} or {@code granularity} is out of range
     * @throws IllegalStateException if the memory is closed
     */
    public Region allocate(long bytes, long granularity) {
        if (bytes <= 0 || bytes > MAX_REGION_BYTES) {
            throw new IllegalArgumentException("region size " + bytes + " must be in [1, " + MAX_REGION_BYTES + "] bytes");
        }
        return allocateRegion(bytes, granularity);
    }

    /** Any size from 0: the loader gives an empty file an empty region. */
    Region allocateRegion(long bytes, long granularity) {
        if (bytes < 0 || bytes > MAX_REGION_BYTES) {
            throw new IllegalArgumentException("region size " + bytes + " must be in [0, " + MAX_REGION_BYTES + "] bytes");
        }
        Checks.granularity(granularity);
        lifecycle.enter();
        try {
            // ids are never reused (block locks are ordered by them, Region.id promises it): the last
            // one given, the memory refuses more rather than wrap onto a live region's
            int id = nextRegionId.getAndUpdate(i -> i < Integer.MAX_VALUE ? i + 1 : i);
            if (id == Integer.MAX_VALUE) {
                throw new IllegalStateException("this memory has given out " + (Integer.MAX_VALUE - 1)
                        + " region ids, all it has (ids are never reused): a new UnifiedMemory allocates more");
            }
            HostSide host = hostSides.create(bytes, (int) (granularity >>> PageGeometry.PAGE_SHIFT));
            RegionState state = new RegionState(id, bytes, host, nodeInfos.size(),
                    Long.numberOfTrailingZeros(granularity), lifecycle);
            state.table().listener(residency.listenerFor(state));
            Region r = new Region(this, state);
            regions.put(id, r);
            return r;
        } finally {
            lifecycle.exit();
        }
    }

    void free(Region region) {
        checkMine(region);
        refuseInsideKernel("free()");
        lifecycle.within(() -> {
            freeRegion(region);
            return null;
        });
    }

    void freeRange(Region region, long offset, long length) {
        checkMine(region);
        Checks.range(offset, length, region.size(), region);
        if (offset == 0 && length == region.size()) {
            free(region);
        } else if (length > 0) {
            refuseInsideKernel("free(offset, length)");
            lifecycle.within(() -> {
                PartialFree.free(engine, region, offset, length, closeTimeoutNanos);
                return null;
            });
        }
    }

    /** Calls that wait for kernels would wait for themselves from a kernel's own thread. */
    private void refuseInsideKernel(String call) {
        for (int n = 1; n < devices.length; n++) {
            if (devices[n].driver().runsKernelOnCurrentThread()) {
                throw new IllegalStateException(call + " called from inside a kernel running on node " + n
                        + " would wait for that kernel, and so for itself; call it after the launch returns");
            }
        }
    }

    private void freeRegion(Region region) {
        RegionState s = region.state();
        // from inside an operation on the region (a load's progress callback on the loading thread):
        // refused before its views close, which would let pages the load still writes move away
        s.lifecycle().refuseCloseFromInside();
        if (s.isReleased()) {
            throw new IllegalStateException(region + " is already freed");
        }
        // one step: other threads' views refuse the free at once, changing nothing (their threads may be
        // waiting for this one: no wait here), or the region closes and the caller's own views close with
        // it, as Arena.close() invalidates its segments. Closed already by an earlier free that gave up
        // waiting for a running operation (or by another free waiting now): then waited for as well
        s.lifecycle().closeTakingOwnViews(closeTimeoutNanos);
        if (!s.markReleased()) {
            throw new IllegalStateException(region + " is already freed");
        }
        boolean dropped = false;
        try {
            // host accesses from here on read no device frame, so the frames can go
            s.host().kill();
            engine.dropRegion(s);
            dropped = true;
        } finally {
            regions.remove(s.id());
            if (dropped) {
                s.host().close();
            } else {
                // a driver failed while the device copies went (unmap and invalidate should not fail): the
                // blocks the drop did not reach still hold device pages, which eviction may copy home. So the
                // host memory stays mapped, a leak, rather than unmapped under such a copy or handed to the
                // next region mapped there
                LOG.log(System.Logger.Level.WARNING, "freeing " + region + " failed part-way; its host memory ("
                        + s.size() + " bytes) stays mapped until the process ends");
            }
        }
    }

    void checkMine(Region r) {
        Objects.requireNonNull(r, "region");
        if (r.memory() != this) {
            throw new IllegalArgumentException(r + " belongs to another memory");
        }
    }

    /**
     * Live regions.
     *
     * @return the regions not yet freed, in allocation order; a copy, not updated later
     */
    public List<Region> regions() {
        return regions.values().stream().sorted(Comparator.comparingInt(Region::id)).toList();
    }

    // ---- advice ----------------------------------------------------------------------------

    /**
     * Applies advice to exactly [offset, offset+length) of a region.
     *
     * @param region a region of this memory; not null
     * @param offset the range's first byte
     * @param length the range's size in bytes; positive
     * @param advice what to apply; not null
     * @throws IllegalArgumentException for a region of another memory, a bad length, or advice
     *         naming a node that is not in this memory
     * @throws IndexOutOfBoundsException if the range is outside the region
     */
    public void advise(Region region, long offset, long length, Advice advice) {
        checkMine(region);
        Objects.requireNonNull(advice, "advice");
        Checks.range(offset, length, region.size(), region);
        lifecycle.checkOpen();
        advising.apply(region, offset, length, advice);
    }

    /**
     * {@link Advice.Prefetch} without waiting: the migration runs on a thread of this memory and the
     * future completes with the pages moved, or with the exception that stopped it. Arguments are
     * checked now, so a bad one throws here rather than in the future. The CPU copies it makes run on
     * that thread alone, not spread over the copy threads ({@link Builder#copyThreads}) as those of a
     * migration its caller waits for are: it runs beside the caller's work, a kernel, whose cores
     * they would take. It starts once the launches that are bringing their arguments in to
     * {@code node} when its thread begins have them (what their kernels wait for comes first), or
     * after 250 ms of waiting for them.
     *
     * @param region a region of this memory; not null
     * @param offset the range's first byte
     * @param length the range's size in bytes; positive
     * @param node   the target node: 0 for the host, 1..n for a device
     * @return a future of the number of 4 KiB pages whose data moved
     * @throws IllegalArgumentException for a region of another memory, a bad length or an unknown node
     * @throws IndexOutOfBoundsException if the range is outside the region
     * @throws IllegalStateException if the memory or region is closed, or the range reaches freed bytes
     * @throws PinnedByCallerException if the calling thread holds pages of the range on another
     *         node: an open host view, for a prefetch to a device. The migration runs on another
     *         thread and would wait for that view, and a caller that waits for the future before
     *         closing it would wait forever (as {@link #launch} refuses its caller's views over its
     *         arguments). The rest of the range's granules moves where no pin keeps it, the
     *         caller's views included
     */
    public java.util.concurrent.CompletableFuture<Long> prefetchAsync(Region region, long offset, long length, int node) {
        return prefetchAsync(region, offset, length, node, false);
    }

    /**
     * {@link #prefetchAsync} of a range that a later launch on {@code node} takes as a plain argument
     * ({@link DeviceKernel#plainArgument}: an OpenCL kernel's {@code __global T *} parameter):
     * placed as that launch places it, in consecutive frames of the device in page order (a free
     * run, else one cleared by moving pages within the device, else one made by evicting cold
     * pages), and not widened to granules, so that a launch whose argument is exactly this range
     * finds it in place and moves nothing (the pages of {@link #prefetchAsync} land wherever frames
     * are free, and such a launch moves those out of place again). Pages in the way that cannot
     * leave yet, a running kernel's, are waited for, as any prefetch waits for room that pinned
     * pages hold; where no run can be had at all, the range is prefetched as {@link #prefetchAsync}
     * does. A read-mostly range is duplicated there, as a launch duplicates it. Its CPU copies run
     * on its own thread, beside the caller's work, and it lets running launches' bring-ins to the
     * device go first, as {@link #prefetchAsync} does.
     *
     * @param region a region of this memory; not null
     * @param offset the range's first byte
     * @param length the range's size in bytes; positive, at most what one pointer spans on the
     *               device ({@link dev.hetmem.driver.DeviceDriver#contiguousFrames})
     * @param node   the device, 1..n
     * @return a future of the number of 4 KiB pages whose data moved
     * @throws IllegalArgumentException for a region of another memory, a bad length, a range longer
     *         than one pointer spans on the device, or a node that is not a device of this memory
     * @throws IndexOutOfBoundsException if the range is outside the region
     * @throws IllegalStateException if the memory or region is closed, or the range reaches freed bytes
     * @throws PinnedByCallerException if the calling thread holds pages of the range on any node (an
     *         open host view, or its own running kernel's pages): the migration runs on another
     *         thread and would wait for them, and a caller that waits for the future, for ever
     */
    public java.util.concurrent.CompletableFuture<Long> prefetchPlainAsync(Region region, long offset, long length,
                                                                          int node) {
        return prefetchAsync(region, offset, length, node, true);
    }

    private java.util.concurrent.CompletableFuture<Long> prefetchAsync(Region region, long offset, long length, int node,
                                                                       boolean plain) {
        checkMine(region);
        Checks.range(offset, length, region.size(), region);
        if (plain && (node < 1 || node >= nodeInfos.size())) {
            throw new IllegalArgumentException("a plain prefetch goes to a device: node " + node + " is outside [1, "
                    + (nodeInfos.size() - 1) + "], the devices of this memory" + (node == 0 ? " (node 0 is the host)" : ""));
        }
        checkNode(node);
        long from = offset >>> PAGE_SHIFT;
        long to = Math.ceilDiv(offset + length, PAGE_BYTES);
        if (plain) {
            int stretch = device(node).driver().contiguousFrames();
            if (to - from > stretch) {
                throw new IllegalArgumentException("a plain prefetch of " + length + " bytes at offset " + offset
                        + " spans " + (to - from) + " pages; one pointer spans at most " + stretch + " pages ("
                        + (long) stretch * PAGE_BYTES + " bytes) on device node " + node);
            }
        }
        lifecycle.checkOpen();
        RegionState s = region.state();
        s.lifecycle().checkOpen();
        s.refuseFreed(from, to, "a prefetch");
        // from a faulting work item: its migration, on another thread, would wait for the item's own
        // translations (TranslationEpochs) while the item waits for it
        engine.refuseFromFaultingItem("an asynchronous prefetch");
        // the pages asked for: the rest of their granules moves only where no pin keeps it, the
        // caller's own views included, so only a view of the range itself would keep the migration waiting;
        // a plain prefetch also moves pages on the device that are out of place, and would wait for ever
        // for the caller's own kernel there
        Pins.Pin own = plain ? s.pins().heldByCurrentThread(from, to) : s.pins().heldByCurrentThreadOffNode(from, to, node);
        if (own != null) {
            throw new PinnedByCallerException(s, own.node(), own.from(), own.to());
        }
        try {
            // it runs beside the caller's work (a kernel): its copies on its own thread, not spread over the pool,
            // once the launches bringing their arguments in to the node now have them (BringIns: demand first)
            return java.util.concurrent.CompletableFuture.supplyAsync(() -> {
                bringIns.awaitRunning(node);
                return MigrationEngine.besideOtherWork(() -> plain
                        ? advising.prefetchPlainPages(s, from, to, node)
                        : advising.prefetchPages(s, from, to, node));
            }, background);
        } catch (java.util.concurrent.RejectedExecutionException e) {
            // close() ran between the check above and here, and stopped the executor
            lifecycle.checkOpen();
            throw new IllegalStateException("the memory is closing", e);
        }
    }

    /**
     * Threads for asynchronous work (prefetches, a long prefetch list's batches, tiled launches'
     * next tiles), ended with the memory: platform threads, kept while used (a tile's prefetch is one
     * task, so a new thread each time would cost a thread's start every tile), daemons (a memory not
     * closed does not keep the JVM alive), inheriting no inheritable thread-local of the caller whose
     * task first started them (later tasks of other callers would see it). As many as tasks run at
     * once, as before: a cap would queue a tile's prefetch behind prefetches that wait for that
     * launch's pins. Not virtual threads: a copy waits in native code (an OpenCL event, a memcpy),
     * and a virtual thread in a native call holds its carrier, one of the JVM's, shared with every
     * virtual thread of the program: as many prefetches copying as there were carriers stopped all
     * of the program's virtual threads for as long as a copy took.
     */
    java.util.concurrent.ExecutorService background() {
        return background;
    }

    private final java.util.concurrent.ExecutorService background = java.util.concurrent.Executors.newCachedThreadPool(
            Thread.ofPlatform().name("hetmem-async-", 0).daemon(true).inheritInheritableThreadLocals(false).factory());

    /**
     * Prefetches many ranges of one region to {@code node} in migration batches (batched page migration's
     * "migrate a list of pages"): [offset, offset+length) for every offset, each widened to its
     * granules. Batches of up to 1 GiB (on a device, up to half of it); each is all-or-nothing. With
     * more than one copy thread ({@link Builder#copyThreads}) a long list runs as several batches at
     * once, one per copy thread, each planned, copied and committed by its own thread; if one fails,
     * no further batch starts, those already running finish, and the first failure is thrown. A caller
     * that holds a host view of the region runs its batches on its own thread. Returns the pages whose data moved.
     * Offsets before the length, as everywhere else (the node last, as in {@link #prefetchAsync}).
     *
     * @param region  a region of this memory; not null
     * @param offsets the ranges' first bytes; not null, and may be empty
     * @param length  every range's size in bytes; positive when {@code offsets} is not empty
     * @param node    the target node: 0 for the host, 1..n for a device
     * @return the number of 4 KiB pages whose data moved; 0 when nothing had to move
     * @throws IllegalArgumentException for a region of another memory, a bad length or an unknown node
     * @throws IndexOutOfBoundsException if a range is outside the region
     * @throws IllegalStateException if the memory or region is closed, or a range reaches freed bytes
     * @throws PinnedByCallerException if a range holds pages the calling thread pins on another node
     *         (an open host view): their migration would wait for that view for ever
     */
    public long prefetch(Region region, long[] offsets, long length, int node) {
        checkMine(region);
        checkNode(node);
        Objects.requireNonNull(offsets, "offsets");
        if (length < 0 || length > region.size()) {
            throw new IllegalArgumentException("prefetch length " + length + " outside [0, " + region.size()
                    + "] (the size of " + region + ")");
        }
        lifecycle.checkOpen();
        region.state().lifecycle().checkOpen();
        return advising.prefetchEach(region, offsets, length, node);
    }

    // ---- loading files ---------------------------------------------------------------------

    /**
     * Loads a file into a new region on {@code node} (direct-I/O loading, as dma-buf's): on the host with parallel O_DIRECT
     * reads straight into the region's pages, overlapped with populating them; on a device through a
     * bounded ring of bounce buffers handed to the device's copy path, so host memory stays within
     * the ring. Falls back to buffered reads where O_DIRECT is refused, and says so in the result.
     * On any failure nothing is left allocated: the region is listed by {@link #regions()} while it
     * loads, and host views other threads opened of it are waited for (up to the close timeout)
     * before it is freed. An interrupt of the loading thread fails the load with
     * {@link java.io.InterruptedIOException}, the interrupt kept set.
     *
     * @param path    the file to load; not null
     * @param node    where the region's pages go: 0 for the host, 1..n for a device
     * @param options the read scheme, threads and buffer sizes; not null
     * @return the new region, with what the load took and how it read
     * @throws IOException if the file cannot be opened or read ({@link java.io.InterruptedIOException}
     *         if the loading thread was interrupted)
     * @throws IllegalArgumentException if {@code node} is not a node of this memory
     * @throws IllegalStateException if the memory is closed
     */
    public LoadResult load(Path path, int node, LoadOptions options) throws IOException {
        Objects.requireNonNull(path, "path");
        Objects.requireNonNull(options, "options");
        checkNode(node);
        lifecycle.enter();
        try {
            return FileLoader.load(loaderBridge, path, node, options);
        } finally {
            lifecycle.exit();
        }
    }

    /**
     * Loads a file into a new region on {@code node} with {@link LoadOptions#defaults()}; see
     * {@link #load(Path, int, LoadOptions)}.
     *
     * @param path the file to load; not null
     * @param node where the region's pages go: 0 for the host, 1..n for a device
     * @return the new region, with what the load took and how it read
     * @throws IOException if the file cannot be opened or read
     */
    public LoadResult load(Path path, int node) throws IOException {
        return load(path, node, LoadOptions.defaults());
    }

    private final KernelLaunch kernelLaunch = new KernelLaunch(this);
    private final Advising advising = new Advising(this);
    private final Statistics statistics;

    /** The loader's narrow view of this memory. */
    private final LoadTarget loaderBridge = new LoaderBridge(this);

    // ---- kernels ---------------------------------------------------------------------------

    /**
     * Runs a kernel on a device over {@code globalSize} work items (what an item means is the
     * kernel's business) with {@code args} as its region arguments; returns when it has finished.
     *
     * <ul>
     *   <li>Arguments that fit the device: every argument's range is made resident there with the
     *       access it declares (GMEM's device fault, granule by granule, evicting colder pages) and
     *       pinned for the run, then the kernel runs. A plain argument that finds no run of
     *       consecutive frames as long as itself (the free frames lie on both sides of the launch's
     *       other arguments) makes the launch run tile by tile, as below, if it declares a per-item
     *       window and the launch cuts into more than one tile; otherwise the launch fails, naming
     *       the window to declare where none is.</li>
     *   <li>Arguments larger than the device, some declaring per-item windows
     *       ({@link KernelArg#perItem}): on every kind of device the launch runs tile by tile, each
     *       tile's windows (and the arguments without a window) resident and pinned while it runs,
     *       the next tile's windows prefetched meanwhile. The result is that of one launch.</li>
     *   <li>Arguments larger than the device with no window: on a device that takes device faults
     *       (the emulated device) the kernel starts at once and each page it touches is faulted in
     *       while it runs, evicting others, this launch's too (HMM's device fault). On a device that
     *       cannot (OpenCL) the launch fails at once with a {@link dev.hetmem.driver.DeviceMemoryException}
     *       that names the sizes and the per-item declaration.</li>
     * </ul>
     *
     * <p><b>Plain arguments.</b> An argument the kernel reaches by a plain pointer
     * ({@link DeviceKernel#plainArgument}: an OpenCL {@code __global T *} parameter, an emulated
     * kernel's {@code KernelArgs.plain}) is placed in consecutive device frames, in page order,
     * before the kernel runs (pages out of place leave the device first); the kernel needs nothing
     * of hetmem. Such an argument cannot be faulted in: larger than the device (or than one pointer
     * of it spans), it must declare a window, or the launch fails at once naming the declaration.
     * A tiled launch of a kernel with plain arguments runs each tile as a launch of its own, as a
     * hand-tiled program does: item ids restart at 0, windowed arguments start at their tile's
     * window, and tiles hold whole work-groups ({@link DeviceKernel#itemMultiple}); a translated
     * kernel's tiles keep global ids. Read arguments of a tiled launch are duplicated rather than
     * moved, so that their eviction only drops the device's copy.
     *
     * @param node       the device to run on, 1..n
     * @param kernel     a kernel of that device's kind (such as an {@code EmulatedKernel}); not null
     * @param globalSize the number of work items, at least 1
     * @param args       the kernel's region arguments, in the order the kernel sees them
     * @return what the launch cost the memory manager
     * @throws ProtectionException if a written argument covers a read-only page
     * @throws IllegalArgumentException for a node that is not a device of this memory, a region of
     *         another memory, an argument length below 1, or a global size below 1
     * @throws IndexOutOfBoundsException if an argument's range is outside its region
     * @throws dev.hetmem.driver.DeviceMemoryException if the arguments do not fit the device and
     *         can be neither tiled nor faulted in, or fit but a plain argument finds no run of frames
     *         and the launch cannot be tiled, as described above. A tiled launch that fails part-way
     *         leaves what its earlier tiles wrote.
     * @throws PinnedByCallerException if the launch runs tile by tile or by faults (above) and the
     *         calling thread holds some of its arguments' pages in an open host view
     * @throws IllegalStateException if the memory is closed or an argument reaches freed bytes
     */
    public LaunchResult launch(int node, DeviceKernel kernel, long globalSize, KernelArg... args) {
        // an operation of the memory for its whole run, whatever its arguments: close() waits for it
        // (a launch with no region argument entered no region, and close shut its device under it)
        return lifecycle.within(() -> kernelLaunch.launch(device(node), node, kernel, globalSize, args));
    }

    /**
     * Drops every frame of a device (dmirror's RELEASE): the pages it holds alone go home to the
     * host, waiting for kernels running on it; its read-only copies of pages another node holds too
     * are dropped, leaving the other nodes' copies (a copy that one of its own running kernels pins
     * stays).
     *
     * @param node the device node, 1..n
     * @return the number of 4 KiB pages whose data moved home
     * @throws IllegalArgumentException if {@code node} is the host or not a node of this memory
     * @throws IllegalStateException if the memory is closed
     */
    public long release(int node) {
        device(node);
        return lifecycle.within(() -> releaseNow(node));
    }

    private long releaseNow(int node) {
        long moved = 0;
        Map<RegionState, List<Long>> onDevice = engine.residentBlocks(node);
        for (Region r : regions()) {
            RegionState s = r.state();
            List<Long> blocks = onDevice.get(s);
            if (blocks == null) {
                continue;   // nothing of it on the device
            }
            try {
                s.lifecycle().enter();
            } catch (IllegalStateException freed) {
                continue;
            }
            try {
                moved += engine.release(s, node, blocks);
            } finally {
                s.lifecycle().exit();
            }
        }
        return moved;
    }

    // ---- observability ---------------------------------------------------------------------

    /**
     * Counters of the whole memory: resident bytes per node over every live region, free device
     * memory, metadata, and faults, migrations, evictions and thrashing since the memory was built.
     *
     * @return a snapshot of the memory's counters
     * @throws IllegalStateException if the memory is closed
     */
    public Stats stats() {
        return lifecycle.within(this::statsNow);
    }

    private Stats statsNow() {
        return statistics.memory(regions(), counters, hostSides.counters(), hostSides.retainedBytes());
    }

    Stats regionStats(RegionState s) {
        return statistics.region(s);
    }

    /**
     * Checks every region's page table (single-writer invariant, resident counts) and that each
     * device's page table mirrors it (an entry exactly where a page is resident on the device,
     * writable exactly where the device is the writer and the range is not read-only). Returns the
     * problems found; empty when all holds. Meant for tests and diagnostics on a quiet memory.
     *
     * @return one line per problem; an empty list when every check passes
     */
    public List<String> verify() {
        return lifecycle.within(this::verifyNow);
    }

    private List<String> verifyNow() {
        return new Verifier(devices, engine).verify(regions());
    }

    /**
     * Hands every host frame kept for release back to the kernel now, on the calling thread (see
     * {@link Builder#hostRetainBudget(long)}): for a process told to shrink its resident set. Waits
     * for releases already in progress; returns the bytes that were kept before the call.
     *
     * @return bytes of host frames that were kept when the call began
     * @throws IllegalStateException if the memory is closed
     */
    public long trimHost() {
        return lifecycle.within(() -> {
            long before = hostSides.retainedBytes();
            hostSides.trim();
            return before;
        });
    }

    /**
     * The native fault service's counters, or null when host faults go through host views.
     *
     * @return a snapshot of the service's counters, or null in {@link HostFaultMode#HOST_VIEWS} mode
     */
    public FaultServiceCounters faultServiceCounters() {
        lifecycle.checkOpen();   // a closed service reads all zeros, which would pass for a quiet one
        return hostSides.counters();
    }

    /**
     * How host code reaches this memory's regions.
     *
     * @return the mode the builder chose
     */
    public HostFaultMode hostFaults() {
        return hostSides.mode();
    }

    // ---- close -----------------------------------------------------------------------------

    /**
     * Closes the memory: new operations (and new host views) are refused at once; operations
     * already running (kernels, migrations, loads, frees) and host views open in other threads are
     * waited for, at most the builder's {@code closeTimeout} in all; then every region is freed,
     * and the copy threads, the fault service and the drivers are closed. Nothing is unmapped
     * while anything still runs or a view is open. Throws at once, changing nothing, if called
     * from inside a kernel or from inside another operation on this memory (a load's progress
     * callback). Views the calling thread holds are closed first, before the wait (an operation
     * may be waiting for one of them), as {@code Arena.close()} invalidates its segments; views of
     * threads that ended are taken back. Throws, having unmapped nothing, if the time runs out
     * (naming the threads); the calling thread's views are closed by then, and a later call tries
     * again. Once the wait is over, teardown runs to its end whatever one step throws (a region
     * whose free fails stays mapped, with a warning, and the rest is closed all the same), then
     * throws the first failure. Closing a closed memory does nothing.
     */
    @Override
    public void close() {
        refuseInsideKernel("close()");
        lifecycle.refuseCloseFromInside();
        long deadline = System.nanoTime() + closeTimeoutNanos;
        // the caller's own views first, as Arena.close() does, and before waiting for operations: one
        // may be waiting for such a view (a prefetch of the pages it pins), and would hold the wait
        // below until the timeout, every time close() were tried again
        for (Region r : regions()) {
            if (!r.state().isReleased()) {
                r.state().lifecycle().closeViewsOfCurrentThread();
            }
        }
        if (!lifecycle.close(closeTimeoutNanos) && !lifecycle.isDrained()) {
            lifecycle.awaitDrained(closeTimeoutNanos);   // an earlier close gave up waiting
        }
        // no new view can open now (every region operation enters this closed lifecycle first):
        // wait, within the same bound, for the open ones, before anything is unmapped
        for (Region r : regions()) {
            if (!r.state().isReleased()) {
                r.state().lifecycle().awaitNoLiveViews(Math.max(0, deadline - System.nanoTime()));
            }
        }
        // all of it under the teardown lock: a second thread closing at the same time returns only once
        // the first has closed the engine and the drivers too, not while it still closes them
        synchronized (teardown) {
            if (tornDown) {
                return;
            }
            // every step whatever an earlier one threw: a region whose free failed (a driver's unmap, a
            // native call still holding its view) must not leave the other regions, the threads, the
            // fault service and the devices open, with no later close() to finish (try-with-resources
            // makes one call). The first failure is thrown at the end, the others suppressed in it
            Throwable failed = null;
            for (Region r : regions()) {
                if (!r.state().isReleased()) {
                    try {
                        freeRegion(r);
                    } catch (RuntimeException | Error e) {
                        failed = firstOf(failed, e);
                    }
                }
            }
            background.shutdown();
            try {
                engine.close();
            } catch (RuntimeException | Error e) {
                failed = firstOf(failed, e);
            }
            try {
                hostSides.close();
            } catch (RuntimeException | Error e) {
                failed = firstOf(failed, e);
            }
            for (int n = 1; n < devices.length; n++) {
                try {
                    devices[n].driver().close();
                } catch (RuntimeException e) {
                    LOG.log(System.Logger.Level.WARNING, "closing device " + devices[n].driver().name() + " failed", e);
                } catch (Error e) {
                    failed = firstOf(failed, e);
                }
            }
            tornDown = true;
            if (failed instanceof Error e) {
                throw e;
            }
            if (failed != null) {
                throw (RuntimeException) failed;
            }
        }
    }

    /** The first of two failures, the second suppressed in it. */
    private static Throwable firstOf(Throwable first, Throwable next) {
        if (first == null) {
            return next;
        }
        if (first != next) {
            first.addSuppressed(next);
        }
        return first;
    }
}
