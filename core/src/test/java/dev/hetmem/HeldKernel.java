package dev.hetmem;

import dev.hetmem.device.emulated.EmulatedKernel;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/**
 * A one-item emulated kernel on a thread of its own that keeps its arguments pinned on a device
 * until released: what tests race frees, host accesses and other launches against.
 */
final class HeldKernel {
    private final CountDownLatch running = new CountDownLatch(1);
    private final CountDownLatch release = new CountDownLatch(1);
    private final AtomicReference<Throwable> failed = new AtomicReference<>();
    private final Thread thread;

    /** Launches it on {@code node} over {@code args}. */
    HeldKernel(UnifiedMemory mem, int node, KernelArg... args) {
        thread = Thread.ofPlatform().start(() -> {
            try {
                mem.launch(node, (EmulatedKernel) (a, i) -> {
                    running.countDown();
                    try {
                        release.await();
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }, 1, args);
            } catch (Throwable t) {
                failed.set(t);
            }
        });
    }

    /** Whether its item is running (its arguments pinned) within {@code seconds}. */
    boolean awaitRunning(long seconds) throws InterruptedException {
        return running.await(seconds, TimeUnit.SECONDS);
    }

    /** Lets the item end and waits up to 10 s for the launch to return. */
    void release() throws InterruptedException {
        release.countDown();
        thread.join(10_000);
    }

    /** What the launch threw, or null. */
    Throwable failure() {
        return failed.get();
    }
}
