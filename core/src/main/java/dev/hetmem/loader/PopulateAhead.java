package dev.hetmem.loader;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Threads that fault a host load's destination pages in ({@link HostPopulator}) ahead of the readers,
 * so that page allocation overlaps the I/O (direct-I/O loading's T(first gather) + max(T(allocation), T(I/O))).
 *
 * <p>Several populators, because a fresh page can cost far more than its zeroing: on a virtual machine
 * whose balloon reports free memory to the host, each first touch waits for the host to back the page
 * again, and those waits overlap across threads (1 populator: 0.15 GB/s; 4: 0.44 GB/s on this machine).
 * Populator {@code i} takes chunks {@code i, i+n, i+2n, ...} in order and publishes how many of its
 * stripe are done, so a reader learns that chunk {@code c} is ready from one counter, with no per-chunk
 * state whatever the file's size.
 *
 * <p>Readers wait on this object's monitor (lock L20, a leaf: docs/design.md, lock table);
 * populators notify after every chunk.
 */
final class PopulateAhead {
    private final HostPopulator populator;
    private final long chunk;
    private final long chunks;
    private final long end;
    private final int n;
    /** Per populator: chunks of its stripe populated. */
    private final AtomicLong[] done;
    /** The load's first failure: a populator's own ends the load, and any ends the populators. */
    private final AtomicReference<Throwable> failure;
    private final long started = System.nanoTime();
    private final AtomicLong finishedAt = new AtomicLong();
    private final AtomicLong running;
    /** Set when the kernel lacks MADV_POPULATE_WRITE: readers fault pages in by themselves. */
    private volatile boolean unsupported;

    /**
     * Populates [0, end) of a region's host side in chunks of {@code chunk} bytes with {@code threads}
     * threads, which are added to {@code started}. Stops early once {@code failure} holds the load's
     * failure, and puts its own there.
     */
    PopulateAhead(HostPopulator populator, long end, long chunk, int threads, AtomicReference<Throwable> failure,
                  List<Thread> started) {
        this.populator = populator;
        this.chunk = chunk;
        this.end = end;
        this.chunks = Math.ceilDiv(end, chunk);
        this.n = (int) Math.max(1, Math.min(threads, chunks));
        this.failure = failure;
        this.done = new AtomicLong[n];
        this.running = new AtomicLong(n);
        List<Thread> mine = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            done[i] = new AtomicLong();
            int stripe = i;
            mine.add(Thread.ofPlatform().name("hetmem-load-populate-" + i).unstarted(() -> populate(stripe)));
        }
        for (Thread t : mine) {
            t.start();
            started.add(t);
        }
    }

    private void populate(int stripe) {
        try {
            for (long c = stripe; c < chunks && failure.get() == null && !unsupported; c += n) {
                long off = c * chunk;
                if (!populator.populate(off, Math.min(chunk, end - off))) {
                    unsupported = true;
                    break;
                }
                done[stripe].incrementAndGet();
                wakeReaders();
            }
        } catch (RuntimeException | Error e) {
            // a page the host side could not back (userfaultfd's install under memory pressure, say): the
            // load fails with it, rather than this thread dying alone while readers wait for its chunks
            failure.compareAndSet(null, e);
        } finally {
            if (running.decrementAndGet() == 0) {
                finishedAt.set(System.nanoTime());
            }
            wakeReaders();
        }
    }

    private synchronized void wakeReaders() {
        notifyAll();
    }

    private boolean ready(long c) {
        return unsupported || done[(int) (c % n)].get() > c / n;
    }

    /** Blocks until chunk {@code c} is populated, the populators gave up, or the load failed. */
    void awaitReady(long c) throws InterruptedException {
        if (ready(c)) {
            return;
        }
        synchronized (this) {
            while (!ready(c) && failure.get() == null && running.get() > 0) {
                wait(10);
            }
        }
    }

    /** Nanoseconds from the start until every page was populated (T(allocation)); 0 if not all were. */
    long allocationNanos() {
        long f = finishedAt.get();
        long populated = 0;
        for (AtomicLong d : done) {
            populated += d.get();
        }
        return f == 0 || populated < chunks ? 0 : f - started;
    }
}
