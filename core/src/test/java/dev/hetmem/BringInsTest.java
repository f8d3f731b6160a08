package dev.hetmem;

import dev.hetmem.device.emulated.EmulatedKernel;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.ValueLayout;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

import static dev.hetmem.MemoryFixture.MiB;
import static dev.hetmem.MemoryFixture.PAGE;
import static dev.hetmem.MemoryFixture.check;
import static dev.hetmem.MemoryFixture.emulated;
import static dev.hetmem.MemoryFixture.fill;
import static dev.hetmem.MemoryFixture.verified;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Demand before speculation ({@link BringIns}): an asynchronous prefetch to a device starts once
 * the launches bringing their arguments in to it when it came have them, not waiting for later
 * ones, nor longer than its limit.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class BringInsTest {
    @Test
    void aPrefetchWaitsForTheBringInsRunningWhenItCameAndNoLater() throws Exception {
        BringIns b = new BringIns(3, 60_000_000_000L);
        assertTrue(b.awaitRunning(1), "no bring-in: no wait");
        long first = b.begin(1);
        long second = b.begin(1);
        long other = b.begin(2);
        CompletableFuture<Boolean> waiter = CompletableFuture.supplyAsync(() -> b.awaitRunning(1));
        Thread.sleep(100);
        assertFalse(waiter.isDone(), "two bring-ins to node 1: the prefetch waits");
        assertTrue(b.awaitRunning(0), "another node's bring-ins hold no prefetch to the host");
        b.end(1, first);
        Thread.sleep(100);
        assertFalse(waiter.isDone(), "one bring-in to node 1 left: the prefetch still waits");
        long later = b.begin(1);   // began after the prefetch came: not waited for
        b.end(1, second);
        assertTrue(waiter.get(10, TimeUnit.SECONDS), "the bring-ins it came upon ended: the prefetch goes on");
        assertEquals(1, b.running(1), "the later bring-in still runs");
        assertEquals(1, b.running(2), "node 2's bring-in still counted");
        b.end(1, later);
        b.end(2, other);
        assertEquals(0, b.running(1));
        assertEquals(0, b.running(2));
    }

    @Test
    void aPrefetchWaitsNoLongerThanTheLimitNorThroughAnInterrupt() throws Exception {
        BringIns b = new BringIns(2, 200_000_000L);
        b.begin(1);
        long t0 = System.nanoTime();
        assertFalse(b.awaitRunning(1), "a bring-in that never ends: the prefetch starts anyway");
        assertTrue(System.nanoTime() - t0 >= 200_000_000L, "it waited out its limit first");

        BringIns longer = new BringIns(2, 60_000_000_000L);
        longer.begin(1);
        AtomicBoolean interruptSeen = new AtomicBoolean();
        Thread waiter = Thread.ofPlatform().start(() -> {
            longer.awaitRunning(1);
            interruptSeen.set(Thread.currentThread().isInterrupted());
        });
        Thread.sleep(100);
        waiter.interrupt();
        waiter.join(10_000);
        assertFalse(waiter.isAlive(), "an interrupt ends the wait");
        assertTrue(interruptSeen.get(), "and stays set for the prefetch to see");
    }

    /**
     * A launch whose bring-in waits (for a host view another thread keeps over its argument) holds
     * off an asynchronous prefetch of another region to its device until it has its pages; then
     * both complete, and every byte is where it should be. Without the wait the prefetch moved its
     * 4 MiB at once, beside the bring-in.
     */
    @Test
    @Tag("emulated")
    void anAsynchronousPrefetchStartsOnceTheLaunchBringingItsArgumentsInHasThem() throws Exception {
        // a limit no pause of a busy machine reaches: the prefetch is held for as long as the bring-in lasts
        try (UnifiedMemory mem = UnifiedMemory.builder().copyThreads(2).device(emulated(16 * MiB))
                .bringInWait(60_000_000_000L).build()) {
            Region arg = mem.allocate(2 * MiB);
            Region later = mem.allocate(4 * MiB);
            fill(arg, 0, 2 * MiB, 11);
            fill(later, 0, 4 * MiB, 12);
            CountDownLatch viewOpen = new CountDownLatch(1);
            CountDownLatch closeView = new CountDownLatch(1);
            Thread viewer = Thread.ofPlatform().start(() -> {
                try (HostView v = arg.host(0, PAGE, Access.WRITE)) {
                    v.segment().set(ValueLayout.JAVA_LONG, 0, 42);
                    viewOpen.countDown();
                    closeView.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
            assertTrue(viewOpen.await(10, TimeUnit.SECONDS), "the view opened");
            AtomicReference<Throwable> launchFailed = new AtomicReference<>();
            Thread launcher = Thread.ofPlatform().start(() -> {
                try {
                    mem.launch(1, (EmulatedKernel) (a, i) -> a.arg(0).putLong(8, a.arg(0).getLong(8) + 1), 1,
                            KernelArg.readWrite(arg));
                } catch (Throwable t) {
                    launchFailed.set(t);
                }
            });
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (mem.bringIns().running(1) == 0 && System.nanoTime() < deadline) {
                Thread.sleep(1);
            }
            assertEquals(1, mem.bringIns().running(1), "the launch is bringing its argument in (waiting for the view)");
            CompletableFuture<Long> prefetch = mem.prefetchAsync(later, 0, 4 * MiB, 1);
            Thread.sleep(300);
            try {
                assertFalse(prefetch.isDone(), "the prefetch started beside the bring-in");
                assertFalse(later.snapshot(0, PAGE).residentOn(0, 1), "a page of the prefetch moved beside the bring-in");
            } finally {
                closeView.countDown();
            }
            viewer.join(10_000);
            launcher.join(10_000);
            assertFalse(launcher.isAlive(), "the launch ended");
            assertEquals(null, launchFailed.get(), "the launch failed");
            assertEquals(4 * MiB / PAGE, prefetch.get(10, TimeUnit.SECONDS), "the prefetch moved its pages after the launch");
            PageSnapshot s = later.snapshot(0, 4 * MiB);
            for (int p = 0; p < 4 * MiB / PAGE; p++) {
                assertTrue(s.residentOn(p, 1), "page " + p + " on the device");
            }
            assertEquals(0, mem.bringIns().running(1), "no bring-in left counted");
            check(later, 0, 4 * MiB, 12);
            try (HostView v = arg.host(0, 2 * PAGE, Access.READ)) {
                assertEquals(42, v.segment().get(ValueLayout.JAVA_LONG, 0), "the view's store");
                long seeded = MemoryFixture.value(11, 1);
                assertEquals(seeded + 1, v.segment().get(ValueLayout.JAVA_LONG, 8), "the kernel's store");
            }
            verified(mem);
        }
    }
}
