package dev.hetmem.device.opencl;

import dev.hetmem.driver.DeviceFaultException;

import dev.hetmem.driver.KernelBinding;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.concurrent.locks.ReentrantLock;

import static dev.hetmem.device.opencl.ClLibrary.call;
import static dev.hetmem.device.opencl.ClLibrary.check;
import static dev.hetmem.device.opencl.OpenClContext.rethrow;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static dev.hetmem.driver.PageGeometry.PAGE_SHIFT;
import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;

/**
 * Runs kernels on the OpenCL device: binds a launch's arguments (the device page table, the fault
 * word, the pools, one window of page-table entries per region argument, then the kernel's
 * scalars), uploads the entries of the pages the region arguments' windows cover (a tile's declared
 * pages, else all of the argument) from the host mirror ({@link DevicePageTable}), runs the kernel on the context's in-order kernel queue, and reads the
 * fault word back to turn a kernel's out-of-bounds or read-only access into an exception. Also
 * runs kernels of plain programs on plain buffers ({@link PlainBuffers}). Kept apart from the
 * driver because launches have state of their own (the device-side table) and a lock of their own.
 *
 * <p>Kernel argument layout of a region program: 0 the page table, 1 the fault word, 2 .. 2+P-1
 * the P pools, then a 32-byte window per region argument (where page p's entry is, its declared
 * pages, byte offset in its first page, argument index and length: hetmem.h's HM_REGION), then the
 * scalars. Of a plain program: 0 the fault word, then the
 * buffers, then the scalars.
 *
 * <p>Locks: {@code launchLock} (lock L4, docs/design.md, lock table) serialises launches, which share the device-side page table, its
 * staging copy and the fault word; {@link #closeLaunches} takes it too, so that closing waits for
 * a launch in progress and no launch starts after, and so does {@link #whileNoLaunch}, under which
 * a program or a plain buffer releases its OpenCL objects, and is created (so that the device's
 * context is not released under the creating call). Nothing under it calls into the core;
 * the one lock taken under it is a plain buffer's (L27: a launch binding it), and a program's
 * monitor (L27 too) is taken before it, never under it (the device's monitor is never taken under
 * it, nor it under that).
 */
final class OpenClLauncher {
    private final OpenClContext ctx;
    private final ClLibrary cl;
    private final DevicePageTable pageTable;
    /** Serialises launches and the closing of the device; a leaf lock (see the class comment). */
    private final ReentrantLock launchLock = new ReentrantLock();
    // guarded by launchLock: the device-side page table and its host staging copy, both of tableEntries
    // 4-byte entries (0 and NULL before the first launch); they only grow
    private MemorySegment tableMem = MemorySegment.NULL;
    private long tableEntries;
    private MemorySegment staging = MemorySegment.NULL;
    /** Sub-buffers of plain arguments, kept for the next launch over the same frames (guarded by launchLock). */
    private final SubBuffers subBuffers;

    OpenClLauncher(OpenClContext ctx, DevicePageTable pageTable) {
        this.ctx = ctx;
        this.cl = ctx.cl;
        this.pageTable = pageTable;
        this.subBuffers = new SubBuffers(ctx.cl);
    }

    /**
     * Runs region kernel {@code k} (already checked to be of this device) over {@code globalSize}
     * work items with {@code arguments} as its region arguments; throws
     * {@link DeviceFaultException} if it reached outside an argument or wrote a read-only one.
     */
    void execute(OpenClKernel k, long globalSize, List<KernelBinding> arguments) {
        execute(k, 0, globalSize, arguments);
    }

