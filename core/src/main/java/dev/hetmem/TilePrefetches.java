package dev.hetmem;

import java.util.ArrayDeque;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.function.LongSupplier;

/**
 * The coming tiles' prefetches in a tiled launch ({@link KernelLaunch}): their migrations run one
 * after another, in the order the launch asked for them, on one thread of the memory while the
 * launching thread runs tiles; the launching thread waits for a tile's prefetch before that tile
 * ({@link #await}) or, when the launch fails, stops them all ({@link #cancel}).
 *
 * <p>Why a queue with one thread: a launch keeps more than one tile's prefetch on its way (its
 * small tiles' data is still in the caches when their kernels read it, and the prefetch thread
 * never waits for the launching thread to hand it the next tile), yet the tiles' pages go to the
 * device in the order the tiles run, one migration at a time, beside the kernel rather than in
 * competition with it. One thread drains the queue while it holds work ({@link #drain}), and ends
 * when it is empty; the next {@link #submit} starts another.
 *
 * <p>Why not {@code CompletableFuture}s: a prefetch may wait, without deadline, for a pin another
 * thread holds (a host view over a coming tile's window), and that thread may be waiting for this
 * launch's outcome. A failed launch must then report its failure rather than wait for the
 * prefetches; a future's {@code cancel} neither interrupts the migration nor waits for it to end,
 * and the launching thread must not leave the launch (its regions' lifecycles) while a migration
 * still runs on them. Here {@link #cancel} drops the prefetches not yet started, interrupts the
 * thread running one (the engine's waits for pins and for room end on an interrupt, at points where
 * no batch is half done) and waits for it to end. A failure of a prefetch itself is no failure of
 * the launch (the tile brings its pages in anyway and reports what fails then), except an
 * {@link Error}, which {@link #await} rethrows.
 *
 * <p>Threads: {@link #submit}, {@link #await} and {@link #cancel} are called by the launching thread
 * alone; the drain's thread is the only other. State: {@code queued}, {@code draining},
 * {@code worker}, {@code cancelled} and {@code unreported}, and each {@link Prefetch}'s
 * {@code migrated} and {@code error}, are guarded by this object's monitor (lock
 * L26 in docs/design.md's lock table, a leaf: nothing else is taken while holding it, the interrupt
 * of the worker and the count-down of dropped prefetches' latches the only calls made under it; the
 * drain's thread is started outside it).
 * Invariants: {@code worker != null} only while {@code draining}; a prefetch is in {@code queued}
 * only while {@code draining} (a thread runs or is being started for it); each prefetch's
 * {@code ended} counts down once, when its migration has returned or it was dropped.
 */
final class TilePrefetches {
    /** One tile's prefetch: what it moved, or the {@link Error} it ended with. */
    static final class Prefetch {
        private final LongSupplier migration;
        private final CountDownLatch ended = new CountDownLatch(1);
        /** Pages whose data the migration moved, once it has returned (0 if it failed or never ran). */
        private long migrated;
        private Error error;

        private Prefetch(LongSupplier migration) {
            this.migration = migration;
        }
    }

    private final Executor executor;
    private final ArrayDeque<Prefetch> queued = new ArrayDeque<>();
    private boolean draining;
    private Thread worker;
    private boolean cancelled;
    /** An {@link Error} a prefetch ended with that no {@link #await} has rethrown yet, or null. */
    private Error unreported;

    TilePrefetches(Executor executor) {
        this.executor = executor;
    }

