package dev.hetmem.device.opencl;

import dev.hetmem.driver.CopyBatch;
import dev.hetmem.driver.CopyEngine;
import dev.hetmem.driver.DeviceCopyException;
import dev.hetmem.driver.FaultCountdown;
import dev.hetmem.driver.HostCopy;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.locks.ReentrantReadWriteLock;

import static dev.hetmem.device.opencl.ClLibrary.call;
import static dev.hetmem.device.opencl.OpenClContext.rethrow;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static dev.hetmem.driver.PageGeometry.PAGE_SHIFT;

/**
 * The OpenCL device's page copies: the operations of a {@link CopyBatch} (to the device, to the
 * host, zero) as non-blocking transfers on the context's copy queue, all of a batch in flight at
 * once and waited for together. {@link #copy} waits on the caller's thread; {@link #submit} (the
 * device's {@link CopyEngine}) enqueues on the caller's thread and leaves the waiting to one
 * daemon thread, which completes the futures in submission order. Kept apart from the driver so
 * that the transfer loop, its failure handling and the waiter thread read as one piece.
 *
 * <p>A run of pages that crosses from one pool buffer into the next is split there, so a batch
 * operation may take more than one transfer (and event).
 *
 * <p>Threading: {@link #copy} and {@link #submit} may run on several threads at once; each batch
 * has its own {@link Transfers} and arena, and the OpenCL queue is thread-safe. The job queue
 * hands each job to the waiter thread, which alone closes a submitted job's arena. One lock,
 * {@code stopping}: copies hold it shared while they enqueue, {@link #stop} exclusively, so that a
 * copy racing the device's close either is queued before the waiter's end or fails at once (it
 * used to be queued behind that end, and its future never completed).
 *
 * <p>Fault injection: {@link #failCopy} arms a countdown over batch operations; the operation it
 * fires on fails before it is enqueued, the earlier ones complete.
 */
final class OpenClCopyEngine implements CopyEngine {
    private final OpenClContext ctx;
    private final ClLibrary cl;
    private final String name;
    private final FaultCountdown copyFailure = new FaultCountdown();
    /** Submitted jobs in order; a job without transfers tells the waiter to stop. */
    /** Part of lock L12 (copy engine): docs/design.md, lock table, L12. */
    private final LinkedBlockingQueue<Job> queue = new LinkedBlockingQueue<>();
    /**
     * Part of lock L12: held shared while a copy enqueues transfers and queues its job (and by a plain
     * buffer's transfer, {@link #whileRunning}, until that blocking transfer is done: a close waits
     * for it), exclusively by {@link #stop} while it sets
     * {@code stopped} and queues the waiter's end. So every job queued is ahead of that end (the
     * waiter completes it), and no transfer is enqueued on the copy queue once the device began to
     * close (its queues are then finished and released).
     */
    private final ReentrantReadWriteLock stopping = new ReentrantReadWriteLock();
    /** Guarded by {@link #stopping}. */
    private boolean stopped;
    private final Thread waiter;

    private record Job(Transfers transfers, Arena arena, CompletableFuture<Void> done) {}

    OpenClCopyEngine(OpenClContext ctx) {
        this.ctx = ctx;
        this.cl = ctx.cl;
        this.name = ctx.name;
        this.waiter = Thread.ofPlatform().daemon().name(name + "-copy-waiter").start(this::loop);
    }

    /** The copy operation after the next {@code after} ones fails (earlier ones complete); -1 disarms. */
    void failCopy(int after) {
        copyFailure.arm(after);
    }

    /** Copies operations [from, to) of {@code batch} and returns when all of them are done. */
    void copy(CopyBatch batch, int from, int to) {
        if (ctx.shared()) {
            copyShared(batch, from, to);
            return;
        }
        try (Arena a = Arena.ofConfined()) {
            Transfers t;
            stopping.readLock().lock();
            try {
                checkRunning();
                t = enqueue(batch, from, to, a);
            } finally {
                stopping.readLock().unlock();
            }
            t.await();
        }
    }

