package dev.hetmem;

import dev.hetmem.internal.Uninterruptibly;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.function.LongSupplier;

/**
 * The next tile's prefetch in a tiled launch ({@link KernelLaunch}): its migration runs on a thread
 * of the memory while the current tile's kernel runs, and the launching thread either waits for it
 * before the next tile ({@link #await}) or, when the launch fails, stops it ({@link #cancel}).
 *
 * <p>Why a class of its own rather than a {@code CompletableFuture}: the prefetch may wait, without
 * deadline, for a pin another thread holds (a host view over the next tile's window), and that
 * thread may be waiting for this launch's outcome. A failed launch must then report its failure
 * rather than wait for the prefetch; a future's {@code cancel} neither interrupts the migration
 * nor waits for it to end, and the launching thread must not leave the launch (its regions'
 * lifecycles) while the migration still runs on them. Here {@link #cancel} interrupts the thread
 * (the engine's waits for pins and for room end on an interrupt, at points where no batch is
 * half done) and waits for it to end. A failure of the prefetch itself is no failure of the
 * launch (the tile brings its pages in anyway and reports what fails then), except an
 * {@link Error}, which {@link #await} rethrows.
 *
 * <p>State: {@code thread}, {@code cancelled}, {@code error} and {@code migrated} are guarded by
 * this object's monitor (lock L26 in docs/design.md's lock table, a leaf: nothing else is taken
 * while holding it); {@code ended} counts down once, when the migration has returned or was never
 * started.
 */
final class TilePrefetch {
    private final LongSupplier migration;
    private final CountDownLatch ended = new CountDownLatch(1);
    private Thread thread;
    private boolean cancelled;
    private Error error;
    /** Pages whose data the migration moved, once it has returned (0 if it failed or never ran). */
    private long migrated;

    private TilePrefetch(LongSupplier migration) {
        this.migration = migration;
    }

    /**
     * Starts {@code migration} on {@code executor}, which returns the pages whose data it moved; a
     * {@link RuntimeException} it throws is only a lost head start, and so is an executor that
     * refuses it (the memory is closing: the tile itself then finds out) or a thread that cannot
     * start (an {@link OutOfMemoryError} "unable to create native thread": the launch goes on
     * without the head start, the tile brings its own pages in).
     */
    static TilePrefetch start(Executor executor, LongSupplier migration) {
        TilePrefetch p = new TilePrefetch(migration);
        try {
            executor.execute(p::run);
        } catch (RejectedExecutionException | OutOfMemoryError e) {
            System.getLogger(TilePrefetch.class.getName()).log(System.Logger.Level.DEBUG, "tile prefetch not started", e);
            p.ended.countDown();   // never ran: nothing to wait for
        }
        return p;
    }

    private void run() {
        synchronized (this) {
            if (cancelled) {
                ended.countDown();
                return;
            }
            thread = Thread.currentThread();
        }
        try {
            long moved = migration.getAsLong();
            synchronized (this) {
                migrated = moved;
            }
        } catch (RuntimeException e) {
            System.getLogger(TilePrefetch.class.getName()).log(System.Logger.Level.DEBUG, "tile prefetch failed", e);
        } catch (Error e) {
            synchronized (this) {
                error = e;
            }
        } finally {
            synchronized (this) {
                thread = null;
            }
            ended.countDown();
        }
    }

    /**
     * Waits until the prefetch has ended, then rethrows an {@link Error} it ended with; returns the
     * pages whose data it moved (0 if it failed). If this thread is interrupted meanwhile, the
     * prefetch is cancelled and the launch fails with the interrupt (kept set), as the engine's own
     * waits do.
     */
    long await() {
        if (ended.getCount() != 0) {   // an interrupt pending while nothing is left to wait for fails nothing
            try {
                ended.await();
            } catch (InterruptedException e) {
                cancel();
                Thread.currentThread().interrupt();
                throw new InterruptedOperationException("interrupted while waiting for the next tile's pages", e);
            }
        }
        Error e;
        long moved;
        synchronized (this) {
            e = error;
            moved = migrated;
        }
        if (e != null) {
            throw e;
        }
        return moved;
    }

    /**
     * Stops the prefetch (its thread interrupted if it is running, or it never starts) and waits for
     * it to end, uninterruptibly (an interrupt meanwhile is kept). Returns an {@link Error} it ended
     * with, for the caller to add to the failure it reports, or null.
     */
    Error cancel() {
        synchronized (this) {
            cancelled = true;
            if (thread != null) {
                thread.interrupt();
            }
        }
        Uninterruptibly.await(ended);
        synchronized (this) {
            return error;
        }
    }
}