    /**
     * Queues {@code migration} (which returns the pages whose data it moved) behind the prefetches
     * asked for before it. A {@link RuntimeException} it throws is only a lost head start, and so is
     * an executor that refuses the thread (the memory is closing: the tile itself then finds out) or
     * a thread that cannot start (an {@link OutOfMemoryError} "unable to create native thread": the
     * launch goes on without the head start, each tile brings its own pages in).
     */
    Prefetch submit(LongSupplier migration) {
        Prefetch p = new Prefetch(migration);
        synchronized (this) {
            if (cancelled) {
                p.ended.countDown();
                return p;
            }
            queued.add(p);
            if (draining) {
                return p;
            }
            draining = true;   // this call starts the thread, outside the monitor (L26 takes nothing else)
        }
        try {
            executor.execute(this::drain);
        } catch (Throwable e) {
            stopDraining();   // never ran: nothing to wait for (a cancel() would wait for ever otherwise)
            if (!(e instanceof RejectedExecutionException || e instanceof OutOfMemoryError)) {
                throw e;
            }
            System.getLogger(TilePrefetches.class.getName()).log(System.Logger.Level.DEBUG, "tile prefetch not started", e);
        }
        return p;
    }

    /**
     * Runs the queued prefetches in order until none is left or the launch cancels them. Whatever
     * escapes (an {@link Error} of the logging, say) still ends the drain as an empty queue does:
     * the prefetches left are dropped, so that no {@link #await} or {@link #cancel} waits for them.
     */
    private void drain() {
        boolean ended = false;
        try {
            while (true) {
                Prefetch p;
                synchronized (this) {
                    if (cancelled || queued.isEmpty()) {
                        // under the hold that saw the queue empty: a submit after it starts a thread of its own
                        stopDraining();
                        ended = true;
                        return;
                    }
                    p = queued.poll();
                    worker = Thread.currentThread();
                }
                try {
                    long moved = p.migration.getAsLong();
                    synchronized (this) {
                        p.migrated = moved;
                    }
                } catch (RuntimeException e) {
                    System.getLogger(TilePrefetches.class.getName()).log(System.Logger.Level.DEBUG, "tile prefetch failed", e);
                } catch (Error e) {
                    synchronized (this) {
                        p.error = e;
                        if (unreported == null) {
                            unreported = e;
                        }
                    }
                } finally {
                    synchronized (this) {
                        worker = null;
                    }
                    Thread.interrupted();   // cancel()'s interrupt, if it came after the migration returned: no other's
                    p.ended.countDown();
                }
            }
        } finally {
            if (!ended) {
                stopDraining();
            }
        }
    }

    /** The drain is over: those still queued dropped (none unless cancelled or failed), and {@link #cancel} told. */
    private synchronized void stopDraining() {
        dropQueued();
        draining = false;
        notifyAll();   // cancel() waits for the end
    }

    private void dropQueued() {
        assert Thread.holdsLock(this);
        for (Prefetch q; (q = queued.poll()) != null; ) {
            q.ended.countDown();
        }
    }

    /**
     * Waits until {@code p} has ended, then rethrows an {@link Error} it ended with; returns the
     * pages whose data it moved (0 if it failed or was dropped). If this thread is interrupted
     * meanwhile, every prefetch is cancelled and the launch fails with the interrupt (kept set), as
     * the engine's own waits do.
     */
    long await(Prefetch p) {
        if (p.ended.getCount() != 0) {   // an interrupt pending while nothing is left to wait for fails nothing
            try {
                p.ended.await();
            } catch (InterruptedException e) {
                cancel();
                Thread.currentThread().interrupt();
                throw new InterruptedOperationException("interrupted while waiting for the next tile's pages", e);
            }
        }
        synchronized (this) {
            if (p.error != null) {
                if (unreported == p.error) {
                    unreported = null;
                }
                throw p.error;
            }
            return p.migrated;
        }
    }

    /**
     * Stops the prefetches (those not started dropped, the thread running one interrupted) and
     * waits for that thread to be done with them, uninterruptibly (an interrupt meanwhile is kept).
     * Returns an {@link Error} one ended with that no {@link #await} rethrew, for the caller to add
     * to the failure it reports, or null.
     */
    Error cancel() {
        boolean interrupted = false;
        synchronized (this) {
            cancelled = true;
            dropQueued();
            if (worker != null) {
                worker.interrupt();
            }
            while (draining) {
                try {
                    wait();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        synchronized (this) {
            return unreported;
        }
    }
}