    /** Transfers are enqueued by the submitter; the waiter thread waits for their events and completes the future. */
    @Override
    public CompletableFuture<Void> submit(CopyBatch batch, int from, int to) {
        CompletableFuture<Void> done = new CompletableFuture<>();
        Arena a = Arena.ofShared();
        stopping.readLock().lock();
        try {
            checkRunning();
            queue.add(new Job(enqueue(batch, from, to, a), a, done));
        } catch (RuntimeException e) {
            a.close();
            done.completeExceptionally(e);
        } finally {
            stopping.readLock().unlock();
        }
        return done;
    }

    /**
     * Runs {@code enqueue}, a blocking transfer on the copy queue made outside this engine (a plain
     * buffer's read or write), as a copy of its own: under the read lock, and not once the engine
     * stopped (the device's queues are released after that).
     */
    void whileRunning(Runnable enqueue) {
        stopping.readLock().lock();
        try {
            checkRunning();
            enqueue.run();
        } finally {
            stopping.readLock().unlock();
        }
    }

    /** A copy after {@link #stop} fails at once: the waiter is gone, and the device's queues go next. */
    private void checkRunning() {
        assert stopping.getReadHoldCount() > 0;
        if (stopped) {
            throw new IllegalStateException("OpenCL device " + name + " is closed");
        }
    }

