package dev.hetmem;

import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.device.emulated.EmulatedKernel;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.ValueLayout;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

import static dev.hetmem.MemoryFixture.MiB;
import static dev.hetmem.MemoryFixture.verified;
import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Work items on a compute thread other than the launching one ({@code CallerThreads}): one that
 * asks for its own launch's pinned pages elsewhere is refused as on the launching thread (the
 * launch's pins are the launching thread's and go only when every item has returned: the call
 * waited for ever, and closing the memory gave up after its timeout), and so is one that asks for
 * a page the launching thread keeps in a view over the launch; one that needs a page an item on
 * the launching thread holds for a while waits for it, as any other thread does.
 */
@Tag("emulated") // Java work items on compute threads are the emulated device's
class WorkItemOnAComputeThreadTest {
    private static final int ITEMS = 256;
    private static final String LAUNCHER = "launcher";

    /** Runs {@code launch} on a thread named {@value #LAUNCHER}; false if it still runs after 20 s (its failure in {@code failed}). */
    private static boolean ranOut(Runnable launch, AtomicReference<Throwable> failed) throws InterruptedException {
        Thread launcher = Thread.ofPlatform().daemon().name(LAUNCHER).unstarted(() -> {
            try {
                launch.run();
            } catch (Throwable e) {
                failed.set(e);
            }
        });
        launcher.start();
        launcher.join(20_000);
        return !launcher.isAlive();
    }

    private static UnifiedMemory memoryOnTwoComputeThreads() {
        return MemoryFixture.memoryOf(EmulatedDevice.builder().capacity(16 * MiB).computeThreads(2).build());
    }

    /**
     * Runs {@code checks}, then verifies {@code mem}, and closes it whatever they threw (called once
     * the launch has ended: a hung one's threads would hold the close for a minute).
     */
    private static void checkThenClose(UnifiedMemory mem, Runnable checks) {
        try {
            checks.run();
            verified(mem);
        } finally {
            mem.close();
        }
    }

    private static boolean onTheLauncher() {
        return Thread.currentThread().getName().equals(LAUNCHER);
    }

    private static void await(CountDownLatch latch, String what) {
        try {
            if (!latch.await(10, TimeUnit.SECONDS)) {
                throw new AssertionError("10 s without " + what);
            }
        } catch (InterruptedException e) {
            throw new AssertionError("interrupted waiting for " + what, e);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"host view", "prefetch home", "prefetchAsync home", "prefetchPlainAsync"})
    void askingForItsOwnLaunchsPinnedPagesIsRefusedNotWaitedFor(String call) throws InterruptedException {
        UnifiedMemory mem = memoryOnTwoComputeThreads();
        Region r = mem.allocate(4 * MiB);
        AtomicReference<Object> outcome = new AtomicReference<>();
        AtomicBoolean asked = new AtomicBoolean();
        CountDownLatch answered = new CountDownLatch(1);
        AtomicReference<Throwable> failed = new AtomicReference<>();
        boolean ended = ranOut(() -> mem.launch(1, (EmulatedKernel) (a, i) -> {
            a.arg(0).putLong(8 * i, i + 1);
            if (onTheLauncher()) {
                await(answered, "the compute thread's call");   // so that the other compute thread runs an item
            } else if (asked.compareAndSet(false, true)) {
                try {
                    switch (call) {
                        case "host view" -> r.host(0, PAGE_BYTES, Access.READ).close();
                        case "prefetch home" -> mem.prefetch(r, new long[] {0}, PAGE_BYTES, 0);
                        case "prefetchAsync home" -> mem.prefetchAsync(r, 0, PAGE_BYTES, 0).join();
                        default -> mem.prefetchPlainAsync(r, 0, 2 * MiB, 1).join();
                    }
                    outcome.set("returned");
                } catch (RuntimeException e) {
                    outcome.set(e);
                } finally {
                    answered.countDown();
                }
            }
        }, ITEMS, KernelArg.readWrite(r)), failed);
        // a hung launch leaves its threads (daemons) and the memory open: closing it would give up after a minute
        assertTrue(ended, "the launch still runs after 20 s: the work item's " + call + " waits for its own launch");
        checkThenClose(mem, () -> {
            assertNull(failed.get(), "the launch failed");
            assertInstanceOf(PinnedByCallerException.class, outcome.get(), "the work item's " + call + " on a compute thread");
            try (HostView v = r.host(0, ITEMS * 8L, Access.READ)) {
                for (int i = 0; i < ITEMS; i++) {
                    assertEquals(i + 1, v.segment().getAtIndex(ValueLayout.JAVA_LONG, i), "item " + i + " ran");
                }
            }
        });
    }

