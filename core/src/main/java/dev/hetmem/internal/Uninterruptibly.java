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
}
