package dev.hetmem.loader;

import dev.hetmem.io.LoadOptions;
import dev.hetmem.io.LoadResult;
import dev.hetmem.io.LoadScheme;
import dev.hetmem.io.LoadProgress;

import dev.hetmem.Access;
import dev.hetmem.HostView;
import dev.hetmem.Region;
import dev.hetmem.host.FileIo;
import dev.hetmem.host.HostMapping;
import dev.hetmem.HostReleasePolicy;
import dev.hetmem.host.Libc;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Supplier;

import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;

/**
 * Loads a file into a new region (direct-I/O loading, as dma-buf's).
 *
 * <p>Host target, overlapped: several threads read 4 MiB chunks with O_DIRECT straight into the
 * region's pages while as many more populate the pages ahead of them ({@link PopulateAhead}), so
 * the time is about T(first chunk populated) + max(T(populating the rest), T(I/O)).
 *
 * <p>Device target, overlapped: reader threads fill a bounded ring of bounce buffers on huge pages
 * and the calling thread hands each full one to the device's copy path (the migration engine's
 * fill) while the readers read on. The ring is all the host memory the load itself uses; what
 * the device cannot hold is evicted to the host as the load goes on (the host's memory is the
 * device's swap), so a file is refused up front where the device and the host together cannot
 * hold it.
 *
 * <p>Where O_DIRECT is refused (tmpfs, some network file systems) the loader reads through the
 * page cache and says so in the result. A file that is missing, unreadable, a directory, that
 * changes size during the load, or whose read fails, gives an exception, and the half-loaded
 * region is freed.
 */
public final class FileLoader {

    private FileLoader() {}

    public static LoadResult load(LoadTarget target, Path path, int node, LoadOptions options) throws IOException {
        java.nio.file.attribute.BasicFileAttributes attributes;
        try {
            // not Files.exists, which answers false where a folder on the path cannot be entered
            attributes = Files.readAttributes(path, java.nio.file.attribute.BasicFileAttributes.class);
        } catch (java.nio.file.FileSystemException e) {
            throw FileErrors.explained(e, path);
        }
        if (attributes.isDirectory()) {
            throw new IOException(path + " is a directory, not a file to load");
        }
        if (!attributes.isRegularFile()) {
            // a FIFO would block the open for ever, a device (/dev/zero) or /proc file has no size
            // to load: refused before anything is opened
            throw new IOException(path + " is not a regular file (a FIFO, device, socket or /proc entry); "
                    + "only regular files can be loaded");
        }
        if (!Files.isReadable(path)) {
            throw new AccessDeniedException(path.toString(), null, "not readable by this process");
        }
        FileIdentity before = FileIdentity.of(path);
        long size = before.size();
        if (size == 0) {
            // /proc and /sys files say 0 bytes and then produce content: not a file to load
            try (FileChannel ch = FileIo.openChannel(path)) {
                if (ch.read(java.nio.ByteBuffer.allocate(1)) > 0) {
                    throw new IOException(path + " reports 0 bytes but has content: not a regular file (a /proc or "
                            + "/sys entry; only regular files can be loaded), or a file written as the load began (load it again)");
                }
            } catch (java.nio.channels.ClosedByInterruptException e) {
                throw interruptedLoad(e);
            }
        }
        long physical = target.nodeBytes(0);
        if (physical > 0 && size > physical) {
            // refused up front: the host would have to hold all of it, and cannot
            if (node == 0) {
                throw new IOException(path + " has " + size + " bytes, more than this machine's " + physical
                        + " bytes of memory: load it to a device (the loader streams through a bounded ring there)");
            }
            if (options.scheme() != LoadScheme.OVERLAPPED) {
                // every scheme but the overlapped one stages the whole file in host memory on its way to a device
                throw new IOException(path + " has " + size + " bytes, more than this machine's " + physical
                        + " bytes of memory, and the " + options.scheme().name().toLowerCase(java.util.Locale.ROOT)
                        + " scheme reads all of it into host memory first: load it with the overlapped scheme, which "
                        + "streams through a bounded ring");
            }
        }
        if (physical > 0 && node != 0 && size > physical && size - physical > target.nodeBytes(node)) {
            // the chunks the device cannot keep are evicted to host memory: past both, the host's
            // MAP_NORESERVE mappings would be filled beyond the machine's memory (the OOM killer's case)
            throw new IOException(path + " has " + size + " bytes, more than device node " + node + "'s "
                    + target.nodeBytes(node) + " bytes and this machine's " + physical + " bytes of memory together: "
                    + "what the device cannot hold is evicted to host memory, which cannot hold the rest");
        }
        long t0 = System.nanoTime();
        Region region = target.allocateForLoad(size);
        try {
            Outcome out;
            // ended before a failure frees the region below (a free from inside would be refused)
            try (LoadTarget.Operation loading = target.operateOn(region)) {
                out = size == 0 ? new Outcome(false, "empty file", 0)
                        : target.isDevice(node) && options.scheme() == LoadScheme.OVERLAPPED
                        ? toDevice(target, region, path, size, node, options)
                        : toHost(target, region, path, size, node, options);
            }
            before.checkUnchanged(path);
            return new LoadResult(region, node, size, System.nanoTime() - t0, options.scheme(), out.direct,
                    out.fallbackReason, out.peakExtra, out.allocationNanos);
        } catch (IOException | RuntimeException | Error e) {
            try {
                target.freeFailed(region);
            } catch (RuntimeException cleanup) {
                // the memory is closing (it frees the region itself), or another thread kept a view of the
                // region open past the timeout: the load's own failure is the news
                e.addSuppressed(cleanup);
            }
            if (e instanceof dev.hetmem.InterruptedOperationException
                    || e instanceof java.nio.channels.ClosedByInterruptException) {
                // the engine's wait in the staged schemes' prefetch or the load's view, or a channel of the
                // memory-mapped scheme closed by the interrupt
                throw interruptedLoad(e);
            }
            throw e;
        }
    }