    @Test
    void aPageAnItemOnTheLaunchingThreadHoldsIsWaitedFor() throws InterruptedException {
        UnifiedMemory mem = memoryOnTwoComputeThreads();
        Region r = mem.allocate(2 * MiB);
        Region other = mem.allocate(2 * MiB);   // no argument of the launch
        CountDownLatch viewOpen = new CountDownLatch(1);
        CountDownLatch asking = new CountDownLatch(1);
        AtomicBoolean opened = new AtomicBoolean();
        AtomicBoolean asked = new AtomicBoolean();
        AtomicReference<Thread> asker = new AtomicReference<>();
        AtomicBoolean sawTheWait = new AtomicBoolean();
        AtomicReference<Object> outcome = new AtomicReference<>();
        AtomicReference<Throwable> failed = new AtomicReference<>();
        boolean ended = ranOut(() -> mem.launch(1, (EmulatedKernel) (a, i) -> {
            if (onTheLauncher() && opened.compareAndSet(false, true)) {
                // a pin the launching thread takes after it launched, in an item: a view held a while
                try (HostView v = other.host(0, PAGE_BYTES, Access.WRITE)) {
                    v.segment().set(ValueLayout.JAVA_LONG, 0, 42);
                    viewOpen.countDown();
                    await(asking, "the compute thread's prefetch");
                    // closed once the prefetch waits for the view's pin (or after 10 s, or once it has an answer)
                    for (long end = System.nanoTime() + 10_000_000_000L; System.nanoTime() < end && outcome.get() == null; ) {
                        if (java.util.Arrays.stream(asker.get().getStackTrace()).anyMatch(f -> f.getMethodName().equals("awaitRelease"))) {
                            sawTheWait.set(true);
                            break;
                        }
                        java.util.concurrent.locks.LockSupport.parkNanos(1_000_000);   // the other core to the prefetch
                    }
                }
            } else if (!onTheLauncher() && asked.compareAndSet(false, true)) {
                await(viewOpen, "the launching thread's view");
                asker.set(Thread.currentThread());
                asking.countDown();
                try {
                    outcome.set(mem.prefetch(other, new long[] {0}, PAGE_BYTES, 1));
                } catch (RuntimeException e) {
                    outcome.set(e);
                }
            }
        }, 64, KernelArg.readWrite(r)), failed);
        assertTrue(ended, "the launch still runs after 20 s");
        checkThenClose(mem, () -> {
            assertNull(failed.get(), "the launch failed");
            assertInstanceOf(Long.class, outcome.get(), "the compute thread's prefetch waited for the view and moved the page");
            assertTrue(sawTheWait.get(), "the prefetch was seen waiting for the view's pin");
            assertTrue(other.snapshot(0, PAGE_BYTES).residentOn(0, 1), "the page on the device");
            try (HostView v = other.host(0, PAGE_BYTES, Access.READ)) {
                assertEquals(42, v.segment().get(ValueLayout.JAVA_LONG, 0), "the view's store moved with the page");
            }
        });
    }

    @Test
    void aViewTheLaunchingThreadKeepsOverTheLaunchIsRefusedNotWaitedFor() throws InterruptedException {
        UnifiedMemory mem = memoryOnTwoComputeThreads();
        Region r = mem.allocate(2 * MiB);
        Region other = mem.allocate(2 * MiB);   // no argument of the launch
        AtomicBoolean asked = new AtomicBoolean();
        CountDownLatch answered = new CountDownLatch(1);
        AtomicReference<Object> outcome = new AtomicReference<>();
        AtomicReference<Throwable> failed = new AtomicReference<>();
        // the launching thread's view goes only after the launch returns: a compute thread's item cannot wait for it
        boolean ended = ranOut(() -> {
            try (HostView kept = other.host(0, PAGE_BYTES, Access.WRITE)) {
                kept.segment().set(ValueLayout.JAVA_LONG, 0, 7);
                mem.launch(1, (EmulatedKernel) (a, i) -> {
                    if (onTheLauncher()) {
                        await(answered, "the compute thread's prefetch");
                    } else if (asked.compareAndSet(false, true)) {
                        try {
                            outcome.set(mem.prefetch(other, new long[] {0}, PAGE_BYTES, 1));
                        } catch (RuntimeException e) {
                            outcome.set(e);
                        } finally {
                            answered.countDown();
                        }
                    }
                }, 64, KernelArg.readWrite(r));
            }
        }, failed);
        assertTrue(ended, "the launch still runs after 20 s: the work item's prefetch waits for a view kept over its launch");
        checkThenClose(mem, () -> {
            assertNull(failed.get(), "the launch failed");
            assertInstanceOf(PinnedByCallerException.class, outcome.get(), "the compute thread's prefetch");
            try (HostView v = other.host(0, PAGE_BYTES, Access.READ)) {
                assertEquals(7, v.segment().get(ValueLayout.JAVA_LONG, 0));
            }
        });
    }

    @Test
    void aKernelLaunchedFromAWorkItemActsForTheOuterLaunchToo() throws InterruptedException {
        UnifiedMemory mem = memoryOnTwoComputeThreads();
        Region outer = mem.allocate(2 * MiB);
        Region inner = mem.allocate(2 * MiB);
        AtomicBoolean launchedInner = new AtomicBoolean();
        AtomicBoolean asked = new AtomicBoolean();
        CountDownLatch answered = new CountDownLatch(1);
        AtomicReference<Object> outcome = new AtomicReference<>();
        AtomicReference<Throwable> failed = new AtomicReference<>();
        // an item on a compute thread launches a kernel; that kernel's item asks for the outer launch's page
        boolean ended = ranOut(() -> mem.launch(1, (EmulatedKernel) (a, i) -> {
            if (onTheLauncher()) {
                await(answered, "the inner kernel's item's call");
            } else if (launchedInner.compareAndSet(false, true)) {
                mem.launch(1, (EmulatedKernel) (b, j) -> {
                    if (asked.compareAndSet(false, true)) {
                        try {
                            outer.host(0, PAGE_BYTES, Access.READ).close();
                            outcome.set("returned");
                        } catch (RuntimeException e) {
                            outcome.set(e);
                        } finally {
                            answered.countDown();
                        }
                    }
                }, 8, KernelArg.readWrite(inner));
            }
        }, 64, KernelArg.readWrite(outer)), failed);
        assertTrue(ended, "the launch still runs after 20 s: the inner kernel's item waits for the outer launch");
        checkThenClose(mem, () -> {
            assertNull(failed.get(), "the launch failed");
            assertInstanceOf(PinnedByCallerException.class, outcome.get(), "the inner kernel's item's host view of the outer argument");
        });
    }
}
