package dev.hetmem.limits;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.function.IntConsumer;

/** A measurement split over threads that start together: the shape every floor here has. */
final class Shares {
    private Shares() {}

    /**
     * Runs {@code share.accept(t)} for t in [0, threads) on that many threads, the calling thread
     * taking share 0, all released at once; returns the nanoseconds from the release until the last
     * share finished.
     *
     * @throws IllegalStateException if the calling thread is interrupted while it waits for the others
     */
    static long timed(int threads, IntConsumer share) {
        CountDownLatch start = new CountDownLatch(1);
        List<Thread> others = new ArrayList<>();
        for (int t = 1; t < threads; t++) {
            int id = t;
            others.add(Thread.ofPlatform().start(() -> {
                try {
                    start.await();
                } catch (InterruptedException e) {
                    return;
                }
                share.accept(id);
            }));
        }
        long t0 = System.nanoTime();
        start.countDown();
        share.accept(0);
        try {
            for (Thread t : others) {
                t.join();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while measuring", e);
        }
        return System.nanoTime() - t0;
    }
}
