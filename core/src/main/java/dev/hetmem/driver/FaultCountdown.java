package dev.hetmem.driver;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * A driver's fault-injection switch for tests: armed with {@code after}, the next {@code after}
 * operations pass and the one after fails; -1 disarms. Safe to consult from several copy threads.
 */
public final class FaultCountdown {
    private final AtomicInteger remaining = new AtomicInteger(-1);

    /** A disarmed switch: nothing fails until it is armed. */
    public FaultCountdown() {
    }

    /**
     * Arms or disarms the switch, replacing any earlier setting.
     *
     * @param after how many operations pass before one fails: 0 fails the next one; -1 (or any
     *              negative value) disarms
     */
    public void arm(int after) {
        remaining.set(after);
    }

    /**
     * Counts one operation; true for the one that must fail. After it has fired the switch is
     * disarmed, so exactly one operation fails per {@link #arm}.
     *
     * @return true if this operation must fail; false when disarmed or still counting down
     */
    public boolean fire() {
        while (true) {
            int c = remaining.get();
            if (c < 0) {
                return false;
            }
            if (remaining.compareAndSet(c, c - 1)) {
                return c == 0;
            }
        }
    }
}
