package dev.hetmem.limits;

import dev.hetmem.internal.Uninterruptibly;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.IntConsumer;

/** A measurement split over threads that start together: the shape every floor here has. */
final class Shares {
    private Shares() {}

    /**
     * Runs {@code share.accept(t)} for t in [0, threads) on that many threads, the calling thread
     * taking share 0, all released at once; returns the nanoseconds from the release until the last
     * share finished.
     *
     * <p>Returns or throws only once every share has ended, whatever happens meanwhile: the shares
     * work on memory the caller frees as soon as this returns (a share still copying into an
     * unmapped buffer would crash the JVM). It threw on an interrupt, and on a failure of share 0,
     * with the other shares still running, and a failure of another share was only printed by the
     * thread's default handler.
     *
     * @throws IllegalStateException if the calling thread was interrupted meanwhile (its interrupt
     *         kept set), or a share failed (that failure, the first of them)
     */
    static long timed(int threads, IntConsumer share) {
        CountDownLatch start = new CountDownLatch(1);
        AtomicReference<Throwable> failed = new AtomicReference<>();
        List<Thread> others = new ArrayList<>();
        boolean allStarted = false;
        try {
            for (int t = 1; t < threads; t++) {
                int id = t;
                others.add(Thread.ofPlatform().start(() -> {
                    Uninterruptibly.await(start);   // an interrupt of this thread is nobody's but the measure's
                    try {
                        share.accept(id);
                    } catch (Throwable e) {
                        failed.compareAndSet(null, e);
                    }
                }));
            }
            allStarted = true;
        } catch (Throwable e) {
            failed.set(e);   // no thread for a share: those started run theirs and are waited for below
        }
        long t0 = System.nanoTime();
        start.countDown();
        if (allStarted) {   // not failed.get(): another share may have failed already, and this one still runs
            try {
                share.accept(0);
            } catch (Throwable e) {
                failed.compareAndSet(null, e);
            }
        }
        for (Thread t : others) {
            Uninterruptibly.join(t, 0);
        }
        long nanos = System.nanoTime() - t0;
        Throwable e = failed.get();
        if (e instanceof Error err) {
            throw err;
        }
        if (e != null) {
            throw e instanceof RuntimeException re ? re : new IllegalStateException(e);
        }
        if (Thread.currentThread().isInterrupted()) {
            throw new IllegalStateException("interrupted while measuring");
        }
        return nanos;
    }
}