    private record Outcome(boolean direct, String fallbackReason, long peakExtra, long allocationNanos) {
        Outcome(boolean direct, String fallbackReason, long peakExtra) {
            this(direct, fallbackReason, peakExtra, 0);
        }
    }

    /** Opens with O_DIRECT if asked and possible; returns fd and whether direct. */
    private record Opened(int fd, boolean direct, String fallbackReason) {}

    private static Opened open(Path path, boolean wantDirect) throws IOException {
        if (!wantDirect) {
            return new Opened(FileIo.open(path, FileIo.O_RDONLY), false, "buffered reads requested");
        }
        try {
            return new Opened(FileIo.open(path, FileIo.O_RDONLY | FileIo.O_DIRECT), true, null);
        } catch (FileIo.ErrnoException e) {
            if (e.errno() != FileIo.EINVAL) {
                throw e;
            }
            return new Opened(FileIo.open(path, FileIo.O_RDONLY), false,
                    "the file system refused O_DIRECT (" + e.getMessage() + "); read through the page cache");
        }
    }

    // ---- host target --------------------------------------------------------------------------

    private static Outcome toHost(LoadTarget target, Region region, Path path, long size, int node, LoadOptions o)
            throws IOException {
        Outcome out;
        try (HostView view = region.host(0, size, Access.WRITE)) {
            long base = view.segment().address();
            out = switch (o.scheme()) {
                case MMAP -> copyMapped(path, view.segment(), size, o.progress());
                case BUFFERED -> readStreams(path, base, size, 1, o, false, null, () -> target.operateOn(region));
                case DIRECT -> readStreams(path, base, size, 1, o, true, null, () -> target.operateOn(region));
                case OVERLAPPED -> readStreams(path, base, size, o.threads(), o, true, target.hostPopulator(region),
                        () -> target.operateOn(region));
            };
        }
        if (node != 0) {
            // the non-overlapped schemes reach a device the way programs do today: whole file on the host, then copied
            stopIfInterrupted(path);
            target.prefetch(region, node);
            return new Outcome(out.direct, out.fallbackReason, size);
        }
        return out;
    }

