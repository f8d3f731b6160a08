package dev.hetmem.device.opencl;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.util.List;

import static dev.hetmem.device.opencl.ClLibrary.call;
import static dev.hetmem.device.opencl.ClLibrary.check;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static dev.hetmem.driver.PageGeometry.PAGE_SHIFT;
import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;

/**
 * What one {@link OpenClDevice} holds of OpenCL: the device, its context, the two command queues,
 * the pool buffers that make up the device memory hetmem manages, the fault word, and how a frame
 * number names a place in the pools. The copy engine, the launcher and the plain buffers all work
 * through it; it exists so that they share one set of handles and one notion of "usable" (not
 * closed, not lost), and so that creating and releasing the handles happens in one place.
 *
 * <p>Invariants: every handle is created by the constructor and released by {@link #release},
 * in reverse order (buffers, queues, then the context); a constructor that fails releases what it
 * made before it throws. A context and kernel queue the caller made ({@link Borrowed}) are retained
 * instead of created, and released once: hetmem's own reference goes, the caller's stays. The pools are {@code pools.length} (1 to {@link #MAX_POOLS}) buffers of
 * {@code framesPerPool} 4 KiB frames each but the last, which holds the rest of {@code capacity};
 * frame {@code f} is at byte {@code (f % framesPerPool) << 12} of pool {@code f / framesPerPool}.
 * The kernel queue is in order (a launch's upload, fault-word clear, kernel and read-back run in
 * sequence); the copy queue is out of order where the device allows it (a batch's transfers
 * overlap).
 *
 * <p>State: {@code lost} and {@code closed} only go from false to true. {@code closed} is written
 * only by {@link #markClosed}, which {@link OpenClLauncher#closeLaunches} calls under its launch
 * lock; this class takes no lock of its own.
 */
final class OpenClContext {
    /** Pool buffers are whole chunks of this size; capacities are multiples of it. */
    static final long CHUNK = 2L << 20;
    /** Room of the fault word: 16 words of report, then a scratch page plus slack for the widest element. */
    static final long FAULT_BYTES = 64 + 8192 + 128;
    static final int MAX_POOLS = 4;

    final ClLibrary cl = ClLibrary.get();
    final OpenClDeviceInfo info;
    final String name;
    /** Host memory that lives as long as the device (the launcher's page-table staging); closed by {@link #release}. */
    final Arena arena = Arena.ofShared();
    final MemorySegment device;
    final MemorySegment context;
    /** In order: launches and plain-buffer transfers. */
    final MemorySegment kernelQueue;
    /** Out of order where the device allows: the copy engine's transfers. */
    final MemorySegment copyQueue;
    final MemorySegment[] pools;
    /**
     * Per pool, the host memory it was created over where the device shares the host's memory
     * ({@link SharedPoolMemory}); all null where the pools are the device's own buffers.
     */
    private final MemorySegment[] sharedMemory;
    final long capacity;
    final int framesPerPool;
    /** Bytes a sub-buffer's origin must be a multiple of (CL_DEVICE_MEM_BASE_ADDR_ALIGN, given in bits). */
    final long baseAlignment;
    /** Bytes of local memory a work-group may have (CL_DEVICE_LOCAL_MEM_SIZE): what {@code __local} parameters may ask for together. */
    final long localMemory;
    /** The caller's context and queue, when the device runs on them; null when it made its own. */
    private final Borrowed borrowed;
    /** The word kernels report a bad access in (and its scratch page); cleared before every launch. */
    final MemorySegment faultMem;
    private volatile boolean lost;
    private volatile boolean closed;

    /**
     * Opens device {@code deviceIndex} of platform {@code platform} with {@code capacity} bytes of
     * pools (0: a quarter of its global memory), each at most {@code maxPoolBytes}.
     */
    /**
     * A context, device and in-order queue the caller made (LWJGL and JOCL hand them out as longs):
     * the device runs on them instead of making its own.
     */
    record Borrowed(long context, long device, long queue) {}

