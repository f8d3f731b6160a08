package dev.hetmem.internal;

import java.util.concurrent.CountDownLatch;

/**
 * Waits that must end before the caller goes on, whatever interrupts it meanwhile (work running
 * on other threads that uses what the caller holds): an interrupt is kept for the caller, not
 * acted on.
 */
public final class Uninterruptibly {
    private Uninterruptibly() {
    }

    /** Waits until {@code latch} reaches zero; an interrupt meanwhile is kept set for the caller. */
    public static void await(CountDownLatch latch) {
        boolean interrupted = false;
        while (latch.getCount() > 0) {
            try {
                latch.await();
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    /**
     * Waits for {@code thread} to end, at most {@code timeoutMillis} (0: for as long as it runs);
     * an interrupt meanwhile is kept set for the caller, not acted on. Returns whether it ended.
     */
    public static boolean join(Thread thread, long timeoutMillis) {
        boolean interrupted = false;
        long deadline = System.nanoTime() + java.util.concurrent.TimeUnit.MILLISECONDS.toNanos(timeoutMillis);
        try {
            while (thread.isAlive()) {
                long left = deadline - System.nanoTime();
                if (timeoutMillis != 0 && left <= 0) {
                    return false;
                }
                try {
                    if (timeoutMillis == 0) {
                        thread.join();
                    } else {
                        thread.join(java.time.Duration.ofNanos(left));
                    }
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
            return true;
        } finally {
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