    private static Outcome copyMapped(Path path, MemorySegment dst, long size, LoadProgress progress) throws IOException {
        try (FileChannel ch = FileIo.openChannel(path); Arena arena = Arena.ofConfined()) {
            MemorySegment src = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            long step = 16L << 20;
            for (long off = 0; off < size; off += step) {
                stopIfInterrupted(path);
                long n = Math.min(step, size - off);
                try {
                    MemorySegment.copy(src, off, dst, off, n);
                } catch (InternalError e) {
                    // the JVM turns the SIGBUS of a mapping past a file's new end into this
                    throw new IOException(path + " changed size during the load (a memory-mapped read past its end at "
                            + "byte " + off + " of the " + size + " it had)", e);
                }
                if (progress != null) {
                    progress.progress(off + n, size);
                }
            }
        }
        return new Outcome(false, "memory-mapped copy", 0);
    }

    /**
     * {@code streams} threads read chunks in turn straight into host memory at {@code base}; given a
     * {@code populator}, as many more fault the pages in ahead of them.
     */
    private static Outcome readStreams(Path path, long base, long size, int streams, LoadOptions o, boolean direct,
                                       HostPopulator populator, Supplier<LoadTarget.Operation> inside)
            throws IOException {
        Opened f = open(path, direct);
        try {
            long chunk = o.chunkBytes();
            long chunks = Math.ceilDiv(size, chunk);
            AtomicLong next = new AtomicLong();
            AtomicLong done = new AtomicLong();
            AtomicReference<Throwable> failure = new AtomicReference<>();
            List<Thread> threads = new ArrayList<>();
            PopulateAhead ahead;
            try {
                ahead = populator != null
                        ? new PopulateAhead(populator, roundUp(size), chunk, streams, failure, threads)
                        : null;
            } catch (RuntimeException | Error e) {
                stopStarted(e, failure, threads);
                throw e;
            }
            // each reader is inside the load's operation on the region: the progress callback it calls
            // may not free the region or close the memory from there (it would wait for the load,
            // which waits for this thread), and is refused at once
            Thread caller = Thread.currentThread();
            Runnable reader = () -> {
                try (LoadTarget.Operation reading = inside.get()) {
                    long c;
                    while (failure.get() == null && (c = next.getAndIncrement()) < chunks) {
                        if (Thread.currentThread() == caller && caller.isInterrupted()) {
                            // the caller's interrupt (kept set): the others stop at their next chunk
                            throw new InterruptedException("interrupted while reading " + path);
                        }
                        if (ahead != null) {
                            ahead.awaitReady(c);
                        }
                        long off = c * chunk;
                        long want = Math.min(chunk, size - off);
                        readFully(f, base + off, want, off, size, path);
                        long d = done.addAndGet(want);
                        if (o.progress() != null) {
                            o.progress().progress(d, size);
                        }
                    }
                } catch (Throwable t) {
                    record(failure, t);
                }
            };
            try {
                for (int i = 1; i < streams; i++) {
                    threads.add(Thread.ofPlatform().name("hetmem-load-" + i).start(reader));
                }
            } catch (RuntimeException | Error e) {
                stopStarted(e, failure, threads);
                throw e;
            }
            reader.run();
            joinAll(threads);
            rethrow(failure.get());
            return new Outcome(f.direct, f.fallbackReason, 0, ahead == null ? 0 : ahead.allocationNanos());
        } finally {
            FileIo.close(f.fd);
        }
    }