    /** Work items [globalOffset, globalOffset + globalSize) (one tile of a tiled launch; ids stay global). */
    void execute(OpenClKernel k, long globalOffset, long globalSize, List<KernelBinding> arguments) {
        KernelSignature sig = k.signature();
        sig.check(k.name(), arguments.size());
        launchLock.lock();
        boolean open = false;   // the device was open under this lock: close() releases the sub-buffers only after it
        try {
            ctx.checkUsable("clEnqueueNDRangeKernel");
            open = true;
            k.program().checkOpen(k.name());   // its close releases the kernel under this lock
            try (Arena a = Arena.ofConfined()) {
                MemorySegment kh = k.handle();
                if (!sig.translated()) {
                    // plain arguments and scalars only: no page table (and a fault word nothing writes)
                    if (sig.hidden() == 1) {
                        setMem(kh, 0, ctx.faultMem, a);
                    }
                    bindParameters(k, sig, arguments, null, a);
                    runAndWait(k, globalOffset, globalSize, a);
                    return;
                }
                long total = 0;
                long[] firstPage = new long[arguments.size()];
                // the pages [windowFirst, windowEnd) of each argument (from its first page) that its items
                // declared they touch (a tile of a tiled launch; all of it otherwise): only their entries are
                // uploaded, and hetmem.h refuses an access outside them. The others may be mapped still,
                // unpinned, and their frames freed and reused while the kernel runs (the next tile's prefetch
                // evicts them), so an access there must fault, not reach whatever the frame holds then
                long[] windowFirst = new long[arguments.size()];
                long[] windowEnd = new long[arguments.size()];
                for (int i = 0; i < arguments.size(); i++) {
                    if (sig.plain(i)) {
                        continue;   // reached by a pointer: no page-table window
                    }
                    if (arguments.get(i).length() >= 1L << 48 || i > 0xFFFF) {
                        // the window carries both in one long (hetmem.h: HM_POSITION, HM_LENGTH)
                        throw new IllegalArgumentException("region argument " + i + " of kernel " + k.name() + " has "
                                + arguments.get(i).length() + " bytes; a translated argument reaches at most 2^48 bytes, "
                                + "and a kernel at most 65536 of them");
                    }
                    KernelBinding b = arguments.get(i);
                    firstPage[i] = b.va() >>> PAGE_SHIFT;
                    long inPage = b.va() & (PAGE_BYTES - 1);
                    windowFirst[i] = (inPage + b.windowFrom()) >>> PAGE_SHIFT;
                    windowEnd[i] = b.windowTo() > b.windowFrom() ? Math.ceilDiv(inPage + b.windowTo(), PAGE_BYTES) : windowFirst[i];
                    if (windowEnd[i] - windowFirst[i] >= 1L << 32 || windowEnd[i] >= 1L << 32) {
                        throw new IllegalArgumentException("region argument " + i + " of kernel " + k.name() + " declares a window of "
                                + (windowEnd[i] - windowFirst[i]) + " pages ending at page " + windowEnd[i]
                                + "; a translated argument's window ends before page 2^32");
                    }
                    total += windowEnd[i] - windowFirst[i];
                }
                ensureTable(Math.max(1, total));
                setMem(kh, 0, tableMem, a);
                setMem(kh, 1, ctx.faultMem, a);
                for (int p = 0; p < ctx.pools.length; p++) {
                    setMem(kh, 2 + p, ctx.pools[p], a);
                }
                long[] windowAt = new long[arguments.size()];
                long at = 0;
                for (int i = 0; i < arguments.size(); i++) {
                    if (!sig.plain(i)) {
                        long n = windowEnd[i] - windowFirst[i];
                        pageTable.window((firstPage[i] + windowFirst[i]) << PAGE_SHIFT, n, arguments.get(i).access().writes(),
                                staging, at);
                        windowAt[i] = at - windowFirst[i];   // the entry of page p (from the argument's first) at x + p
                        at += n;
                    }
                }
                bindParameters(k, sig, arguments, (i, arg) -> {
                    MemorySegment window = a.allocate(JAVA_LONG, 4);
                    window.setAtIndex(JAVA_LONG, 0, windowAt[i]);
                    window.setAtIndex(JAVA_LONG, 1, windowFirst[i] | windowEnd[i] << 32);   // hetmem.h: HM_WINDOW_FIRST, _END
                    window.setAtIndex(JAVA_LONG, 2, arguments.get(i).va() & (PAGE_BYTES - 1));
                    window.setAtIndex(JAVA_LONG, 3, i | (arguments.get(i).length() << 16));   // hetmem.h: HM_POSITION, HM_LENGTH
                    setArg(cl, kh, arg, 32, window, "region argument " + i);
                }, a);
                // one round trip: upload the entries, clear the fault word, run, read the fault word back;
                // the kernel queue is in order, so each command sees the previous one's result
                MemorySegment ev = a.allocate(ADDRESS, 2);
                MemorySegment report = a.allocate(16);
                try {
                    check("clEnqueueWriteBuffer", (int) cl.enqueueWriteBuffer.invokeExact(ctx.kernelQueue, tableMem, ClLibrary.CL_FALSE, 0L,
                            Math.max(1, total) * 4, staging, 0, MemorySegment.NULL, MemorySegment.NULL));
                    check("clEnqueueFillBuffer", ctx.fill(ctx.kernelQueue, ctx.faultMem, a.allocate(JAVA_INT), 0L, 64L, MemorySegment.NULL));
                    enqueueKernel(k, globalOffset, globalSize, ev, a);
                    int rc = (int) cl.enqueueReadBuffer.invokeExact(ctx.kernelQueue, ctx.faultMem, ClLibrary.CL_FALSE, 0L, 16L, report, 0,
                            MemorySegment.NULL, ev.asSlice(ADDRESS.byteSize()));
                    if (rc != ClLibrary.CL_SUCCESS) {
                        call(cl.finish, ctx.kernelQueue);
                        call(cl.releaseEvent, ev.get(ADDRESS, 0));
                        check("clEnqueueReadBuffer", rc);
                    }
                } catch (OpenClException e) {
                    call(cl.finish, ctx.kernelQueue);
                    throw e;
                } catch (Throwable t) {
                    throw rethrow(t);
                }
                int rc = ctx.waitForEvents(1, ev.asSlice(ADDRESS.byteSize()));
                if (rc != ClLibrary.CL_SUCCESS) {
                    // a failed wait need not mean the commands ended (only an error status of an event in
                    // the list says so): the queue is finished before this arena frees the read's target
                    call(cl.finish, ctx.kernelQueue);
                }
                call(cl.releaseEvent, ev.getAtIndex(ADDRESS, 1));
                kernelStatus(k, ev.get(ADDRESS, 0), a);
                check("clWaitForEvents", rc, "reading the fault word after kernel " + k.name());
                int bad = report.get(JAVA_INT, 0);
                if (bad != 0) {
                    long off = Integer.toUnsignedLong(report.get(JAVA_INT, 8)) | ((long) report.get(JAVA_INT, 12) << 32);
                    KernelBinding b = arguments.get(bad - 1);
                    throw new DeviceFaultException("kernel " + k.name() + " on " + ctx.name + " "
                            + switch (report.get(JAVA_INT, 4)) {
                                case 1 -> "reached byte offset " + off + " of region argument " + (bad - 1)
                                        + ", outside its argument of " + b.length() + " bytes";
                                case 3 -> "reached byte offset " + off + " of region argument " + (bad - 1)
                                        + ", outside the bytes [" + b.windowFrom() + ", " + b.windowTo() + ") its work items "
                                        + "declared (KernelArg.perItem) for this tile";
                                default -> "wrote byte offset " + off + " of region argument " + (bad - 1) + ", which is "
                                        + "read-only (declared " + b.access() + ")";
                            }
                            + "; the access was dropped");
                }
            }
        } finally {
            try {
                if (open) {
                    subBuffers.trim();   // the launch has ended: none of its sub-buffers is an argument of a running kernel
                }
            } finally {
                launchLock.unlock();
            }
        }
    }

