package dev.hetmem.driver;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * A driver's fault-injection switch for tests: armed with {@code after}, the next {@code after}
 * operations pass and the one after fails; -1 disarms. Safe to consult from several copy threads.
 */
public final class FaultCountdown {
    private final AtomicInteger remaining = new AtomicInteger(-1);

    public void arm(int after) {
        remaining.set(after);
    }

    /** Counts one operation; true for the one that must fail. */
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
