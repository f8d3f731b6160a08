package dev.hetmem.device.opencl;

import dev.hetmem.driver.CopyBatch;
import dev.hetmem.driver.CopyEngine;
import dev.hetmem.driver.DeviceContext;
import dev.hetmem.driver.DeviceCopyException;
import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.driver.DeviceKernel;
import dev.hetmem.driver.DeviceMemoryException;
import dev.hetmem.driver.FaultCountdown;
import dev.hetmem.driver.KernelBinding;
import dev.hetmem.driver.VaRanges;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;

import static dev.hetmem.device.opencl.ClLibrary.call;
import static dev.hetmem.device.opencl.ClLibrary.check;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * An OpenCL device as a hetmem node. Its memory is one or more pool buffers (each within the
 * device's maximum allocation) that the core's buddy allocator carves into 4 KiB frames; copies
 * are non-blocking OpenCL transfers, all of a batch in flight at once on an out-of-order queue and
 * waited for together; its page table is a host-side mirror of the logical one
 * ({@link DevicePageTable}) whose entries for a launch's arguments are uploaded before the kernel
 * runs; kernels are OpenCL C built with the project's {@code hetmem.h} ({@link #compile}).
 *
 * <p>The host cannot read pool buffers in place, so {@link #hostAddress} is 0 and the
 * userfaultfd host-fault mode refuses this device; host views work.
 *
 * <p>Locks: {@code launchLock} serialises launches (they share the uploaded page-table buffer and
 * the fault word). It is a leaf: nothing under it calls into the core.
 *
 * <p>Fault injection for tests, as on the emulated device: {@link #failAllocation}, {@link #failCopy},
 * and {@link #loseDevice}, after which every operation fails as a device that fell off the bus does.
 */
public final class OpenClDevice implements DeviceDriver {
    private static final System.Logger LOG = System.getLogger(OpenClDevice.class.getName());
    private static final long CHUNK = 2L << 20;
    /** Room of the fault word: 16 words of report, then a scratch page plus slack for the widest element. */
    private static final long FAULT_BYTES = 64 + 8192 + 128;
    private static final int MAX_POOLS = 4;

    private final ClLibrary cl = ClLibrary.get();
    private final OpenClDeviceInfo info;
    private final String name;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment device;
    private final MemorySegment context;
    private final MemorySegment kernelQueue;
    private final MemorySegment copyQueue;
    private final MemorySegment[] pools;
    private final MemorySegment poolHandles;
    private final long capacity;
    private final int framesPerPool;
    private final DevicePageTable pageTable = new DevicePageTable();
    private final FaultCountdown allocationFailure = new FaultCountdown();
    private final FaultCountdown copyFailure = new FaultCountdown();
    private final AtomicLong invalidations = new AtomicLong();
    private final Set<OpenClProgram> programs = ConcurrentHashMap.newKeySet();
    private final Waiter waiter;
    private final MemorySegment faultMem;
    private final ReentrantLock launchLock = new ReentrantLock();
    // guarded by launchLock: the device-side page table and its host staging copy
    private MemorySegment tableMem = MemorySegment.NULL;
    private long tableEntries;
    private MemorySegment staging = MemorySegment.NULL;
    private volatile boolean lost;
    private volatile boolean closed;
    private volatile DeviceContext attached;

    private OpenClDevice(Builder b) {
        List<OpenClDeviceInfo> all = OpenClPlatforms.devices();
        if (all.isEmpty()) {
            throw new OpenClUnavailableException(OpenClPlatforms.unavailableReason());
        }
        this.info = all.stream().filter(d -> d.platform() == b.platform && d.index() == b.device).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("no OpenCL device " + b.device + " on platform " + b.platform
                        + "; found: " + all.stream().map(d -> d.platform() + "/" + d.index() + " " + d.name()).toList()));
        this.name = b.name != null ? b.name : "opencl:" + info.name();
        long maxPool = Math.min(b.maxPoolBytes, info.maxAllocation()) / CHUNK * CHUNK;
        long want = b.capacity > 0 ? b.capacity : Math.max(CHUNK, info.globalMemory() / 4 / CHUNK * CHUNK);
        if (maxPool < CHUNK) {
            throw new IllegalArgumentException(info.name() + " allows buffers of only " + info.maxAllocation()
                    + " bytes; hetmem needs at least " + CHUNK);
        }
        int poolCount = (int) Math.ceilDiv(want, maxPool);
        if (poolCount > MAX_POOLS) {
            throw new IllegalArgumentException("capacity " + want + " needs " + poolCount + " pool buffers of at most "
                    + maxPool + " bytes (the device's maximum allocation) but a device has at most " + MAX_POOLS);
        }
        if (want > info.globalMemory()) {
            throw new IllegalArgumentException("capacity " + want + " exceeds " + info.name() + "'s global memory of "
                    + info.globalMemory() + " bytes");
        }
        long poolBytes = Math.min(maxPool, Math.ceilDiv(Math.ceilDiv(want, poolCount), CHUNK) * CHUNK);
        if ((poolBytes >>> 12) >= (1L << 28)) {
            throw new IllegalArgumentException("pool buffers of " + poolBytes + " bytes exceed the page table's 1 TiB per pool");
        }
        this.framesPerPool = (int) (poolBytes >>> 12);
        this.capacity = want;
        this.pools = new MemorySegment[poolCount];
        MemorySegment ctx = MemorySegment.NULL;
        MemorySegment kq = MemorySegment.NULL;
        MemorySegment cq = MemorySegment.NULL;
        MemorySegment fm = MemorySegment.NULL;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment platform = OpenClPlatforms.platforms(cl, a)[info.platform()];
            this.device = OpenClPlatforms.devices(cl, a, platform)[info.index()];
            MemorySegment err = a.allocate(JAVA_INT);
            MemorySegment devs = a.allocate(ADDRESS);
            devs.set(ADDRESS, 0, device);
            ctx = handle(cl.createContext, "clCreateContext", err, MemorySegment.NULL, 1, devs, MemorySegment.NULL, MemorySegment.NULL, err);
            kq = handle(cl.createCommandQueue, "clCreateCommandQueue", err, ctx, device, 0L, err);
            long props = OpenClPlatforms.deviceLong(cl, device, ClLibrary.CL_DEVICE_QUEUE_PROPERTIES);
            long outOfOrder = props & ClLibrary.CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE;
            cq = handle(cl.createCommandQueue, "clCreateCommandQueue", err, ctx, device, outOfOrder, err);
            for (int p = 0; p < poolCount; p++) {
                long bytes = p < poolCount - 1 ? poolBytes : want - poolBytes * (poolCount - 1);
                pools[p] = handle(cl.createBuffer, "clCreateBuffer", err, ctx, ClLibrary.CL_MEM_READ_WRITE, bytes, MemorySegment.NULL, err);
                // implementations allocate lazily: touch both ends now so a pool that cannot be had fails here, by name
                fillBlocking(kq, pools[p], 0, 4096, a);
                fillBlocking(kq, pools[p], bytes - 4096, 4096, a);
            }
            fm = handle(cl.createBuffer, "clCreateBuffer", err, ctx, ClLibrary.CL_MEM_READ_WRITE, FAULT_BYTES, MemorySegment.NULL, err);
        } catch (RuntimeException e) {
            releaseAll(ctx, kq, cq, fm);
            arena.close();
            throw e;
        }
        this.context = ctx;
        this.kernelQueue = kq;
        this.copyQueue = cq;
        this.faultMem = fm;
        this.poolHandles = arena.allocate(ADDRESS, poolCount);
        for (int p = 0; p < poolCount; p++) {
            poolHandles.setAtIndex(ADDRESS, p, pools[p]);
        }
        this.waiter = new Waiter();
        LOG.log(System.Logger.Level.DEBUG, () -> name + ": " + poolCount + " pool buffer(s), " + capacity + " bytes");
    }

    public static Builder builder() {
        return new Builder();
    }

    /** The first device of the first platform, with the default capacity. */
    public static OpenClDevice create() {
        return builder().build();
    }

    public static final class Builder {
        private int platform;
        private int device;
        private long capacity;
        private long maxPoolBytes = Long.MAX_VALUE;
        private String name;

        /** Platform index, as {@link OpenClPlatforms#devices()} numbers them (default 0). */
        public Builder platform(int index) {
            if (index < 0) {
                throw new IllegalArgumentException("platform index " + index + " is negative");
            }
            this.platform = index;
            return this;
        }

        /** Device index within the platform (default 0). */
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
         */
        public Builder capacity(long bytes) {
            if (bytes < CHUNK || bytes % CHUNK != 0) {
                throw new IllegalArgumentException("OpenCL device capacity " + bytes + " must be a positive multiple of "
                        + CHUNK + " (2 MiB)");
            }
            this.capacity = bytes;
            return this;
        }

        /**
         * Largest pool buffer, in bytes (default: the device's maximum allocation). Smaller pools
         * suit devices whose allocator prefers them; capacity above it is split into more pools.
         */
        public Builder maxPoolBytes(long bytes) {
            if (bytes < CHUNK || bytes % CHUNK != 0) {
                throw new IllegalArgumentException("pool size " + bytes + " must be a positive multiple of " + CHUNK + " (2 MiB)");
            }
            this.maxPoolBytes = bytes;
            return this;
        }

        public Builder name(String name) {
            this.name = Objects.requireNonNull(name, "name");
            return this;
        }

        public OpenClDevice build() {
            return new OpenClDevice(this);
        }
    }

    /** What OpenCL says of this device. */
    public OpenClDeviceInfo info() {
        return info;
    }

    /** Pool buffers the device memory is split into. */
    public int poolCount() {
        return pools.length;
    }

    // ---- fault injection --------------------------------------------------------------------

    /** The frame preparation after the next {@code after} ones fails; -1 disarms. */
    public void failAllocation(int after) {
        allocationFailure.arm(after);
    }

    /** The copy operation after the next {@code after} ones fails (earlier ones complete); -1 disarms. */
    public void failCopy(int after) {
        copyFailure.arm(after);
    }

    /**
     * From now on the device behaves as one that was lost (a GPU reset, a PCIe link down): every
     * operation fails with CL_DEVICE_NOT_AVAILABLE before it reaches the device. Pages on the host
     * stay readable; pages whose only copy was on the device cannot come back.
     */
    public void loseDevice() {
        lost = true;
    }

    private void checkUsable(String call) {
        if (closed) {
            throw new IllegalStateException("OpenCL device " + name + " is closed");
        }
        if (lost) {
            throw new OpenClException(call, ClLibrary.CL_DEVICE_NOT_AVAILABLE, name + " was lost");
        }
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

    @Override
    public long memoryBytes() {
        return capacity;
    }

    @Override
    public synchronized void detach(DeviceContext context) {
        if (this.attached == context) {
            this.attached = null;
        }
    }

    @Override
    public synchronized void attach(DeviceContext context) {
        if (attached != null) {
            throw new IllegalStateException("device " + name + " is already attached to node " + attached.node());
        }
        attached = context;
    }

    /** The node id this device was given, or -1 before it is attached. */
    public int node() {
        DeviceContext c = attached;
        return c == null ? -1 : c.node();
    }

    @Override
    public void prepareFrames(int first, int count) {
        if (lost) {
            throw new DeviceMemoryException("OpenCL device " + name + " was lost (CL_DEVICE_NOT_AVAILABLE)");
        }
        if (allocationFailure.fire()) {
            throw new DeviceMemoryException("injected allocation failure on " + name + " (frames " + first + ".." + (first + count - 1) + ")");
        }
    }

    @Override
    public void copy(CopyBatch batch, int from, int to) {
        try (Arena a = Arena.ofConfined()) {
            Transfers t = enqueue(batch, from, to, a);
            t.await();
        }
    }

    /** The transfers of one copy phase, in flight. */
    private final class Transfers {
        final MemorySegment events;
        int count;
        RuntimeException failure;

        Transfers(MemorySegment events) {
            this.events = events;
        }

        /** Waits for every enqueued transfer, releases the events and throws the first failure. */
        void await() {
            if (count > 0) {
                int rc = waitForEvents(count, events);
                // statuses are read only when the wait reported a failure: the common path allocates nothing
                MemorySegment status = rc != ClLibrary.CL_SUCCESS ? Arena.ofAuto().allocate(JAVA_INT) : MemorySegment.NULL;
                for (int i = 0; i < count; i++) {
                    MemorySegment ev = events.getAtIndex(ADDRESS, i);
                    if (rc != ClLibrary.CL_SUCCESS && failure == null) {
                        int q = call(cl.getEventInfo, ev, ClLibrary.CL_EVENT_COMMAND_EXECUTION_STATUS, 4L, status, MemorySegment.NULL);
                        int st = status.get(JAVA_INT, 0);
                        if (q == ClLibrary.CL_SUCCESS && st < 0) {
                            failure = new DeviceCopyException("transfer " + i + " on " + name + " failed",
                                    new OpenClException("clWaitForEvents", st, "event status"));
                        }
                    }
                    call(cl.releaseEvent, ev);
                }
                if (rc != ClLibrary.CL_SUCCESS && failure == null) {
                    failure = new DeviceCopyException("transfers on " + name + " failed",
                            new OpenClException("clWaitForEvents", rc, null));
                }
                count = 0;
            }
            if (failure != null) {
                throw failure;
            }
        }
    }

    /** Enqueues operations [from, to) without blocking; a failure to enqueue is kept for {@link Transfers#await}. */
    private Transfers enqueue(CopyBatch batch, int from, int to, Arena a) {
        int slots = 0;
        for (int i = from; i < to; i++) {
            slots += 1 + batch.pages(i) / framesPerPool + 1;
        }
        Transfers t = new Transfers(a.allocate(ADDRESS, Math.max(1, slots)));
        MemorySegment zero = a.allocate(JAVA_INT);
        try {
            checkUsable("clEnqueueWriteBuffer");
            for (int i = from; i < to; i++) {
                if (copyFailure.fire()) {
                    throw new DeviceCopyException("injected copy failure on " + name + " at operation " + i + " of a batch of " + batch.size());
                }
                int frame = batch.frame(i);
                int pages = batch.pages(i);
                long host = batch.hostAddress(i);
                checkFrames(frame, pages);
                while (pages > 0) {
                    int pool = frame / framesPerPool;
                    int n = Math.min(pages, framesPerPool - frame % framesPerPool);
                    long offset = (long) (frame % framesPerPool) << 12;
                    long bytes = (long) n << 12;
                    MemorySegment ev = t.events.asSlice((long) t.count * ADDRESS.byteSize());
                    int rc = switch (batch.op(i)) {
                        case CopyBatch.TO_DEVICE -> transfer(true, copyQueue, pools[pool], offset, bytes, host, ev);
                        case CopyBatch.TO_HOST -> transfer(false, copyQueue, pools[pool], offset, bytes, host, ev);
                        case CopyBatch.ZERO -> fill(copyQueue, pools[pool], zero, offset, bytes, ev);
                        default -> throw new DeviceCopyException("unknown copy operation " + batch.op(i));
                    };
                    if (rc != ClLibrary.CL_SUCCESS) {
                        String call = batch.op(i) == CopyBatch.ZERO ? "clEnqueueFillBuffer"
                                : batch.op(i) == CopyBatch.TO_DEVICE ? "clEnqueueWriteBuffer" : "clEnqueueReadBuffer";
                        throw new DeviceCopyException("copy of " + n + " pages at frame " + frame + " on " + name + " failed",
                                new OpenClException(call, rc, null));
                    }
                    t.count++;
                    frame += n;
                    pages -= n;
                    host += bytes;
                }
            }
            call(cl.flush, copyQueue);
        } catch (OpenClException e) {
            t.failure = new DeviceCopyException("copy on " + name + " failed", e);
        } catch (RuntimeException e) {
            t.failure = e;
        }
        return t;
    }

    private void checkFrames(int frame, int pages) {
        if (frame < 0 || ((long) frame + pages) << 12 > capacity) {
            throw new DeviceCopyException("frames " + frame + "+" + pages + " outside device memory of " + capacity + " bytes");
        }
    }

    private int transfer(boolean toDevice, MemorySegment queue, MemorySegment mem, long offset, long bytes, long host,
                         MemorySegment event) {
        try {
            return toDevice
                    ? (int) cl.enqueueWriteBuffer.invokeExact(queue, mem, ClLibrary.CL_FALSE, offset, bytes,
                            MemorySegment.ofAddress(host), 0, MemorySegment.NULL, event)
                    : (int) cl.enqueueReadBuffer.invokeExact(queue, mem, ClLibrary.CL_FALSE, offset, bytes,
                            MemorySegment.ofAddress(host), 0, MemorySegment.NULL, event);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    private int fill(MemorySegment queue, MemorySegment mem, MemorySegment pattern, long offset, long bytes, MemorySegment event) {
        try {
            return (int) cl.enqueueFillBuffer.invokeExact(queue, mem, pattern, 4L, offset, bytes, 0, MemorySegment.NULL, event);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    private void fillBlocking(MemorySegment queue, MemorySegment mem, long offset, long bytes, Arena a) {
        MemorySegment ev = a.allocate(ADDRESS);
        check("clEnqueueFillBuffer", fill(queue, mem, a.allocate(JAVA_INT), offset, bytes, ev));
        int rc = waitForEvents(1, ev);
        call(cl.releaseEvent, ev.get(ADDRESS, 0));
        check("clWaitForEvents", rc, "filling " + bytes + " bytes of a pool buffer");
    }

    private int waitForEvents(int n, MemorySegment events) {
        try {
            return (int) cl.waitForEvents.invokeExact(n, events);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) {
            return r;
        }
        if (t instanceof Error e) {
            throw e;
        }
        return new IllegalStateException(t);
    }

    @Override
    public CopyEngine copyEngine() {
        return waiter;
    }

    @Override
    public void map(long va, int frame, int pages, boolean writable) {
        if (frame < 0 || ((long) frame + pages) << 12 > capacity) {
            throw new IllegalArgumentException("frames " + frame + "+" + pages + " outside device memory of " + capacity + " bytes");
        }
        // a run may cross into the next pool: enter it pool by pool
        while (pages > 0) {
            int n = Math.min(pages, framesPerPool - frame % framesPerPool);
            int entry = ((frame % framesPerPool) << 4) | ((frame / framesPerPool) << 2) | DevicePageTable.PRESENT
                    | (writable ? DevicePageTable.WRITABLE : 0);
            pageTable.map(va, entry, n);
            va += (long) n << 12;
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
     * pinned, so no running kernel holds a released entry: the invalidation is the next upload.
     */
    @Override
    public void invalidate(VaRanges ranges) {
        invalidations.incrementAndGet();
    }

    /** TLB invalidations requested so far. */
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

    @Override
    public long probeFrame(long va) {
        int e = pageTable.entry(va);
        if ((e & DevicePageTable.PRESENT) == 0) {
            return -1;
        }
        return (long) ((e >>> 2) & 3) * framesPerPool + (e >>> 4);
    }

    // ---- programs and launches ---------------------------------------------------------------

    /** Builds OpenCL C source whose kernels reach region arguments through {@code hetmem.h}. */
    public OpenClProgram compile(String source) {
        return compile(source, "");
    }

    /** As {@link #compile(String)}, with extra build options (such as {@code -DBLOCK=16}). */
    public OpenClProgram compile(String source, String options) {
        checkUsable("clBuildProgram");
        OpenClProgram p = OpenClProgram.build(this, cl, context, device, source,
                "-DHM_POOLS=" + pools.length + " " + Objects.requireNonNull(options, "options"), false);
        programs.add(p);
        return p;
    }

    /**
     * Builds the same source with every region argument a plain buffer ({@code -DHM_PLAIN}): the
     * kernel without translation, to measure what translation costs. Run with {@link #runPlain}.
     */
    public OpenClProgram compilePlain(String source, String options) {
        checkUsable("clBuildProgram");
        OpenClProgram p = OpenClProgram.build(this, cl, context, device, source,
                "-DHM_PLAIN " + Objects.requireNonNull(options, "options"), true);
        programs.add(p);
        return p;
    }

    void forget(OpenClProgram p) {
        programs.remove(p);
    }

    /** A plain device buffer (outside hetmem's management), for {@link #runPlain}. */
    public PlainBuffer plainBuffer(long bytes) {
        checkUsable("clCreateBuffer");
        if (bytes <= 0) {
            throw new IllegalArgumentException("buffer size " + bytes + " must be positive");
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment err = a.allocate(JAVA_INT);
            MemorySegment mem = handle(cl.createBuffer, "clCreateBuffer", err, context, ClLibrary.CL_MEM_READ_WRITE, bytes, MemorySegment.NULL, err);
            return new PlainBuffer(mem, bytes);
        }
    }

    /** A buffer of this device that hetmem does not manage. */
    public final class PlainBuffer implements AutoCloseable {
        private final MemorySegment mem;
        private final long bytes;
        private boolean released;

        private PlainBuffer(MemorySegment mem, long bytes) {
            this.mem = mem;
            this.bytes = bytes;
        }

        public long byteSize() {
            return bytes;
        }

        MemorySegment handle() {
            return mem;
        }

        OpenClDevice device() {
            return OpenClDevice.this;
        }

        public void write(MemorySegment src) {
            blockingTransfer(true, src);
        }

        public void read(MemorySegment dst) {
            blockingTransfer(false, dst);
        }

        private void blockingTransfer(boolean toDevice, MemorySegment host) {
            if (host.byteSize() > bytes || !host.isNative()) {
                throw new IllegalArgumentException("host segment of " + host.byteSize() + " bytes (native: " + host.isNative()
                        + ") does not fit a native transfer to a buffer of " + bytes + " bytes");
            }
            checkUsable(toDevice ? "clEnqueueWriteBuffer" : "clEnqueueReadBuffer");
            try {
                int rc = toDevice
                        ? (int) cl.enqueueWriteBuffer.invokeExact(kernelQueue, mem, ClLibrary.CL_TRUE, 0L, host.byteSize(), host, 0,
                                MemorySegment.NULL, MemorySegment.NULL)
                        : (int) cl.enqueueReadBuffer.invokeExact(kernelQueue, mem, ClLibrary.CL_TRUE, 0L, host.byteSize(), host, 0,
                                MemorySegment.NULL, MemorySegment.NULL);
                check(toDevice ? "clEnqueueWriteBuffer" : "clEnqueueReadBuffer", rc);
            } catch (Throwable t) {
                throw rethrow(t);
            }
        }

        @Override
        public void close() {
            if (!released) {
                released = true;
                call(cl.releaseMemObject, mem);
            }
        }
    }

    /**
     * Runs a kernel of a {@link #compilePlain} program on plain buffers (its region parameters, in
     * order). Buffers may also be passed to region kernels, among the scalars.
     */
    public void runPlain(OpenClKernel kernel, long globalSize, PlainBuffer... buffers) {
        if (!kernel.program().plain() || kernel.program().device() != this) {
            throw new IllegalArgumentException("kernel " + kernel.name() + " is not from a plain program of " + name);
        }
        launchLock.lock();
        try {
            checkUsable("clEnqueueNDRangeKernel");
            try (Arena a = Arena.ofConfined()) {
                int arg = 0;
                MemorySegment k = kernel.handle();
                setMem(k, arg++, faultMem, a);
                for (PlainBuffer b : buffers) {
                    setMem(k, arg++, b.mem, a);
                }
                kernel.setScalars(arg, a);
                runAndWait(kernel, globalSize, a);
            }
        } finally {
            launchLock.unlock();
        }
    }

    @Override
    public void execute(DeviceKernel kernel, long globalSize, List<KernelBinding> arguments) {
        if (!(kernel instanceof OpenClKernel k) || k.program().device() != this || k.program().plain()) {
            throw new IllegalArgumentException("the OpenCL device " + name + " runs kernels it compiled (OpenClKernel from its compile()), not "
                    + (kernel == null ? "null" : kernel));
        }
        launchLock.lock();
        try {
            checkUsable("clEnqueueNDRangeKernel");
            try (Arena a = Arena.ofConfined()) {
                long total = 0;
                long[] firstPage = new long[arguments.size()];
                long[] pages = new long[arguments.size()];
                for (int i = 0; i < arguments.size(); i++) {
                    KernelBinding b = arguments.get(i);
                    firstPage[i] = b.va() >>> 12;
                    pages[i] = Math.ceilDiv(b.va() + b.length(), 4096L) - firstPage[i];
                    total += pages[i];
                }
                ensureTable(Math.max(1, total));
                long at = 0;
                MemorySegment kh = k.handle();
                setMem(kh, 0, tableMem, a);
                setMem(kh, 1, faultMem, a);
                for (int p = 0; p < pools.length; p++) {
                    setMem(kh, 2 + p, pools[p], a);
                }
                int arg = 2 + pools.length;
                MemorySegment window = a.allocate(JAVA_LONG, 4);
                for (int i = 0; i < arguments.size(); i++) {
                    pageTable.window(firstPage[i] << 12, pages[i], arguments.get(i).access().writes(), staging, at);
                    window.setAtIndex(JAVA_LONG, 0, at);
                    window.setAtIndex(JAVA_LONG, 1, pages[i]);
                    window.setAtIndex(JAVA_LONG, 2, arguments.get(i).va() & 4095);
                    window.setAtIndex(JAVA_LONG, 3, i);
                    setArg(kh, arg++, 32, window, "region argument " + i);
                    at += pages[i];
                }
                k.setScalars(arg, a);
                // one round trip: upload the entries, clear the fault word, run, read the fault word back;
                // the kernel queue is in order, so each command sees the previous one's result
                MemorySegment ev = a.allocate(ADDRESS, 2);
                MemorySegment report = a.allocate(16);
                try {
                    check("clEnqueueWriteBuffer", (int) cl.enqueueWriteBuffer.invokeExact(kernelQueue, tableMem, ClLibrary.CL_FALSE, 0L,
                            Math.max(1, total) * 4, staging, 0, MemorySegment.NULL, MemorySegment.NULL));
                    check("clEnqueueFillBuffer", fill(kernelQueue, faultMem, a.allocate(JAVA_INT), 0L, 64L, MemorySegment.NULL));
                    enqueueKernel(k, globalSize, ev, a);
                    int rc = (int) cl.enqueueReadBuffer.invokeExact(kernelQueue, faultMem, ClLibrary.CL_FALSE, 0L, 16L, report, 0,
                            MemorySegment.NULL, ev.asSlice(ADDRESS.byteSize()));
                    if (rc != ClLibrary.CL_SUCCESS) {
                        call(cl.finish, kernelQueue);
                        call(cl.releaseEvent, ev.get(ADDRESS, 0));
                        check("clEnqueueReadBuffer", rc);
                    }
                } catch (OpenClException e) {
                    call(cl.finish, kernelQueue);
                    throw e;
                } catch (Throwable t) {
                    throw rethrow(t);
                }
                int rc = waitForEvents(1, ev.asSlice(ADDRESS.byteSize()));
                call(cl.releaseEvent, ev.getAtIndex(ADDRESS, 1));
                kernelStatus(k, ev.get(ADDRESS, 0), a);
                check("clWaitForEvents", rc, "reading the fault word after kernel " + k.name());
                int bad = report.get(JAVA_INT, 0);
                if (bad != 0) {
                    long off = Integer.toUnsignedLong(report.get(JAVA_INT, 8)) | ((long) report.get(JAVA_INT, 12) << 32);
                    KernelBinding b = arguments.get(bad - 1);
                    throw new IndexOutOfBoundsException("kernel " + k.name() + " on " + name + " "
                            + (report.get(JAVA_INT, 4) == 1 ? "reached byte offset " + off + " of region argument " + (bad - 1)
                                    + ", outside its argument of " + b.length() + " bytes"
                                    : "wrote byte offset " + off + " of region argument " + (bad - 1) + ", which is read-only (declared "
                                            + b.access() + ")")
                            + "; the access was dropped");
                }
            }
        } finally {
            launchLock.unlock();
        }
    }

    private void ensureTable(long entries) {
        if (entries <= tableEntries) {
            return;
        }
        long n = Math.max(entries, Math.max(4096, tableEntries * 2));
        if (!tableMem.equals(MemorySegment.NULL)) {
            call(cl.releaseMemObject, tableMem);
            tableMem = MemorySegment.NULL;
            tableEntries = 0;
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment err = a.allocate(JAVA_INT);
            tableMem = handle(cl.createBuffer, "clCreateBuffer", err, context, ClLibrary.CL_MEM_READ_WRITE, n * 4, MemorySegment.NULL, err);
        }
        staging = arena.allocate(n * 4, 64);
        tableEntries = n;
    }

    private void runAndWait(OpenClKernel kernel, long globalSize, Arena a) {
        MemorySegment ev = a.allocate(ADDRESS);
        enqueueKernel(kernel, globalSize, ev, a);
        int rc = waitForEvents(1, ev);
        kernelStatus(kernel, ev.get(ADDRESS, 0), a);
        check("clWaitForEvents", rc, "kernel " + kernel.name());
    }

    private void enqueueKernel(OpenClKernel kernel, long globalSize, MemorySegment event, Arena a) {
        MemorySegment global = a.allocate(JAVA_LONG);
        global.set(JAVA_LONG, 0, globalSize);
        check("clEnqueueNDRangeKernel", call(cl.enqueueNDRangeKernel, kernelQueue, kernel.handle(), 1, MemorySegment.NULL,
                global, MemorySegment.NULL, 0, MemorySegment.NULL, event), "kernel " + kernel.name() + ", global size " + globalSize);
    }

    /** Releases a finished kernel's event; throws if the kernel failed. */
    private void kernelStatus(OpenClKernel kernel, MemorySegment event, Arena a) {
        MemorySegment status = a.allocate(JAVA_INT);
        int q = call(cl.getEventInfo, event, ClLibrary.CL_EVENT_COMMAND_EXECUTION_STATUS, 4L, status, MemorySegment.NULL);
        call(cl.releaseEvent, event);
        if (q == ClLibrary.CL_SUCCESS && status.get(JAVA_INT, 0) < 0) {
            throw new OpenClException("clEnqueueNDRangeKernel", status.get(JAVA_INT, 0), "kernel " + kernel.name() + " failed on " + name);
        }
    }

    private void setMem(MemorySegment kernel, int index, MemorySegment mem, Arena a) {
        MemorySegment v = a.allocate(ADDRESS);
        v.set(ADDRESS, 0, mem);
        setArg(kernel, index, ADDRESS.byteSize(), v, "buffer");
    }

    void setArg(MemorySegment kernel, int index, long size, MemorySegment value, String what) {
        check("clSetKernelArg", call(cl.setKernelArg, kernel, index, size, value), "argument " + index + " (" + what + ")");
    }

    private MemorySegment handle(java.lang.invoke.MethodHandle h, String call, MemorySegment err, Object... args) {
        MemorySegment out;
        try {
            out = (MemorySegment) h.invokeWithArguments(args);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        check(call, err.get(JAVA_INT, 0));
        return out;
    }

    // ---- copy engine -------------------------------------------------------------------------

    /** Transfers are enqueued by the submitter; this thread waits for their events and completes the futures. */
    private final class Waiter implements CopyEngine {
        private record Job(Transfers transfers, Arena arena, CompletableFuture<Void> done) {}

        private final LinkedBlockingQueue<Job> queue = new LinkedBlockingQueue<>();
        private final Thread thread = Thread.ofPlatform().daemon().name(name + "-copy-waiter").start(this::loop);

        @Override
        public CompletableFuture<Void> submit(CopyBatch batch, int from, int to) {
            CompletableFuture<Void> done = new CompletableFuture<>();
            Arena a = Arena.ofShared();
            Transfers t;
            try {
                t = enqueue(batch, from, to, a);
            } catch (RuntimeException e) {
                a.close();
                done.completeExceptionally(e);
                return done;
            }
            queue.add(new Job(t, a, done));
            return done;
        }

        private void loop() {
            while (true) {
                Job job;
                try {
                    job = queue.take();
                } catch (InterruptedException e) {
                    return;
                }
                if (job.transfers == null) {
                    return;
                }
                try {
                    job.transfers.await();
                    job.done.complete(null);
                } catch (Throwable e) {
                    job.done.completeExceptionally(e);
                } finally {
                    job.arena.close();
                }
            }
        }

        /** Finishes the jobs queued so far, then stops. */
        void stop() {
            queue.add(new Job(null, null, null));
            try {
                thread.join(5000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    @Override
    public void close() {
        launchLock.lock();
        try {
            if (closed) {
                return;
            }
            closed = true;
        } finally {
            launchLock.unlock();
        }
        waiter.stop();
        for (OpenClProgram p : List.copyOf(programs)) {
            p.close();
        }
        call(cl.finish, copyQueue);
        call(cl.finish, kernelQueue);
        if (!tableMem.equals(MemorySegment.NULL)) {
            call(cl.releaseMemObject, tableMem);
        }
        releaseAll(context, kernelQueue, copyQueue, faultMem);
        arena.close();
    }

    /** Releases what the constructor created, in reverse: buffers, queues, then the context. */
    private void releaseAll(MemorySegment ctx, MemorySegment kq, MemorySegment cq, MemorySegment fm) {
        for (MemorySegment p : pools) {
            if (p != null) {
                call(cl.releaseMemObject, p);
            }
        }
        if (!fm.equals(MemorySegment.NULL)) {
            call(cl.releaseMemObject, fm);
        }
        for (MemorySegment q : new MemorySegment[] {kq, cq}) {
            if (!q.equals(MemorySegment.NULL)) {
                call(cl.releaseCommandQueue, q);
            }
        }
        if (!ctx.equals(MemorySegment.NULL)) {
            call(cl.releaseContext, ctx);
        }
    }

    @Override
    public String toString() {
        return "OpenClDevice[" + name + ", " + capacity + " bytes in " + pools.length + " pool(s)]";
    }
}
