package dev.hetmem;

import dev.hetmem.driver.DeviceContext;
import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.driver.DeviceKernel;
import dev.hetmem.driver.KernelBinding;
import dev.hetmem.fault.FaultService;
import dev.hetmem.fault.HostMirror;
import dev.hetmem.host.HostMapping;
import dev.hetmem.host.HostReleasePolicy;
import dev.hetmem.host.Libc;
import dev.hetmem.io.FileLoader;
import dev.hetmem.io.HostPopulator;
import dev.hetmem.io.LoadOptions;
import dev.hetmem.io.LoadResult;
import dev.hetmem.io.LoadTarget;
import dev.hetmem.internal.DeviceNode;
import dev.hetmem.internal.Lifecycle;
import dev.hetmem.internal.Pins;
import dev.hetmem.internal.RangeAttributes;
import dev.hetmem.internal.RegionState;
import dev.hetmem.internal.ResidencyRegistry;
import dev.hetmem.migrate.MigrationEngine;
import dev.hetmem.migrate.MigrationRequest;
import dev.hetmem.observe.Counters;
import dev.hetmem.observe.FaultEvent;
import dev.hetmem.pagetable.Block;
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

/**
 * One address space shared by the host (node 0) and the devices attached when it was built
 * (nodes 1, 2, ...): GMEM's {@code gm_as}. Regions allocated here can be used from Java through
 * host views and from device kernels, and the memory manager keeps each page where it is used.
 *
 * <p>Thread-safe. {@link #close()} frees every region (waiting for running kernels), then every
 * device frame, then the drivers.
 */
public final class UnifiedMemory implements AutoCloseable {
    /** Regions are limited to 2^46 bytes (64 TiB), well inside the 47-bit user address space. */
    public static final long MAX_REGION_BYTES = 1L << 46;
    public static final long DEFAULT_GRANULARITY = 2L << 20;
    static final int MAX_NODES = 31;

    private static final System.Logger LOG = System.getLogger(UnifiedMemory.class.getName());

    private final List<NodeInfo> nodeInfos;
    private final DeviceNode[] devices;
    private final MigrationEngine engine;
    private final Counters counters;
    private final ResidencyRegistry residency;
    private final HostReleasePolicy releasePolicy;
    private final long defaultGranularity;
    /** The userfaultfd fault service; null when host code uses host views. */
    private final FaultService faultService;
    private final Map<Integer, Region> regions = new ConcurrentHashMap<>();
    private final AtomicInteger nextRegionId = new AtomicInteger(1);
    private final Lifecycle lifecycle = new Lifecycle("memory");
    /** How long close() and free() wait for running operations before failing loudly. */
    private final long closeTimeoutNanos;
    /** Guards the teardown once every operation has drained: whoever gets it first tears down. */
    private final Object teardown = new Object();
    private boolean tornDown;