    private void loop() {
        while (true) {
            Job job;
            try {
                job = queue.take();
            } catch (InterruptedException e) {
                continue;   // only stop()'s job ends the waiter: a stray interrupt left every later copy waiting
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

    /** Finishes the jobs submitted so far, then stops the waiter thread (waiting for it at most 5 s). */
    void stop() {
        stopping.writeLock().lock();
        try {
            if (stopped) {
                return;
            }
            stopped = true;
            queue.add(new Job(null, null, null));
        } finally {
            stopping.writeLock().unlock();
        }
        // through an interrupt of the closing thread (kept): the device releases its queues and context next,
        // which the waiter may still be using
        boolean interrupted = false;
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (waiter.isAlive() && deadline - System.nanoTime() > 0) {
            try {
                waiter.join(java.time.Duration.ofNanos(deadline - System.nanoTime()));
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    /**
     * The transfers of one copy phase, in flight: {@code count} events in {@code events}, and the
     * first failure, kept until {@link #await} throws it. Used by one thread at a time (the
     * enqueuer, then the waiter).
     */
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
                int rc = ctx.waitForEvents(count, events);
                if (rc != ClLibrary.CL_SUCCESS) {
                    // a failed wait may return as soon as one event failed (the specification allows it):
                    // every transfer is waited for on its own before the batch is undone, since the undo
                    // gives the frames and host pages those still in flight would write to other pages
                    for (int i = 0; i < count; i++) {
                        ctx.waitForEvents(1, events.asSlice(i * ADDRESS.byteSize(), ADDRESS.byteSize()));
                    }
                    // and a wait that failed for another reason (out of resources) says nothing of the
                    // commands' end: the queue is finished before the undo
                    call(cl.finish, ctx.copyQueue);
                }
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

    /**
     * Operations [from, to) as CPU copies into the pools' shared host memory ({@link SharedPoolMemory}),
     * on the calling thread (the core spreads a batch over its copy threads): the same checks and
     * fault injection as the transfers, no OpenCL call.
     */
    private void copyShared(CopyBatch batch, int from, int to) {
        usable("clEnqueueWriteBuffer");
        boolean streaming = batch.streaming();   // the engine's decision for the whole batch (HostCopy)
        forEachPoolRun(batch, from, to, (op, frame, n, host) -> {
            long bytes = (long) n << PAGE_SHIFT;
            MemorySegment frames = ctx.sharedFrames(frame, n);
            switch (op) {
                // through the pool's segment, which stays alive for the copy: one racing the device's
                // close fails on the closed segment instead of writing memory that was unmapped
                case CopyBatch.TO_DEVICE -> HostCopy.copy(frames, MemorySegment.ofAddress(host).reinterpret(bytes), streaming);
                case CopyBatch.TO_HOST -> HostCopy.copy(MemorySegment.ofAddress(host).reinterpret(bytes), frames, streaming);
                case CopyBatch.ZERO -> frames.fill((byte) 0);
                default -> throw new DeviceCopyException("unknown copy operation " + op);
            }
        });
    }

    /** One stretch of a batch operation that stays inside one pool: its code, first frame, pages and host address. */
    @FunctionalInterface
    private interface PoolRun {
        void copy(byte op, int frame, int pages, long host);
    }

    /**
     * Operations [from, to) of a batch, each checked first ({@link #checkOperation}), then handed to
     * {@code run} stretch by stretch, split where a pool ends: what the CPU copies and the transfers
     * share.
     */
    private void forEachPoolRun(CopyBatch batch, int from, int to, PoolRun run) {
        for (int i = from; i < to; i++) {
            checkOperation(batch, i);
            byte op = batch.op(i);
            int frame = batch.frame(i);
            int pages = batch.pages(i);
            long host = batch.hostAddress(i);
            while (pages > 0) {
                int n = ctx.runInPool(frame, pages);
                run.copy(op, frame, n, host);
                frame += n;
                pages -= n;
                host += (long) n << PAGE_SHIFT;
            }
        }
    }

    /** Before operation {@code i} of a batch, either way: the injected failure, and frames outside the device refused. */
    private void checkOperation(CopyBatch batch, int i) {
        if (copyFailure.fire()) {
            throw new DeviceCopyException("injected copy failure on " + name + " at operation " + i + " of a batch of " + batch.size());
        }
        if (!ctx.holds(batch.frame(i), batch.pages(i))) {
            throw new DeviceCopyException("frames " + batch.frame(i) + "+" + batch.pages(i) + " outside device memory of "
                    + ctx.capacity + " bytes");
        }
    }

    /** As the transfers fail on a closed or lost device: a lost one's failure is a copy failure. */
    private void usable(String call) {
        try {
            ctx.checkUsable(call);
        } catch (OpenClException e) {
            throw new DeviceCopyException("copy on " + name + " failed", e);
        }
    }

    /** Enqueues operations [from, to) without blocking; a failure to enqueue is kept for {@link Transfers#await}. */
    private Transfers enqueue(CopyBatch batch, int from, int to, Arena a) {
        int slots = 0;
        for (int i = from; i < to; i++) {
            slots += 1 + batch.pages(i) / ctx.framesPerPool + 1;
        }
        Transfers t = new Transfers(a.allocate(ADDRESS, Math.max(1, slots)));
        MemorySegment zero = OpenClContext.zeroPattern(a);
        try {
            ctx.checkUsable("clEnqueueWriteBuffer");
            forEachPoolRun(batch, from, to, (op, frame, n, host) -> {
                MemorySegment pool = ctx.pools[ctx.pool(frame)];
                long offset = ctx.poolOffset(frame);
                long bytes = (long) n << PAGE_SHIFT;
                MemorySegment ev = t.events.asSlice((long) t.count * ADDRESS.byteSize());
                int rc = switch (op) {
                    case CopyBatch.TO_DEVICE -> transfer(true, pool, offset, bytes, host, ev);
                    case CopyBatch.TO_HOST -> transfer(false, pool, offset, bytes, host, ev);
                    case CopyBatch.ZERO -> ctx.fill(ctx.copyQueue, pool, zero, offset, bytes, ev);
                    default -> throw new DeviceCopyException("unknown copy operation " + op);
                };
                if (rc != ClLibrary.CL_SUCCESS) {
                    String call = op == CopyBatch.ZERO ? "clEnqueueFillBuffer"
                            : op == CopyBatch.TO_DEVICE ? "clEnqueueWriteBuffer" : "clEnqueueReadBuffer";
                    throw new DeviceCopyException("copy of " + n + " pages at frame " + frame + " on " + name + " failed",
                            new OpenClException(call, rc, null));
                }
                t.count++;
            });
            call(cl.flush, ctx.copyQueue);
        } catch (OpenClException e) {
            t.failure = new DeviceCopyException("copy on " + name + " failed", e);
        } catch (RuntimeException e) {
            t.failure = e;
        }
        return t;
    }

    /**
     * Copies runs of frames within the device's pools ({@code count} runs, run i {@code pages[i]}
     * frames from {@code sourceFrames[i]} to {@code frames[i]}): one non-blocking copy per stretch
     * that stays inside a pool on both sides, all in flight at once and waited for together.
     */
    void copyWithin(int[] sourceFrames, int[] frames, int[] pages, int count) {
        if (ctx.shared()) {
            usable("clEnqueueCopyBuffer");
            long total = 0;
            for (int i = 0; i < count; i++) {
                total += (long) pages[i] << PAGE_SHIFT;
            }
            // decided by the call's own size, as the emulated device's copies within its pool are (HostCopy)
            boolean streaming = HostCopy.streams(total);
            forEachRunWithin(sourceFrames, frames, pages, count, (src, dst, n) ->
                    HostCopy.copy(ctx.sharedFrames(dst, n), ctx.sharedFrames(src, n), streaming));
            return;
        }
        long slots = 0;
        for (int i = 0; i < count; i++) {
            slots += 2L * pages[i] / Math.max(1, Math.min(pages[i], ctx.framesPerPool)) + 2;
        }
        try (Arena a = Arena.ofConfined()) {
            Transfers t = new Transfers(a.allocate(ADDRESS, Math.max(1, slots)));
            stopping.readLock().lock();
            try {
                checkRunning();
                ctx.checkUsable("clEnqueueCopyBuffer");
                forEachRunWithin(sourceFrames, frames, pages, count, (src, dst, n) -> enqueueWithin(t, src, dst, n));
                call(cl.flush, ctx.copyQueue);
            } catch (OpenClException e) {
                t.failure = new DeviceCopyException("copy on " + name + " failed", e);
            } catch (RuntimeException e) {
                t.failure = e;
            } finally {
                stopping.readLock().unlock();
            }
            t.await();
        }
    }

    /** Before a run copied within the device, either way: the injected failure, and frames outside the device refused. */
    private void checkRunWithin(int src, int dst, int pages) {
        if (copyFailure.fire()) {
            throw new DeviceCopyException("injected copy failure on " + name + " (copy within its memory)");
        }
        if (!ctx.holds(src, pages) || !ctx.holds(dst, pages)) {
            throw new DeviceCopyException("frames " + src + "+" + pages + " to " + dst + "+" + pages
                    + " outside device memory of " + ctx.capacity + " bytes");
        }
    }

    /** One stretch of a run copied within the device that stays inside one pool on both sides. */
    @FunctionalInterface
    private interface WithinRun {
        void copy(int src, int dst, int pages);
    }

    /**
     * The {@code count} runs of a copy within the device (run i {@code pages[i]} frames from
     * {@code sourceFrames[i]} to {@code frames[i]}), each checked first ({@link #checkRunWithin}),
     * then handed to {@code run} stretch by stretch, split where a pool ends on either side.
     */
    private void forEachRunWithin(int[] sourceFrames, int[] frames, int[] pages, int count, WithinRun run) {
        for (int i = 0; i < count; i++) {
            checkRunWithin(sourceFrames[i], frames[i], pages[i]);
            int src = sourceFrames[i];
            int dst = frames[i];
            int left = pages[i];
            while (left > 0) {
                int n = Math.min(ctx.runInPool(src, left), ctx.runInPool(dst, left));
                run.copy(src, dst, n);
                src += n;
                dst += n;
                left -= n;
            }
        }
    }

    /** Enqueues the copy of one stretch within the device (inside one pool on both sides). */
    private void enqueueWithin(Transfers t, int src, int dst, int n) {
        MemorySegment ev = t.events.asSlice((long) t.count * ADDRESS.byteSize());
        int rc;
        try {
            rc = (int) cl.enqueueCopyBuffer.invokeExact(ctx.copyQueue, ctx.pools[ctx.pool(src)], ctx.pools[ctx.pool(dst)],
                    ctx.poolOffset(src), ctx.poolOffset(dst), (long) n << PAGE_SHIFT, 0, MemorySegment.NULL, ev);
        } catch (Throwable e) {
            throw rethrow(e);
        }
        if (rc != ClLibrary.CL_SUCCESS) {
            throw new DeviceCopyException("copy of " + n + " pages from frame " + src + " to frame " + dst + " on "
                    + name + " failed", new OpenClException("clEnqueueCopyBuffer", rc, null));
        }
        t.count++;
    }

    /** Enqueues a non-blocking transfer between a pool and host memory on the copy queue; returns the OpenCL status. */
    private int transfer(boolean toDevice, MemorySegment mem, long offset, long bytes, long host, MemorySegment event) {
        MemorySegment queue = ctx.copyQueue;
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
}