    OpenClContext(int platform, int deviceIndex, String name, long capacity, long maxPoolBytes, Borrowed borrowed,
                  boolean sharePools, boolean populate) {
        List<OpenClDeviceInfo> all = OpenClPlatforms.devices();
        if (all.isEmpty()) {
            throw new OpenClUnavailableException(OpenClPlatforms.unavailableReason());
        }
        this.borrowed = borrowed;
        int[] where = borrowed == null ? new int[] {platform, deviceIndex} : locate(cl, borrowed.device());
        this.info = all.stream().filter(d -> d.platform() == where[0] && d.index() == where[1]).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("no OpenCL device " + where[1] + " on platform " + where[0]
                        + "; found: " + all.stream().map(d -> d.platform() + "/" + d.index() + " " + d.name()).toList()));
        this.name = name != null ? name : "opencl:" + info.name();
        long maxPool = Math.min(maxPoolBytes, info.maxAllocation()) / CHUNK * CHUNK;
        long want = capacity > 0 ? capacity : Math.max(CHUNK, info.globalMemory() / 4 / CHUNK * CHUNK);
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
        if ((poolBytes >>> PAGE_SHIFT) >= (1L << 28)) {
            throw new IllegalArgumentException("pool buffers of " + poolBytes + " bytes exceed the page table's 1 TiB per pool");
        }
        this.framesPerPool = (int) (poolBytes >>> PAGE_SHIFT);
        this.capacity = want;
        this.pools = new MemorySegment[poolCount];
        this.sharedMemory = new MemorySegment[poolCount];
        MemorySegment ctx = MemorySegment.NULL;
        MemorySegment kq = MemorySegment.NULL;
        MemorySegment cq = MemorySegment.NULL;
        MemorySegment fm = MemorySegment.NULL;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment platformId = OpenClPlatforms.platforms(cl, a)[info.platform()];
            this.device = OpenClPlatforms.devices(cl, a, platformId)[info.index()];
            this.baseAlignment = Math.max(1, OpenClPlatforms.deviceInt(cl, device, ClLibrary.CL_DEVICE_MEM_BASE_ADDR_ALIGN) / 8);
            this.localMemory = OpenClPlatforms.deviceLong(cl, device, ClLibrary.CL_DEVICE_LOCAL_MEM_SIZE);
            MemorySegment err = a.allocate(JAVA_INT);
            MemorySegment devs = a.allocate(ADDRESS);
            devs.set(ADDRESS, 0, device);
            if (borrowed == null) {
                ctx = handle(cl.createContext, "clCreateContext", err, MemorySegment.NULL, 1, devs, MemorySegment.NULL, MemorySegment.NULL, err);
                kq = handle(cl.createCommandQueue, "clCreateCommandQueue", err, ctx, device, 0L, err);
            } else {
                MemorySegment c = MemorySegment.ofAddress(borrowed.context());
                MemorySegment q = MemorySegment.ofAddress(borrowed.queue());
                checkBorrowedQueue(c, q, a);
                check("clRetainContext", call(cl.retainContext, c));
                ctx = c;
                check("clRetainCommandQueue", call(cl.retainCommandQueue, q));
                kq = q;
            }
            long props = OpenClPlatforms.deviceLong(cl, device, ClLibrary.CL_DEVICE_QUEUE_PROPERTIES);
            long outOfOrder = props & ClLibrary.CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE;
            cq = handle(cl.createCommandQueue, "clCreateCommandQueue", err, ctx, device, outOfOrder, err);
            // a CPU device with the host's memory may use a buffer's host memory as its own: pools there
            // let pages move by CPU copies that run while kernels do (SharedPoolMemory); the first pool
            // is probed, and where the device does not work in place the pools are its own buffers
            boolean share = sharePools && info.type().equals("CPU") && reportsUnifiedMemory(cl, device);
            for (int p = 0; p < poolCount; p++) {
                long bytes = p < poolCount - 1 ? poolBytes : want - poolBytes * (poolCount - 1);
                if (share) {
                    sharedMemory[p] = SharedPoolMemory.map(bytes).reinterpret(bytes, poolMemory, null);
                    pools[p] = handle(cl.createBuffer, "clCreateBuffer", err, ctx,
                            ClLibrary.CL_MEM_READ_WRITE | ClLibrary.CL_MEM_USE_HOST_PTR, bytes, sharedMemory[p], err);
                    if (p == 0 && !worksInPlace(kq, pools[0], sharedMemory[0], a)) {
                        call(cl.releaseMemObject, pools[0]);
                        pools[0] = null;
                        SharedPoolMemory.unmap(sharedMemory[0]);
                        sharedMemory[0] = null;
                        share = false;
                        p--;   // made again as the device's own buffer
                        continue;
                    }
                } else {
                    pools[p] = handle(cl.createBuffer, "clCreateBuffer", err, ctx, ClLibrary.CL_MEM_READ_WRITE, bytes,
                            MemorySegment.NULL, err);
                }
                if (populate) {
                    // the whole pool backed now, as a discrete device's memory is before its first use
                    fillBlocking(kq, pools[p], 0, bytes, a);
                } else {
                    // implementations allocate lazily: touch both ends now so a pool that cannot be had fails here, by name
                    fillBlocking(kq, pools[p], 0, PAGE_BYTES, a);
                    fillBlocking(kq, pools[p], bytes - PAGE_BYTES, PAGE_BYTES, a);
                }
            }
            fm = handle(cl.createBuffer, "clCreateBuffer", err, ctx, ClLibrary.CL_MEM_READ_WRITE, FAULT_BYTES, MemorySegment.NULL, err);
        } catch (RuntimeException | Error e) {
            releaseAll(ctx, kq, cq, fm);
            unmapShared();
            arena.close();
            throw e;
        }
        this.context = ctx;
        this.kernelQueue = kq;
        this.copyQueue = cq;
        this.faultMem = fm;
    }

    /** {platform, index} of the device whose handle is {@code device}; refuses a handle of no platform here. */
    private static int[] locate(ClLibrary cl, long device) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment[] platforms = OpenClPlatforms.platforms(cl, a);
            for (int p = 0; p < platforms.length; p++) {
                MemorySegment[] devices = OpenClPlatforms.devices(cl, a, platforms[p]);
                for (int d = 0; d < devices.length; d++) {
                    if (devices[d].address() == device) {
                        return new int[] {p, d};
                    }
                }
            }
        }
        throw new IllegalArgumentException("device handle 0x" + Long.toHexString(device) + " is not a device of any OpenCL "
                + "platform here (sub-devices are not supported)");
    }

    /** The caller's queue must belong to its context and device, and run commands in order (launches rely on it). */
    private void checkBorrowedQueue(MemorySegment context, MemorySegment queue, Arena a) {
        MemorySegment v = a.allocate(JAVA_LONG);
        check("clGetCommandQueueInfo", call(cl.getCommandQueueInfo, queue, ClLibrary.CL_QUEUE_CONTEXT, 8L, v, MemorySegment.NULL),
                "the queue handed in (0x" + Long.toHexString(queue.address()) + ")");
        if (v.get(JAVA_LONG, 0) != context.address()) {
            throw new IllegalArgumentException("the queue handed in belongs to context 0x" + Long.toHexString(v.get(JAVA_LONG, 0))
                    + ", not to the context handed in (0x" + Long.toHexString(context.address()) + ")");
        }
        check("clGetCommandQueueInfo", call(cl.getCommandQueueInfo, queue, ClLibrary.CL_QUEUE_DEVICE, 8L, v, MemorySegment.NULL));
        if (v.get(JAVA_LONG, 0) != device.address()) {
            throw new IllegalArgumentException("the queue handed in runs on device 0x" + Long.toHexString(v.get(JAVA_LONG, 0))
                    + ", not on the device handed in (0x" + Long.toHexString(device.address()) + ")");
        }
        v.set(JAVA_LONG, 0, 0);
        check("clGetCommandQueueInfo", call(cl.getCommandQueueInfo, queue, ClLibrary.CL_QUEUE_PROPERTIES, 8L, v, MemorySegment.NULL));
        if ((v.get(JAVA_LONG, 0) & ClLibrary.CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE) != 0) {
            throw new IllegalArgumentException("the queue handed in runs commands out of order; hetmem launches need an "
                    + "in-order queue (create it without CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE)");
        }
    }

    // ---- usability ----------------------------------------------------------------------------

    /** Throws unless the device is open and not lost; {@code call} names the OpenCL call refused. */
    void checkUsable(String call) {
        if (closed) {
            throw new IllegalStateException("OpenCL device " + name + " is closed");
        }
        if (lost) {
            throw new OpenClException(call, ClLibrary.CL_DEVICE_NOT_AVAILABLE, name + " was lost");
        }
    }

    boolean lost() {
        return lost;
    }

    void lose() {
        lost = true;
    }

    /** Sets {@code closed}; false if it already was. Called only under the launcher's launch lock. */
    boolean markClosed() {
        if (closed) {
            return false;
        }
        closed = true;
        return true;
    }

    // ---- frame addressing ---------------------------------------------------------------------

    /** Whether frames [frame, frame + pages) lie inside the device memory. */
    boolean holds(int frame, int pages) {
        return !(frame < 0 || ((long) frame + pages) << PAGE_SHIFT > capacity);
    }

    /** The pool that holds {@code frame}. */
    int pool(int frame) {
        return frame / framesPerPool;
    }

    /** Byte offset of {@code frame} within its pool. */
    long poolOffset(int frame) {
        return (long) (frame % framesPerPool) << PAGE_SHIFT;
    }

    /** How many of {@code pages} frames from {@code frame} lie in {@code frame}'s pool. */
    int runInPool(int frame, int pages) {
        return Math.min(pages, framesPerPool - frame % framesPerPool);
    }

    /** The device page-table entry ({@link DevicePageTable}'s format) that maps a page to {@code frame}. */
    int pageTableEntry(int frame, boolean writable) {
        return ((frame % framesPerPool) << 4) | ((frame / framesPerPool) << 2) | DevicePageTable.PRESENT
                | (writable ? DevicePageTable.WRITABLE : 0);
    }

    /** The frame a present page-table entry names. */
    long frameOf(int entry) {
        return (long) ((entry >>> 2) & 3) * framesPerPool + (entry >>> 4);
    }

    // ---- OpenCL helpers -----------------------------------------------------------------------

    /** A new read-write buffer of {@code bytes} in this context. */
    MemorySegment createBuffer(long bytes) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment err = a.allocate(JAVA_INT);
            return handle(cl.createBuffer, "clCreateBuffer", err, context, ClLibrary.CL_MEM_READ_WRITE, bytes, MemorySegment.NULL, err);
        }
    }

    /** Calls a create function that reports through {@code err}; throws naming {@code call} if it failed. */
    MemorySegment handle(MethodHandle h, String call, MemorySegment err, Object... args) {
        MemorySegment out;
        try {
            out = (MemorySegment) h.invokeWithArguments(args);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        check(call, err.get(JAVA_INT, 0));
        return out;
    }

    /**
     * Enqueues a fill of [offset, offset+bytes) of {@code mem} with {@code pattern}, whose size (a power
     * of two up to 128 bytes) both must be multiples of. Pages are zeroed with {@link #zeroPattern}:
     * PoCL fills pattern by pattern, and 4 MiB took 0.61 ms with a 4-byte pattern against 0.12 ms with
     * a 128-byte one (C, this machine, median of 20).
     */
    int fill(MemorySegment queue, MemorySegment mem, MemorySegment pattern, long offset, long bytes, MemorySegment event) {
        try {
            return (int) cl.enqueueFillBuffer.invokeExact(queue, mem, pattern, pattern.byteSize(), offset, bytes, 0,
                    MemorySegment.NULL, event);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    private void fillBlocking(MemorySegment queue, MemorySegment mem, long offset, long bytes, Arena a) {
        MemorySegment ev = a.allocate(ADDRESS);
        check("clEnqueueFillBuffer", fill(queue, mem, zeroPattern(a), offset, bytes, ev));
        int rc = waitForEvents(1, ev);
        call(cl.releaseEvent, ev.get(ADDRESS, 0));
        check("clWaitForEvents", rc, "filling " + bytes + " bytes of a pool buffer");
    }

    /** The largest fill pattern OpenCL allows, zeros: what whole pages are zeroed with. */
    static MemorySegment zeroPattern(Arena a) {
        return a.allocate(ZERO_PATTERN_BYTES);   // an arena's allocations are zeroed
    }

    /** OpenCL's largest fill pattern: a page (and a pool's offset of one) is a multiple of it. */
    static final long ZERO_PATTERN_BYTES = 128;

    int waitForEvents(int n, MemorySegment events) {
        try {
            return (int) cl.waitForEvents.invokeExact(n, events);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) {
            return r;
        }
        if (t instanceof Error e) {
            throw e;
        }
        return new IllegalStateException(t);
    }

    // ---- release ------------------------------------------------------------------------------

    /** Waits for both queues to drain: copy queue first, then kernel queue. */
    void finishQueues() {
        call(cl.finish, copyQueue);
        call(cl.finish, kernelQueue);
    }

    /** Releases every handle and the arena; the last step of closing the device. */
    void release() {
        releaseAll(context, kernelQueue, copyQueue, faultMem);
        unmapShared();   // after the buffers over it are released
        arena.close();
    }

    /**
     * The pools' shared memory, as segments of this arena: closed before the memory is unmapped, so
     * that a copy racing the device's close fails on the closed segment instead of touching
     * unmapped memory (a close while copies run breaks the driver's contract, but must not crash
     * the JVM).
     */
    private final Arena poolMemory = Arena.ofShared();

    /** Whether the pools live in host memory the device shares ({@link SharedPoolMemory}). */
    boolean shared() {
        return sharedMemory[0] != null;
    }

    /** CL_DEVICE_HOST_UNIFIED_MEMORY (deprecated since OpenCL 2.0): a device that cannot say is taken as not sharing. */
    private static boolean reportsUnifiedMemory(ClLibrary cl, MemorySegment device) {
        try {
            return OpenClPlatforms.deviceInt(cl, device, ClLibrary.CL_DEVICE_HOST_UNIFIED_MEMORY) != 0;
        } catch (RuntimeException e) {
            return false;
        }
    }

    /**
     * Whether the device reads and writes {@code memory}, the host memory {@code pool} was created
     * over, in place: a fill by the device shows in the memory, and a store to the memory shows in a
     * read by the device. OpenCL allows an implementation to cache a buffer's host memory instead;
     * such a device gets pools of its own.
     */
    private boolean worksInPlace(MemorySegment queue, MemorySegment pool, MemorySegment memory, Arena a) {
        MemorySegment pattern = a.allocate(ZERO_PATTERN_BYTES);
        pattern.fill((byte) 0x5A);
        MemorySegment ev = a.allocate(ADDRESS);
        check("clEnqueueFillBuffer", fill(queue, pool, pattern, 0, PAGE_BYTES, ev));
        int rc = waitForEvents(1, ev);
        call(cl.releaseEvent, ev.get(ADDRESS, 0));
        check("clWaitForEvents", rc, "probing a pool buffer over host memory");
        boolean deviceToHost = memory.get(JAVA_LONG, 0) == 0x5A5A5A5A5A5A5A5AL && memory.get(JAVA_LONG, PAGE_BYTES - 8) == 0x5A5A5A5A5A5A5A5AL;
        memory.set(JAVA_LONG, 64, 0x0123456789ABCDEFL);
        MemorySegment back = a.allocate(JAVA_LONG);
        try {
            check("clEnqueueReadBuffer", (int) cl.enqueueReadBuffer.invokeExact(queue, pool, ClLibrary.CL_TRUE, 64L, 8L, back, 0,
                    MemorySegment.NULL, MemorySegment.NULL));
        } catch (Throwable t) {
            throw rethrow(t);
        }
        memory.asSlice(0, PAGE_BYTES).fill((byte) 0);
        return deviceToHost && back.get(JAVA_LONG, 0) == 0x0123456789ABCDEFL;
    }

    /** The shared host memory of frames [frame, frame+pages), which must lie in one pool; only where {@link #shared()}. */
    MemorySegment sharedFrames(int frame, int pages) {
        return sharedMemory[pool(frame)].asSlice(poolOffset(frame), (long) pages << PAGE_SHIFT);
    }

    private void unmapShared() {
        try {
            poolMemory.close();
        } catch (IllegalStateException e) {
            // a copy still runs on it: the memory stays mapped (leaked) rather than be taken from under it
            System.getLogger(OpenClContext.class.getName()).log(System.Logger.Level.WARNING,
                    name + ": pool memory still in use at close; left mapped", e);
            return;
        }
        for (int p = 0; p < sharedMemory.length; p++) {
            if (sharedMemory[p] != null) {
                // once: by release, or by a constructor that fails (the segment is closed; its address stays)
                SharedPoolMemory.unmap(MemorySegment.ofAddress(sharedMemory[p].address()).reinterpret(sharedMemory[p].byteSize()));
            }
        }
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
}