    /** Sets a translated argument's window: region argument {@code index} into parameter {@code param}. */
    @FunctionalInterface
    private interface WindowSetter {
        void set(int index, int param);
    }

    /**
     * Fills the kernel's own parameters (after the hidden ones) in source order: region arguments
     * into their slots (plain ones as sub-buffers, translated ones by {@code windows}), scalars
     * into the rest.
     */
    private void bindParameters(OpenClKernel k, KernelSignature sig, List<KernelBinding> arguments, WindowSetter windows,
                                Arena a) {
        if (!sig.known()) {
            // no argument information: region arguments right after the hidden parameters, then the scalars
            int arg = sig.hidden();
            for (int i = 0; i < arguments.size(); i++) {
                windows.set(i, arg++);
            }
            k.setScalars(arg, a);
            return;
        }
        int scalar = 0;
        for (int param = sig.hidden(); param < sig.params().size(); param++) {
            int i = sig.argumentAt(param, arguments.size());
            if (i >= 0 && sig.plain(i)) {
                setMem(k.handle(), param, plainBuffer(k, i, arguments.get(i), a), a);
            } else if (i >= 0) {
                windows.set(i, param);
            } else if (sig.translated() && sig.isRegionSlot(param)) {
                // an HM_REGION the launch gave no region for: a value there would be taken as a region's
                // descriptor (its page-table index and length chosen by the caller), reaching other frames
                throw new IllegalArgumentException("kernel " + k.name() + ": parameter '" + sig.params().get(param).name()
                        + "' (ulong4, an HM_REGION in a kernel that uses hetmem.h) takes a region argument; the launch gave "
                        + arguments.size() + " region argument(s) for " + sig.slots().length + " such parameter(s)");
            } else if (scalar < k.scalarCount()) {
                k.setScalar(param, scalar++, a);
            } else {
                throw new IllegalArgumentException("kernel " + k.name() + " takes " + (sig.params().size() - sig.hidden()
                        - Math.min(arguments.size(), sig.slots().length)) + " scalar(s) besides its " + arguments.size()
                        + " region argument(s); given " + k.scalarCount() + " (parameter '" + sig.params().get(param).name()
                        + "' has none)");
            }
        }
        if (scalar < k.scalarCount()) {
            throw new IllegalArgumentException("kernel " + k.name() + " takes " + scalar + " scalar(s) besides its "
                    + arguments.size() + " region argument(s); given " + k.scalarCount());
        }
    }

