package dev.hetmem;

import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.device.emulated.EmulatedKernel;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.ValueLayout;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

import static dev.hetmem.MemoryFixture.MiB;
import static dev.hetmem.MemoryFixture.verified;
import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

/**
 * A work item that asks for its own launch's pinned pages elsewhere, on a compute thread other
 * than the launching one (CallerThreads): refused as on the launching thread. The launch's pins
 * are the launching thread's and go only when every item has returned, so the call waited for
 * ever there (a host view of its own argument: the launch never ended, and closing the memory gave
 * up after its timeout).
 */
@Tag("emulated") // Java work items on compute threads are the emulated device's
class WorkItemOnAComputeThreadTest {
    private static final int ITEMS = 256;

    @ParameterizedTest
    @ValueSource(strings = {"host view", "prefetch home", "prefetchAsync home", "prefetchPlainAsync"})
    void askingForItsOwnLaunchsPinnedPagesIsRefusedNotWaitedFor(String call) throws InterruptedException {
        EmulatedDevice dev = EmulatedDevice.builder().capacity(16 * MiB).computeThreads(2).build();
        UnifiedMemory mem = MemoryFixture.memoryOf(dev);
        Region r = mem.allocate(4 * MiB);
        AtomicReference<Object> outcome = new AtomicReference<>();
        AtomicBoolean asked = new AtomicBoolean();
        Thread launcher = Thread.ofPlatform().daemon().name("launcher").unstarted(() -> mem.launch(1, (EmulatedKernel) (a, i) -> {
            a.arg(0).putLong(8 * i, i + 1);
            if (!Thread.currentThread().getName().equals("launcher") && asked.compareAndSet(false, true)) {
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
                }
            } else {
                try {
                    Thread.sleep(1);   // the items last long enough for the other compute thread to take some
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        }, ITEMS, KernelArg.readWrite(r)));
        launcher.start();
        launcher.join(20_000);
        // a hung launch leaves its threads (daemons) and the memory open: closing it would give up after a minute
        assertFalse(launcher.isAlive(), "the launch still runs after 20 s: the work item's " + call + " waits for its own launch");
        try {
            assertInstanceOf(PinnedByCallerException.class, outcome.get(), "the work item's " + call + " on a compute thread");
            try (HostView v = r.host(0, ITEMS * 8L, Access.READ)) {
                for (int i = 0; i < ITEMS; i++) {
                    assertEquals(i + 1, v.segment().getAtIndex(ValueLayout.JAVA_LONG, i), "item " + i + " ran");
                }
            }
            verified(mem);
        } finally {
            mem.close();
        }
    }
}