    private UnifiedMemory(Builder b) {
        int nodes = b.drivers.size() + 1;
        this.devices = new DeviceNode[nodes];
        List<NodeInfo> infos = new ArrayList<>();
        infos.add(new NodeInfo(0, "host", "host", physicalMemory()));
        for (int i = 0; i < b.drivers.size(); i++) {
            DeviceDriver d = b.drivers.get(i);
            long bytes = d.memoryBytes();
            if (bytes < 4096 || (bytes & 4095) != 0) {
                throw new IllegalArgumentException("device " + d.name() + " registers " + bytes
                        + " bytes; must be a positive multiple of 4096");
            }
            devices[i + 1] = new DeviceNode(i + 1, d, new BuddyAllocator(bytes >>> 12));
            infos.add(new NodeInfo(i + 1, d.kind(), d.name(), bytes));
        }
        this.nodeInfos = List.copyOf(infos);
        this.counters = new Counters(nodes);
        this.residency = new ResidencyRegistry(nodes);
        this.releasePolicy = b.releasePolicy;
        this.defaultGranularity = b.granularity;
        this.closeTimeoutNanos = b.closeTimeout.toNanos();
        // a build that fails part-way gives back everything it took: devices attached so far,
        // the copy threads, the fault service (its thread and descriptors)
        List<DeviceContext> attached = new ArrayList<>();
        MigrationEngine madeEngine = null;
        try {
            for (int i = 1; i < nodes; i++) {
                DeviceContext c = new DeviceContext(i, this);
                devices[i].driver().attach(c);
                attached.add(c);
            }
            madeEngine = new MigrationEngine(devices, b.copyThreads, b.mode, b.copyPath, counters, residency);
            madeEngine.thrashControl(b.thrashControl, b.thrashHold.toNanos());
            this.engine = madeEngine;
            this.faultService = b.hostFaults == HostFaultMode.USERFAULTFD ? openFaultService(b.drivers) : null;
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

    /** The userfaultfd service, after checking every device's frames can be read by its C code. */
    private static FaultService openFaultService(List<DeviceDriver> drivers) {
        for (DeviceDriver d : drivers) {
            if (d.hostAddress(0) == 0) {
                throw new UserfaultfdUnavailableException("userfaultfd host faults need every device's memory to be "
                        + "readable by the host in place (the fault service copies pages home without Java); device "
                        + d.name() + " (" + d.kind() + ") is not: use HostFaultMode.HOST_VIEWS with it");
            }
        }
        return FaultService.open();
    }

    private static long physicalMemory() {
        try {
            for (String line : java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/meminfo"))) {
                if (line.startsWith("MemTotal:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
                }
            }
        } catch (Exception e) {
            LOG.log(System.Logger.Level.DEBUG, "no /proc/meminfo", e);
        }
        return -1;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Configures a memory; devices are attached in order and become nodes 1, 2, ... */
    public static final class Builder {
        private final List<DeviceDriver> drivers = new ArrayList<>();
        private int copyThreads = Runtime.getRuntime().availableProcessors();
        private MigrationMode mode = MigrationMode.BATCHED;
        private CopyPath copyPath = CopyPath.THREADS;
        private HostReleasePolicy releasePolicy = HostReleasePolicy.FREE;
        private long granularity = DEFAULT_GRANULARITY;
        private boolean thrashControl = true;
        private HostFaultMode hostFaults = HostFaultMode.HOST_VIEWS;
        private java.time.Duration closeTimeout = java.time.Duration.ofSeconds(60);

        /**
         * How long {@link UnifiedMemory#close()} and {@link Region#free()} wait for operations
         * still running (kernels, migrations, loads) before they fail, naming the threads still
         * inside and unmapping nothing (default 60 s; 1 ms to 1 hour).
         */
        public Builder closeTimeout(java.time.Duration timeout) {
            this.closeTimeout = Checks.millisToHour("close timeout", timeout);
            return this;
        }

        /**
         * How host code reaches regions (default {@link HostFaultMode#HOST_VIEWS}). With
         * {@link HostFaultMode#USERFAULTFD}, {@link #build()} throws
         * {@link UserfaultfdUnavailableException} saying why if the mode cannot run here.
         */
        public Builder hostFaults(HostFaultMode mode) {
            this.hostFaults = Objects.requireNonNull(mode, "mode");
            return this;
        }

        /**
         * Whether blocks that bounce between nodes are held home, devices that can reach host memory
         * mapping them in place meanwhile (default on; off only to measure against).
         */
        public Builder thrashControl(boolean on) {
            this.thrashControl = on;
            return this;
        }

        private java.time.Duration thrashHold = java.time.Duration.ofMillis(200);

        /** How long a thrashing block stays home (default 200 ms; 1 ms to 1 hour). */
        public Builder thrashHold(java.time.Duration hold) {
            this.thrashHold = Checks.millisToHour("thrash hold", hold);
            return this;
        }

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

        /** Threads of the CPU copy phase, the caller included (default: available processors; 1 = serial). */
        public Builder copyThreads(int threads) {
            if (threads < 1 || threads > 256) {
                throw new IllegalArgumentException("copy threads " + threads + " outside [1, 256]");
            }
            this.copyThreads = threads;
            return this;
        }

        public Builder migrationMode(MigrationMode mode) {
            this.mode = Objects.requireNonNull(mode, "mode");
            return this;
        }

        public Builder copyPath(CopyPath path) {
            this.copyPath = Objects.requireNonNull(path, "path");
            return this;
        }

        /** What happens to host frames of pages that moved to a device (default FREE; see the enum). */
        public Builder hostReleasePolicy(HostReleasePolicy policy) {
            this.releasePolicy = Objects.requireNonNull(policy, "policy");
            return this;
        }

        /** Default fault granularity of new regions (power of two, 4 KiB to 1 GiB; default 2 MiB). */
        public Builder granularity(long bytes) {
            this.granularity = Checks.granularity(bytes);
            return this;
        }

        public UnifiedMemory build() {
            return new UnifiedMemory(this);
        }
    }

    // ---- accessors for the package ---------------------------------------------------------

    MigrationEngine engine() {
        return engine;
    }

    Counters counters() {
        return counters;
    }

    void checkOpen() {
        lifecycle.checkOpen();
    }

    // ---- nodes -----------------------------------------------------------------------------

    /** Node 0 (host) and the devices. */
    public List<NodeInfo> nodes() {
        return nodeInfos;
    }

    public NodeInfo node(int id) {
        checkNode(id);
        return nodeInfos.get(id);
    }

    private void checkNode(int id) {
        if (id < 0 || id >= nodeInfos.size()) {
            throw new IllegalArgumentException("unknown node " + id + ": this memory has nodes 0.." + (nodeInfos.size() - 1));
        }
    }

    private DeviceNode device(int id) {
        checkNode(id);
        if (id == 0) {
            throw new IllegalArgumentException("node 0 is the host, not a device");
        }
        return devices[id];
    }

    /** The driver of a device node. */
    public DeviceDriver driver(int node) {
        return device(node).driver();
    }

    public MigrationMode migrationMode() {
        return engine.mode();
    }

    /** Switches how later migrations run (for benchmarks comparing the modes on one memory). */
    public void migrationMode(MigrationMode mode) {
        engine.mode(Objects.requireNonNull(mode, "mode"));
    }

    public CopyPath copyPath() {
        return engine.copyPath();
    }

    public void copyPath(CopyPath path) {
        engine.copyPath(Objects.requireNonNull(path, "path"));
    }

    public int copyThreads() {
        return engine.copyThreads();
    }

    // ---- regions ---------------------------------------------------------------------------

    /** Allocates a region of {@code bytes} (up to 64 TiB) with the memory's default granularity. */
    public Region allocate(long bytes) {
        return allocate(bytes, defaultGranularity);
    }

    /** Allocates a region whose faults migrate {@code granularity}-sized granules. */
    public Region allocate(long bytes, long granularity) {
        if (bytes <= 0 || bytes > MAX_REGION_BYTES) {
            throw new IllegalArgumentException("region size " + bytes + " must be in [1, " + MAX_REGION_BYTES + "] bytes");
        }
        return allocateRegion(bytes, granularity);
    }

    /** Any size from 0: the loader gives an empty file an empty region. */
    private Region allocateRegion(long bytes, long granularity) {
        if (bytes < 0 || bytes > MAX_REGION_BYTES) {
            throw new IllegalArgumentException("region size " + bytes + " must be in [0, " + MAX_REGION_BYTES + "] bytes");
        }
        Checks.granularity(granularity);
        lifecycle.enter();
        try {
            HostMirror mirror = null;
            HostMapping host;
            if (faultService != null) {
                mirror = faultService.createRegion(bytes, (int) (granularity >>> Block.PAGE_SHIFT),
                        Math.ceilDiv(bytes, Block.PAGE_BYTES));
                host = HostMapping.adopt(mirror.viewAddress(), bytes);
            } else {
                host = HostMapping.reserve(bytes, releasePolicy);
            }
            int id = nextRegionId.getAndIncrement();
            RegionState state = new RegionState(id, bytes, host, nodeInfos.size(),
                    Long.numberOfTrailingZeros(granularity), mirror, lifecycle);
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
        if (!s.lifecycle().close(closeTimeoutNanos)) {
            if (s.isReleased()) {
                throw new IllegalStateException(region + " is already freed");
            }
            // an earlier free gave up waiting for a running operation (or another is waiting now)
            s.lifecycle().awaitDrained(closeTimeoutNanos);
        }
        if (!s.markReleased()) {
            throw new IllegalStateException(region + " is already freed");
        }
        try {
            if (s.mirror() != null) {
                // faults from here on read no device frame, so the frames can go
                s.mirror().kill();
            }
            engine.dropRegion(s);
        } finally {
            regions.remove(s.id());
            s.host().close();
            if (s.mirror() != null) {
                s.mirror().close();
            }
        }
    }

    private void checkMine(Region r) {
        Objects.requireNonNull(r, "region");
        if (r.memory() != this) {
            throw new IllegalArgumentException(r + " belongs to another memory");
        }
    }

    /** Live regions. */
    public List<Region> regions() {
        return regions.values().stream().sorted(Comparator.comparingInt(Region::id)).toList();
    }

    // ---- advice ----------------------------------------------------------------------------

    /** Applies advice to exactly [offset, offset+length) of a region. */
    public void advise(Region region, long offset, long length, Advice advice) {
        checkMine(region);
        Objects.requireNonNull(advice, "advice");
        Checks.range(offset, length, region.size(), region);
        lifecycle.checkOpen();
        RegionState s = region.state();
        long from = offset >>> Block.PAGE_SHIFT;
        long to = Math.ceilDiv(offset + length, Block.PAGE_BYTES);
        s.lifecycle().enter();
        try {
            switch (advice) {
                case Advice.Prefetch(int node) -> {
                    checkNode(node);
                    engine.migrateRange(s, s.granuleStart(from), s.granuleEnd(to), node, Trigger.PREFETCH, -1);
                }
                case Advice.DontNeed() -> {
                    // whole pages only: a partial page's other bytes are someone else's data
                    long first = Math.ceilDiv(offset, Block.PAGE_BYTES);
                    long end = offset + length == region.size() ? to : (offset + length) >>> Block.PAGE_SHIFT;
                    if (first < end) {
                        engine.discard(s, first, end);
                    }
                }
                case Advice.Granularity(long bytes) -> {
                    int shift = Long.numberOfTrailingZeros(Checks.granularity(bytes));
                    s.attributes().update(from, to, a -> a.withGranuleShift(shift));
                }
                case Advice.PreferredLocation(int node) -> {
                    if (node != -1) {
                        checkNode(node);
                    }
                    s.attributes().update(from, to, a -> a.withPreferred(node));
                }
                case Advice.AccessedBy(int node, boolean enabled) -> {
                    device(node);
                    s.attributes().update(from, to, a -> a.withAccessedBy(node, enabled));
                }
                case Advice.ReadMostly(boolean enabled) -> {
                    s.attributes().update(from, to, a -> a.withReadMostly(enabled));
                    if (!enabled) {
                        // no more duplicates: each page's copies collapse to one holder on its next write
                        break;
                    }
                }
            }
        } finally {
            s.lifecycle().exit();
        }
    }

    /**
     * {@link Advice.Prefetch} without waiting: the migration runs on a thread of this memory and the
     * future completes with the pages moved, or with the exception that stopped it. Arguments are
     * checked now, so a bad one throws here rather than in the future.
     */
    public java.util.concurrent.CompletableFuture<Long> prefetchAsync(Region region, long offset, long length, int node) {
        checkMine(region);
        Checks.range(offset, length, region.size(), region);
        checkNode(node);
        lifecycle.checkOpen();
        region.state().lifecycle().checkOpen();
        return java.util.concurrent.CompletableFuture.supplyAsync(() -> {
            RegionState s = region.state();
            long from = offset >>> Block.PAGE_SHIFT;
            long to = Math.ceilDiv(offset + length, Block.PAGE_BYTES);
            s.lifecycle().enter();
            try {
                return engine.migrateRange(s, s.granuleStart(from), s.granuleEnd(to), node, Trigger.PREFETCH, -1);
            } finally {
                s.lifecycle().exit();
            }
        }, background);
    }

    /** Threads for asynchronous work (prefetches): virtual, one per task, ended with the memory. */
    private final java.util.concurrent.ExecutorService background =
            java.util.concurrent.Executors.newThreadPerTaskExecutor(Thread.ofVirtual().name("hetmem-async-", 0).factory());

    /**
     * Prefetches many ranges of one region to {@code node} as one migration batch (batched page migration's
     * "migrate a list of pages"): [offset, offset+length) for every offset, each widened to its
     * granules. Batches of up to 1 GiB; each is all-or-nothing. Returns the pages whose data moved.
     */
    public long prefetch(Region region, int node, long length, long... offsets) {
        checkMine(region);
        checkNode(node);
        Objects.requireNonNull(offsets, "offsets");
        if (length < 0 || length > region.size()) {
            throw new IllegalArgumentException("prefetch length " + length + " outside [0, " + region.size()
                    + "] (the size of " + region + ")");
        }
        lifecycle.checkOpen();
        region.state().lifecycle().checkOpen();
        RegionState s = region.state();
        List<MigrationRequest> batch = new ArrayList<>();
        long batchPages = 0;
        long moved = 0;
        long limit = engine.batchPages(node);
        s.lifecycle().enter();
        try {
            for (long off : offsets) {
                Checks.range(off, length, region.size(), region);
            }
            for (long off : offsets) {
                if (length == 0) {
                    continue;
                }
                long from = off >>> Block.PAGE_SHIFT;
                long to = Math.ceilDiv(off + length, Block.PAGE_BYTES);
                // a batch holds at most what one batch may hold of the device (a range larger than
                // that is cut); where whole granules would not fit, the engine moves only these pages
                for (long p = from; p < to; ) {
                    long end = Math.min(to, p + Math.max(1, limit - batchPages));
                    batch.add(new MigrationRequest(s, p, end, false));
                    batchPages += end - p;
                    p = end;
                    if (batchPages >= limit) {
                        moved += engine.ensure(batch, node, Trigger.PREFETCH, false, -1).pagesMigrated();
                        batch.clear();
                        batchPages = 0;
                    }
                }
            }
            if (!batch.isEmpty()) {
                moved += engine.ensure(batch, node, Trigger.PREFETCH, false, -1).pagesMigrated();
            }
        } finally {
            s.lifecycle().exit();
        }
        return moved;
    }

    // ---- loading files ---------------------------------------------------------------------

    /**
     * Loads a file into a new region on {@code node} (direct-I/O loading, as dma-buf's): on the host with parallel O_DIRECT
     * reads straight into the region's pages, overlapped with populating them; on a device through a
     * bounded ring of bounce buffers handed to the device's copy path, so host memory stays within
     * the ring. Falls back to buffered reads where O_DIRECT is refused, and says so in the result.
     * On any failure nothing is left allocated.
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

    public LoadResult load(Path path, int node) throws IOException {
        return load(path, node, LoadOptions.defaults());
    }

    /** The loader's narrow view of this memory. */
    private final LoadTarget loaderBridge = new LoadTarget() {
        @Override
        public Region allocateForLoad(long bytes) {
            return allocateRegion(bytes, defaultGranularity);
        }

        @Override
        public void fillDevice(Region region, long offset, long length, int node, long buffer) {
            RegionState s = region.state();
            s.lifecycle().enter();
            try {
                engine.fill(s, offset >>> Block.PAGE_SHIFT, Math.ceilDiv(offset + length, Block.PAGE_BYTES), node, buffer);
            } finally {
                s.lifecycle().exit();
            }
        }

        @Override
        public void prefetch(Region region, int node) {
            if (region.size() > 0) {
                advise(region, 0, region.size(), Advice.prefetch(node));
            }
        }

        @Override
        public boolean isDevice(int node) {
            return node > 0;
        }

        @Override
        public HostPopulator hostPopulator(Region region) {
            RegionState s = region.state();
            HostMirror mirror = s.mirror();
            if (mirror != null) {
                // a userfaultfd view: the service installs zeroed pages in bulk, not one fault each
                return (offset, bytes) -> {
                    long first = offset >>> Block.PAGE_SHIFT;
                    mirror.populate(first, Math.min(s.pages(), Math.ceilDiv(offset + bytes, Block.PAGE_BYTES)) - first);
                    return true;
                };
            }
            long base = s.host().base();
            return (offset, bytes) -> Libc.tryMadvise(base + offset, bytes, Libc.MADV_POPULATE_WRITE) == 0;
        }
    };

    // ---- kernels ---------------------------------------------------------------------------

    /**
     * Runs a kernel on a device: first makes every argument's range resident on the device with the
     * access it declares (GMEM's gm_dev_fault), pinning it there for the run, then runs the kernel.
     * {@code globalSize} work items; what an item means is the kernel's business.
     */
    public LaunchResult launch(int node, DeviceKernel kernel, long globalSize, KernelArg... args) {
        Objects.requireNonNull(kernel, "kernel");
        Objects.requireNonNull(args, "args");
        DeviceNode dev = device(node);
        if (globalSize < 1) {
            throw new IllegalArgumentException("global size " + globalSize + " must be at least 1");
        }
        lifecycle.checkOpen();
        List<MigrationRequest> requests = new ArrayList<>(args.length);
        List<KernelBinding> bindings = new ArrayList<>(args.length);
        List<RegionState> entered = new ArrayList<>();
        for (KernelArg a : args) {
            Objects.requireNonNull(a, "kernel argument");
            checkMine(a.region());
            Checks.range(a.offset(), a.length(), a.region().size(), a.region());
            RegionState s = a.region().state();
            long from = a.offset() >>> Block.PAGE_SHIFT;
            long to = Math.ceilDiv(a.offset() + a.length(), Block.PAGE_BYTES);
            if (a.access().writes()) {
                long ro = s.attributes().firstReadOnly(from, to);
                if (ro >= 0) {
                    throw new ProtectionException("kernel argument writes [" + a.offset() + ", " + (a.offset() + a.length())
                            + ") of " + a.region() + " but the page at offset " + (ro << Block.PAGE_SHIFT) + " is read-only");
                }
            }
            requests.add(new MigrationRequest(s, from, to, a.access().writes()));
            bindings.add(new KernelBinding(s.host().base() + a.offset(), a.length(), a.access()));
            if (!entered.contains(s)) {
                entered.add(s);
            }
        }
        entered.sort(Comparator.comparingInt(RegionState::id));
        int enteredCount = 0;
        List<Pins.Pin> pins = List.of();
        try {
            for (RegionState s : entered) {
                s.lifecycle().enter();
                enteredCount++;
            }
            FaultEvent event = new FaultEvent();
            event.begin();
            long t0 = System.nanoTime();
            MigrationEngine.Outcome out = engine.ensure(requests, node, Trigger.FAULT, true, -1);
            pins = out.pins();
            long t1 = System.nanoTime();
            if (out.faults() > 0) {
                counters.fault(node, out.faults());
                for (MigrationRequest r : requests) {
                    // per region: faults are attributed to the first region of the launch that had work
                    r.region().counters().fault(node, out.faults());
                    break;
                }
                if (event.shouldCommit()) {
                    event.path = FaultEvent.KERNEL;
                    event.node = node;
                    event.region = requests.getFirst().region().id();
                    event.offset = args[0].offset();
                    event.length = args[0].length();
                    event.faults = out.faults();
                    event.pagesMigrated = out.pagesMigrated();
                    event.commit();
                }
            }
            dev.driver().execute(kernel, globalSize, bindings);
            long t2 = System.nanoTime();
            return new LaunchResult(out.pagesTouched(), out.faults(), out.pagesMigrated(),
                    out.pagesMigrated() << Block.PAGE_SHIFT, t1 - t0, t2 - t1);
        } finally {
            for (int i = 0; i < pins.size(); i++) {
                requests.get(i).region().unpin(pins.get(i));
            }
            for (int i = 0; i < enteredCount; i++) {
                entered.get(i).lifecycle().exit();
            }
        }
    }

    /**
     * Drops every frame of a device: all its pages go home to the host (dmirror's RELEASE).
     * Waits for kernels running on it.
     */
    public long release(int node) {
        device(node);
        return lifecycle.within(() -> releaseNow(node));
    }

    private long releaseNow(int node) {
        long moved = 0;
        for (Region r : regions()) {
            RegionState s = r.state();
            try {
                s.lifecycle().enter();
            } catch (IllegalStateException freed) {
                continue;
            }
            try {
                moved += engine.migrateRange(s, 0, s.pages(), 0, Trigger.RELEASE, node);
            } finally {
                s.lifecycle().exit();
            }
        }
        return moved;
    }

    // ---- observability ---------------------------------------------------------------------

    public Stats stats() {
        return lifecycle.within(this::statsNow);
    }

    private Stats statsNow() {
        List<NodeStats> list = new ArrayList<>();
        long metadata = 0;
        long touched = 0;
        long[] resident = new long[nodeInfos.size()];
        for (Region r : regions()) {
            RegionState s = r.state();
            engine.reconcileAll(s);
            metadata += s.metadataBytes();
            for (int n = 0; n < resident.length; n++) {
                long p = s.table().residentPages(n);
                resident[n] += p;
                touched += p << Block.PAGE_SHIFT;
            }
        }
        for (int n = 0; n < nodeInfos.size(); n++) {
            long free = -1;
            if (n > 0) {
                free = devices[n].allocator().freeBytes();
                metadata += devices[n].allocator().metadataBytes();
            }
            long serviceFaults = 0;
            if (n == 0 && faultService != null) {
                // host faults the native service resolved on its own (pages are counted as they are reconciled)
                FaultService.Counters c = faultService.counters();
                serviceFaults = c.faults() + c.writeFaults();
            }
            list.add(nodeStats(n, counters, resident[n] << Block.PAGE_SHIFT, free, serviceFaults));
        }
        return new Stats(List.copyOf(list), metadata, touched);
    }

    Stats regionStats(RegionState s) {
        engine.reconcileAll(s);
        List<NodeStats> list = new ArrayList<>();
        long touched = 0;
        for (int n = 0; n < nodeInfos.size(); n++) {
            long bytes = s.table().residentPages(n) << Block.PAGE_SHIFT;
            touched += bytes;
            list.add(nodeStats(n, s.counters(), bytes, -1, 0));
        }
        return new Stats(List.copyOf(list), s.metadataBytes(), touched);
    }

    private NodeStats nodeStats(int n, Counters c, long residentBytes, long free, long extraFaults) {
        long[] in = new long[Trigger.ALL.length];
        for (Trigger t : Trigger.ALL) {
            in[t.ordinal()] = c.pagesIn(n, t);
        }
        return new NodeStats(nodeInfos.get(n), residentBytes, free, c.faults(n) + extraFaults, in, c.evictions(n),
                c.thrashingEvents(n));
    }

    /**
     * Checks every region's page table (single-writer invariant, resident counts) and that each
     * device's page table mirrors it (an entry exactly where a page is resident on the device,
     * writable exactly where the device is the writer and the range is not read-only). Returns the
     * problems found; empty when all holds. Meant for tests and diagnostics on a quiet memory.
     */
    public List<String> verify() {
        return lifecycle.within(this::verifyNow);
    }

    private List<String> verifyNow() {
        List<String> problems = new ArrayList<>();
        // which page holds each device frame: a frame held twice, or named by the userfaultfd view
        // of a page that does not hold it, is how a lost store shows once it has happened
        java.util.BitSet[] owned = new java.util.BitSet[nodeInfos.size()];
        for (int n = 1; n < owned.length; n++) {
            owned[n] = new java.util.BitSet();
        }
        for (Region r : regions()) {
            RegionState s = r.state();
            try {
                s.lifecycle().enter();   // a region being freed is not read while its view goes
            } catch (IllegalStateException freed) {
                continue;
            }
            try {
                verifyRegion(r, s, owned, problems);
            } finally {
                s.lifecycle().exit();
            }
        }
        for (int n = 1; n < owned.length; n++) {
            BuddyAllocator alloc = devices[n].allocator();
            long held = owned[n].cardinality();
            if (held + alloc.freeFrames() != alloc.totalFrames()) {
                problems.add("node " + n + ": " + held + " frames held by pages and " + alloc.freeFrames() + " free of "
                        + alloc.totalFrames() + ": " + (alloc.totalFrames() - held - alloc.freeFrames())
                        + " frames lost (or freed twice)");
            }
        }
        return problems;
    }

    /** verify() of one region, which the caller keeps from being freed meanwhile. */
    private void verifyRegion(Region r, RegionState s, java.util.BitSet[] owned, List<String> problems) {
        engine.reconcileAll(s);
        String p = s.table().checkInvariants();
        if (p != null) {
            problems.add(r + ": " + p);
        }
        s.table().forEachBlock(b -> {
            b.lock.lock();
            try {
                int pages = s.table().pagesIn(b.index());
                for (int n = 1; n < nodeInfos.size(); n++) {
                    DeviceDriver d = devices[n].driver();
                    for (int i = 0; i < pages; i++) {
                        long page = (b.index() << 9) + i;
                        long va = s.pageAddress(page);
                        int pte = d.probe(va);
                        boolean resident = b.isResident(n, i);
                        if (b.isRemote(n, i)) {
                            boolean w = b.isRemoteWritable(n, i) && !s.attributes().at(page).readOnly();
                            if ((pte & DeviceDriver.PTE_REMOTE) == 0 || ((pte & DeviceDriver.PTE_WRITABLE) != 0) != w) {
                                problems.add(r + " page " + page + ": node " + n + " should map the host's copy "
                                        + (w ? "writable" : "read-only") + "; its entry is " + pte);
                            }
                            continue;
                        }
                        if ((pte & DeviceDriver.PTE_REMOTE) != 0) {
                            problems.add(r + " page " + page + ": node " + n + " maps host memory it was not given");
                            continue;
                        }
                        if (resident != ((pte & DeviceDriver.PTE_PRESENT) != 0)) {
                            problems.add(r + " page " + page + ": resident on node " + n + " = " + resident
                                    + " but device entry present = " + !resident);
                            continue;
                        }
                        if (!resident) {
                            continue;
                        }
                        int frame = b.frame(n, i);
                        if (owned[n].get(frame)) {
                            problems.add(r + " page " + page + " on node " + n + ": frame " + frame
                                    + " is held by another page too");
                        }
                        owned[n].set(frame);
                        boolean w = b.isWritable(n, i) && !s.attributes().at(page).readOnly();
                        if (w != ((pte & DeviceDriver.PTE_WRITABLE) != 0)) {
                            problems.add(r + " page " + page + " on node " + n + ": should be "
                                    + (w ? "writable" : "read-only") + " in the device page table");
                        }
                        if (d.probeFrame(va) != b.frame(n, i)) {
                            problems.add(r + " page " + page + " on node " + n + ": device entry maps frame "
                                    + d.probeFrame(va) + ", page table says " + b.frame(n, i));
                        }
                    }
                }
                if (s.mirror() != null) {
                    checkMirror(r, s, b, pages, problems);
                }
            } finally {
                b.lock.unlock();
            }
        });
    }

    /**
     * The userfaultfd view of a locked block against the page table: each page's state word, and
     * what the kernel really maps (STOLEN pages wait for reconciliation).
     */
    private void checkMirror(Region r, RegionState s, Block b, int pages, List<String> all) {
        byte[] mapped = s.mirror().viewPages(b.index() << 9, pages);
        List<String> problems = new ArrayList<>();
        for (int i = 0; i < pages; i++) {
            long page = (b.index() << 9) + i;
            long st = s.mirror().state(page);
            if ((st & HostMirror.STOLEN) != 0) {
                continue;
            }
            boolean present = (mapped[i] & HostMirror.VIEW_MAPPED) != 0;
            boolean writeProtected = (mapped[i] & HostMirror.VIEW_WRITE_PROTECTED) != 0;
            if (present && ((st & HostMirror.KIND) == HostMirror.KIND_AWAY
                    || ((st & HostMirror.KIND) == HostMirror.KIND_HOST && (st & HostMirror.HELD) == 0))) {
                problems.add(r + " page " + page + ": the userfaultfd view maps a page the host does not hold"
                        + " (a read would not fault); its state word is 0x" + Long.toHexString(st));
                continue;
            }
            if (present && !writeProtected && (st & HostMirror.READ_ONLY) != 0) {
                problems.add(r + " page " + page + ": the userfaultfd view maps a read-only host copy writable"
                        + "; its state word is 0x" + Long.toHexString(st));
                continue;
            }
            long kind = st & HostMirror.KIND;
            int holders = b.residentMask(i);
            String expected = null;
            if ((holders & 1) != 0) {
                if (kind != HostMirror.KIND_HOST || (st & HostMirror.HELD) == 0) {
                    expected = "on the host";
                } else if ((!b.isWritable(0, i) || s.attributes().at(page).readOnly())
                        && (st & HostMirror.READ_ONLY) == 0) {
                    expected = "write-protected";
                }
            } else if (holders != 0) {
                boolean found = false;
                for (int n = 1; n < nodeInfos.size() && !found; n++) {
                    found = b.isResident(n, i)
                            && devices[n].driver().hostAddress(b.frame(n, i)) == (st & HostMirror.SOURCE);
                }
                if (kind != HostMirror.KIND_AWAY || !found) {
                    expected = "pointing at a device frame that holds it";
                }
            } else if (kind != HostMirror.KIND_HOST || (st & HostMirror.HELD) != 0) {
                expected = "empty (zeros)";
            }
            if (expected != null) {
                problems.add(r + " page " + page + ": the userfaultfd view should be " + expected
                        + "; its state word is 0x" + Long.toHexString(st));
            }
        }
        // one broken transition shows on every page it touched: a few lines say what it is
        all.addAll(problems.subList(0, Math.min(problems.size(), 8)));
        if (problems.size() > 8) {
            all.add(r + " block " + b.index() + ": " + (problems.size() - 8) + " more pages like these");
        }
    }

    /** The native fault service's counters, or null when host faults go through host views. */
    public FaultService.Counters faultServiceCounters() {
        return faultService == null ? null : faultService.counters();
    }

    /** How host code reaches this memory's regions. */
    public HostFaultMode hostFaults() {
        return faultService == null ? HostFaultMode.HOST_VIEWS : HostFaultMode.USERFAULTFD;
    }

    // ---- close -----------------------------------------------------------------------------

    /**
     * Closes the memory: new operations (and new host views) are refused at once; operations
     * already running (kernels, migrations, loads, frees) and host views open in other threads are
     * waited for, at most the builder's {@code closeTimeout} in all; then every region is freed,
     * and the copy threads, the fault service and the drivers are closed. Nothing is unmapped
     * while anything still runs or a view is open. Throws, having unmapped nothing, if the time
     * runs out (naming the threads), if the calling thread itself holds a view (views of threads
     * that ended are taken back), or if called from inside a kernel; a later call tries again.
     * Closing a closed memory does nothing.
     */
    @Override
    public void close() {
        refuseInsideKernel("close()");
        long deadline = System.nanoTime() + closeTimeoutNanos;
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
        synchronized (teardown) {
            if (tornDown) {
                return;
            }
            for (Region r : regions()) {
                if (!r.state().isReleased()) {
                    freeRegion(r);
                }
            }
            tornDown = true;
        }
        background.shutdown();
        engine.close();
        if (faultService != null) {
            faultService.close();
        }
        for (int n = 1; n < devices.length; n++) {
            try {
                devices[n].driver().close();
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.WARNING, "closing device " + devices[n].driver().name() + " failed", e);
            }
        }
    }
}