    /**
     * A sub-buffer of the pool over a plain argument's bytes (NULL for an empty one). The core placed
     * its pages in consecutive frames of one pool and pinned them; checked here page by page, since a
     * plain pointer would otherwise reach other pages' memory.
     */
    private MemorySegment plainBuffer(OpenClKernel k, int index, KernelBinding b, Arena a) {
        if (b.length() == 0) {
            return MemorySegment.NULL;
        }
        long first = b.va() & -PAGE_BYTES;
        int frame0 = -1;
        if (b.firstFrame() >= 0) {
            // bound by frame (bindsPlainArgumentsByFrame): the core read the frames under the launch's pins
            // and checked them consecutive; the page table may already name others for a later launch
            long pages = Math.ceilDiv(b.va() + b.length() - first, PAGE_BYTES);
            long last = b.firstFrame() + pages - 1;
            if (last >= (long) ctx.framesPerPool * ctx.pools.length || ctx.pool((int) b.firstFrame()) != ctx.pool((int) last)) {
                throw new IllegalStateException("plain argument " + index + " of kernel " + k.name() + ": frames ["
                        + b.firstFrame() + ", " + (last + 1) + ") are not within one pool of " + ctx.name);
            }
            frame0 = (int) b.firstFrame();
        } else {
            for (long va = first; va < b.va() + b.length(); va += PAGE_BYTES) {
                int e = pageTable.entry(va);
                if ((e & DevicePageTable.PRESENT) == 0 || (b.access().writes() && (e & DevicePageTable.WRITABLE) == 0)) {
                    throw new IllegalStateException("plain argument " + index + " of kernel " + k.name() + ": page at 0x"
                            + Long.toHexString(va) + " is not mapped" + (b.access().writes() ? " writable" : "") + " on " + ctx.name);
                }
                int f = (int) ctx.frameOf(e);
                if (frame0 < 0) {
                    frame0 = f;
                } else if (f != frame0 + (int) ((va - first) >>> PAGE_SHIFT) || ctx.pool(f) != ctx.pool(frame0)) {
                    throw new IllegalStateException("plain argument " + index + " of kernel " + k.name() + ": page at 0x"
                            + Long.toHexString(va) + " is not in the frame after the previous page's, in one pool");
                }
            }
        }
        long origin = ctx.poolOffset(frame0) + (b.va() - first);
        if (origin % ctx.baseAlignment != 0) {
            throw new IllegalArgumentException("plain argument " + index + " of kernel " + k.name() + " starts at byte "
                    + (b.va() - first) + " of its page; " + ctx.name + " passes buffers only from multiples of "
                    + ctx.baseAlignment + " bytes (CL_DEVICE_MEM_BASE_ADDR_ALIGN): start the argument at such an offset");
        }
        int base = frame0;
        // read arguments say so (CL_MEM_READ_ONLY); whether a kernel still writes one is up to the platform
        long flags = b.access().writes() ? 0L : ClLibrary.CL_MEM_READ_ONLY;
        return subBuffers.get(ctx.pool(base), origin, b.length(), flags, () -> createSubBuffer(k, index, base, origin, flags, b, a));
    }