    /**
     * Reads [offset, offset+want) of the file into {@code address}. O_DIRECT lengths are rounded up
     * to whole pages (the destination always has room: regions and ring slices are page multiples).
     */
    private static void readFully(Opened f, long address, long want, long offset, long size, Path path) throws IOException {
        long got = 0;
        while (got < want) {
            long len = f.direct ? roundUp(want - got) : want - got;
            long n;
            try {
                n = FileIo.pread(f.fd, address + got, len, offset + got);
            } catch (IOException e) {
                // the system's error (EIO, or a file system that takes O_DIRECT at open and refuses it on
                // read) names no file: this does
                throw new IOException(path + ": " + e.getMessage(), e);
            }
            if (n == 0) {
                throw new IOException(path + " shrank during the load: reading ended at byte " + (offset + got)
                        + " of the " + size + " it had when the load began");
            }
            got += n;
            if (f.direct && got < want && (got & (PAGE_BYTES - 1)) != 0) {
                // a short direct read that ends off a page boundary before the end of the file: the next
                // direct read could not start there (O_DIRECT wants aligned offsets), and a regular file
                // reads short before its end only when it shrank meanwhile: the load fails, saying so
                throw new IOException(path + ": short direct read of " + n + " bytes at offset " + (offset + got - n)
                        + " before the end of the file; the file changed during the load");
            }
        }
    }

    // ---- device target ------------------------------------------------------------------------

    /**
     * The ring: {@code buffers} aligned bounce buffers of one chunk each. Reader threads take a free
     * buffer, read the next chunk into it and queue it; the calling thread hands each queued buffer
     * to the device's copy path and frees it for the readers. So the disk always has reads in
     * flight while copies run, and host memory never exceeds the ring.
     */
    private static Outcome toDevice(LoadTarget target, Region region, Path path, long size, int node, LoadOptions o)
            throws IOException {
        int readers = o.threads();
        long chunk = Math.min(o.chunkBytes(), roundUp(size));
        int buffers = (int) Math.max(1, Math.min(2L * readers, o.ringBytes() / chunk));
        buffers = (int) Math.min(buffers, Math.ceilDiv(size, chunk) + 1);
        long ring = chunk * buffers;
        long chunks = Math.ceilDiv(size, chunk);
        // The ring sits on 2 MiB huge pages: a direct read into 4 KiB pages gives the block layer one
        // segment per page, and at its segment limit (254 on virtio-blk) a 4 MiB read splits into five
        // requests. On huge pages it stays one request: 3.4 GB/s against 1.3 GB/s on this machine.
        HostMapping ringMapping = HostMapping.reserve(ring, HostReleasePolicy.DONTNEED);
        long base = ringMapping.base();
        Opened f;
        try {
            f = open(path, true);
        } catch (IOException | RuntimeException e) {
            ringMapping.close();
            throw e;
        }
        java.util.concurrent.BlockingQueue<Integer> free = new java.util.concurrent.ArrayBlockingQueue<>(buffers);
        java.util.concurrent.BlockingQueue<long[]> full = new java.util.concurrent.ArrayBlockingQueue<>(buffers + readers);
        for (int b = 0; b < buffers; b++) {
            free.add(b);
        }
        AtomicLong next = new AtomicLong();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        List<Thread> threads = new ArrayList<>();
        try {
            for (int i = 0; i < readers; i++) {
                threads.add(Thread.ofPlatform().name("hetmem-load-" + i).start(() -> {
                    try {
                        long c;
                        while (failure.get() == null && (c = next.getAndIncrement()) < chunks) {
                            Integer b = null;
                            while (b == null && failure.get() == null) {
                                b = free.poll(100, java.util.concurrent.TimeUnit.MILLISECONDS);
                            }
                            if (b == null) {
                                return;
                            }
                            long off = c * chunk;
                            long want = Math.min(chunk, size - off);
                            long buffer = base + b * chunk;
                            readFully(f, buffer, want, off, size, path);
                            long pageBytes = roundUp(want);
                            if (pageBytes > want) {
                                // bytes past the end of the file in the last page read as zeros, as on the host
                                Libc.memset(buffer + want, 0, pageBytes - want);
                            }
                            full.put(new long[] {b, off, want});
                        }
                    } catch (Throwable t) {
                        record(failure, t);
                    }
                }));
            }
            long done = 0;
            for (long k = 0; k < chunks; k++) {
                long[] item = null;
                while (item == null && failure.get() == null) {
                    item = full.poll(100, java.util.concurrent.TimeUnit.MILLISECONDS);
                }
                if (item == null) {
                    break;
                }
                target.fillDevice(region, item[1], roundUp(item[2]), node, base + item[0] * chunk);
                free.put((int) item[0]);
                done += item[2];
                if (o.progress() != null) {
                    o.progress().progress(done, size);
                }
            }
        } catch (Throwable t) {
            record(failure, t);
        } finally {
            joinAll(threads);
            ringMapping.close();
            FileIo.close(f.fd);
        }
        rethrow(failure.get());
        return new Outcome(f.direct, f.fallbackReason, ring);
    }