    /** A new sub-buffer of {@code frame0}'s pool: {@code b.length()} bytes from byte {@code origin}. */
    private MemorySegment createSubBuffer(OpenClKernel k, int index, int frame0, long origin, long flags, KernelBinding b,
                                          Arena a) {
        MemorySegment region = a.allocate(JAVA_LONG, 2);
        region.setAtIndex(JAVA_LONG, 0, origin);
        region.setAtIndex(JAVA_LONG, 1, b.length());
        MemorySegment err = a.allocate(JAVA_INT);
        MemorySegment sub;
        try {
            sub = (MemorySegment) cl.createSubBuffer.invokeExact(ctx.pools[ctx.pool(frame0)], flags,
                    ClLibrary.CL_BUFFER_CREATE_TYPE_REGION, region, err);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        check("clCreateSubBuffer", err.get(JAVA_INT, 0), "plain argument " + index + " of kernel " + k.name() + ": "
                + b.length() + " bytes from byte " + origin + " of pool " + ctx.pool(frame0));
        return sub;
    }

    /**
     * Runs {@code kernel} (already checked to be of this device and not translated) with
     * {@code buffers} in its buffer parameters, in order, and its scalars in the rest; waits for it.
     */
    void runPlain(OpenClKernel kernel, long globalSize, OpenClDevice.PlainBuffer[] buffers) {
        launchLock.lock();
        try {
            ctx.checkUsable("clEnqueueNDRangeKernel");
            kernel.program().checkOpen(kernel.name());   // its close releases the kernel under this lock
            try (Arena a = Arena.ofConfined()) {
                MemorySegment k = kernel.handle();
                KernelSignature sig = kernel.signature();
                if (!sig.known()) {
                    // no argument information: the fault word, the buffers, then the scalars
                    int arg = 0;
                    setMem(k, arg++, ctx.faultMem, a);
                    for (OpenClDevice.PlainBuffer b : buffers) {
                        setMem(k, arg++, ((PlainBuffers.Buffer) b).liveHandle(), a);   // the only implementation (sealed)
                    }
                    kernel.setScalars(arg, a);
                } else {
                    if (sig.hidden() == 1) {
                        setMem(k, 0, ctx.faultMem, a);
                    }
                    sig.check(kernel.name(), buffers.length);
                    int scalar = 0;
                    for (int param = sig.hidden(); param < sig.params().size(); param++) {
                        int i = sig.argumentAt(param, buffers.length);
                        if (i >= 0) {
                            setMem(k, param, ((PlainBuffers.Buffer) buffers[i]).liveHandle(), a);
                        } else if (scalar < kernel.scalarCount()) {
                            kernel.setScalar(param, scalar++, a);
                        } else {
                            throw new IllegalArgumentException("kernel " + kernel.name() + ": parameter '"
                                    + sig.params().get(param).name() + "' has no buffer or scalar (given " + buffers.length
                                    + " buffer(s), " + kernel.scalarCount() + " scalar(s))");
                        }
                    }
                    if (scalar < kernel.scalarCount()) {
                        throw new IllegalArgumentException("kernel " + kernel.name() + " takes " + scalar + " scalar(s) besides its "
                                + buffers.length + " buffer(s); given " + kernel.scalarCount());
                    }
                }
                runAndWait(kernel, globalSize, a);
            }
        } finally {
            launchLock.unlock();
        }
    }

    /**
     * Runs {@code release} under the launch lock: after the launch in progress, before the next. A
     * program's or a plain buffer's close releases its OpenCL objects so, never under a kernel using them;
     * their creation runs so too, never after the device's close has marked it closed.
     */
    void whileNoLaunch(Runnable release) {
        launchLock.lock();
        try {
            release.run();
        } finally {
            launchLock.unlock();
        }
    }

    /**
     * Marks the device closed under the launch lock: a launch in progress finishes first and none
     * starts after. False if it was closed already.
     */
    boolean closeLaunches() {
        launchLock.lock();
        try {
            return ctx.markClosed();
        } finally {
            launchLock.unlock();
        }
    }

    /**
     * Releases the device-side page table. Called once by close, after {@link #closeLaunches}
     * (so no launch can reach the table any more, and the lock's hand-over made its fields
     * visible here) and after the kernel queue has drained.
     */
    void release() {
        subBuffers.releaseAll();
        if (!tableMem.equals(MemorySegment.NULL)) {
            call(cl.releaseMemObject, tableMem);
        }
    }

    /** Grows the device-side table and its staging copy to hold {@code entries}; the caller holds launchLock. */
    private void ensureTable(long entries) {
        if (entries <= tableEntries) {
            return;
        }
        long n = Math.max(entries, Math.max(PAGE_BYTES, tableEntries * 2));
        if (!tableMem.equals(MemorySegment.NULL)) {
            call(cl.releaseMemObject, tableMem);
            tableMem = MemorySegment.NULL;
            tableEntries = 0;
        }
        tableMem = ctx.createBuffer(n * 4);
        staging = ctx.arena.allocate(n * 4, 64);
        tableEntries = n;
    }

    private void runAndWait(OpenClKernel kernel, long globalSize, Arena a) {
        runAndWait(kernel, 0, globalSize, a);
    }

    private void runAndWait(OpenClKernel kernel, long globalOffset, long globalSize, Arena a) {
        MemorySegment ev = a.allocate(ADDRESS);
        enqueueKernel(kernel, globalOffset, globalSize, ev, a);
        int rc = ctx.waitForEvents(1, ev);
        if (rc != ClLibrary.CL_SUCCESS) {
            call(cl.finish, ctx.kernelQueue);   // as above: the kernel's arguments are released after this returns
        }
        kernelStatus(kernel, ev.get(ADDRESS, 0), a);
        check("clWaitForEvents", rc, "kernel " + kernel.name());
    }

    private void enqueueKernel(OpenClKernel kernel, long globalOffset, long globalSize, MemorySegment event, Arena a) {
        long multiple = kernel.itemMultiple();
        if (globalSize % multiple != 0) {
            throw new IllegalArgumentException("kernel " + kernel.name() + ": " + globalSize + (kernel.columns() > 0 ? " rows" : " work items")
                    + " are not a multiple of its work-group's " + multiple);
        }
        int dims = kernel.columns() > 0 ? 2 : 1;
        MemorySegment global = a.allocate(JAVA_LONG, dims);
        MemorySegment offset = a.allocate(JAVA_LONG, dims);
        global.setAtIndex(JAVA_LONG, dims - 1, globalSize);
        offset.setAtIndex(JAVA_LONG, dims - 1, globalOffset);
        if (dims == 2) {
            global.setAtIndex(JAVA_LONG, 0, kernel.columns());
        }
        MemorySegment local = MemorySegment.NULL;
        if (kernel.group() != null) {
            local = a.allocate(JAVA_LONG, dims);
            for (int d = 0; d < dims; d++) {
                local.setAtIndex(JAVA_LONG, d, kernel.group()[d]);
            }
        }
        check("clEnqueueNDRangeKernel", call(cl.enqueueNDRangeKernel, ctx.kernelQueue, kernel.handle(), dims,
                globalOffset == 0 ? MemorySegment.NULL : offset, global, local, 0, MemorySegment.NULL, event), "kernel "
                + kernel.name() + ", global offset " + globalOffset + ", global size " + globalSize);
    }

    /** Releases a finished kernel's event; throws if the kernel failed. */
    private void kernelStatus(OpenClKernel kernel, MemorySegment event, Arena a) {
        MemorySegment status = a.allocate(JAVA_INT);
        int q = call(cl.getEventInfo, event, ClLibrary.CL_EVENT_COMMAND_EXECUTION_STATUS, 4L, status, MemorySegment.NULL);
        call(cl.releaseEvent, event);
        if (q == ClLibrary.CL_SUCCESS && status.get(JAVA_INT, 0) < 0) {
            throw new OpenClException("clEnqueueNDRangeKernel", status.get(JAVA_INT, 0), "kernel " + kernel.name() + " failed on " + ctx.name);
        }
    }

    private void setMem(MemorySegment kernel, int index, MemorySegment mem, Arena a) {
        MemorySegment v = a.allocate(ADDRESS);
        v.set(ADDRESS, 0, mem);
        setArg(cl, kernel, index, ADDRESS.byteSize(), v, "buffer");
    }

    /** Sets kernel argument {@code index}; {@code what} names it in the error. Also used for a kernel's scalars. */
    static void setArg(ClLibrary cl, MemorySegment kernel, int index, long size, MemorySegment value, String what) {
        check("clSetKernelArg", call(cl.setKernelArg, kernel, index, size, value), "argument " + index + " (" + what + ")");
    }
}