    // ---- helpers ------------------------------------------------------------------------------

    private static long roundUp(long bytes) {
        return (bytes + PAGE_BYTES - 1) & -PAGE_BYTES;
    }

    /**
     * A thread could not start (no native threads left): the load has failed, so the threads already
     * started stop at their next chunk and are waited for before the file closes and the region can
     * be freed (they write into it by address).
     */
    private static void stopStarted(Throwable e, AtomicReference<Throwable> failure, List<Thread> threads) {
        failure.compareAndSet(null, e);
        joinAll(threads);
    }

    /** Waits for every thread to end, through an interrupt (kept for the caller). */
    private static void joinAll(List<Thread> threads) {
        for (Thread t : threads) {
            dev.hetmem.internal.Uninterruptibly.join(t, 0);
        }
    }

    /**
     * Fails the load if the loading thread's interrupt is set (kept set), at a point where nothing is
     * half done: between two chunks or steps, before the staged schemes' move to a device. Reads and
     * copies do not notice an interrupt themselves, and a load of gigabytes would run to its end.
     */
    private static void stopIfInterrupted(Path path) throws java.io.InterruptedIOException {
        if (Thread.currentThread().isInterrupted()) {
            throw interruptedLoad(new InterruptedException("interrupted while loading " + path));
        }
    }

    /**
     * An interrupt of the load as the load reports it, whatever it cut short (the engine's wait for
     * room or for a pin, a wait of the loading thread, a channel it closed): the
     * {@link java.io.InterruptedIOException} an interrupted read gives. The flag stays set.
     */
    private static java.io.InterruptedIOException interruptedLoad(Throwable cause) {
        java.io.InterruptedIOException e = new java.io.InterruptedIOException("the load was interrupted; nothing of it is kept");
        e.initCause(cause);
        for (Throwable s : cause.getSuppressed()) {
            e.addSuppressed(s);
        }
        return e;
    }

    /**
     * Records a failure of the load's threads; the first one is thrown. An interrupt that came after
     * another failure is kept for the caller (its flag set again, the exception suppressed in the
     * first failure), rather than lost with its exception.
     */
    private static void record(AtomicReference<Throwable> failure, Throwable t) {
        boolean interrupt = t instanceof InterruptedException || t instanceof dev.hetmem.InterruptedOperationException;
        if (interrupt) {
            Thread.currentThread().interrupt();
        }
        if (!failure.compareAndSet(null, t) && interrupt && failure.get() != t) {
            failure.get().addSuppressed(t);
        }
    }

    private static void rethrow(Throwable t) throws IOException {
        if (t == null) {
            return;
        }
        if (t instanceof IOException io) {
            throw io;
        }
        if (t instanceof UncheckedIOException u) {
            throw u.getCause();
        }
        if (t instanceof dev.hetmem.InterruptedOperationException w) {
            // the engine's wait for room or for a pin, in a load to a device, was interrupted (the flag
            // kept): the same failure as an interrupted read, and said so
            throw interruptedLoad(w);
        }
        if (t instanceof RuntimeException re) {
            throw re;
        }
        if (t instanceof Error err) {
            throw err;
        }
        if (t instanceof InterruptedException ie) {
            // a wait of the loading thread (for a populated chunk, for a buffer) was interrupted: the flag
            // is kept for the caller, and the message says what happened rather than the exception's class
            Thread.currentThread().interrupt();
            throw interruptedLoad(ie);
        }
        throw new IOException(t);
    }
}
