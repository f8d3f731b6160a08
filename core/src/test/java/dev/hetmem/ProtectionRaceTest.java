package dev.hetmem;

import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.device.emulated.EmulatedKernel;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import static dev.hetmem.MemoryFixture.MiB;
import static dev.hetmem.MemoryFixture.PAGE;
import static dev.hetmem.MemoryFixture.check;
import static dev.hetmem.MemoryFixture.fill;
import static dev.hetmem.MemoryFixture.verified;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Protection against accesses that race it, and partial frees and granularity advice that would
 * let a granule reach freed pages (from a review of advice and range attributes).
 */
@Tag("emulated") // a kernel here waits on a latch: Java code
class ProtectionRaceTest {
    /**
     * A write view whose check passed before a {@code protect} but whose pages came later (it
     * waited for a kernel reading them on the device) was handed out writable after protect had
     * returned. The engine checks again under the block locks: the view is refused.
     */
    @Test
    void aWriteViewWaitingWhileTheRangeIsMadeReadOnlyIsRefused() throws Exception {
        try (UnifiedMemory mem = UnifiedMemory.builder().device(EmulatedDevice.builder().capacity(8 * MiB).build()).build()) {
            Region r = mem.allocate(2 * MiB, PAGE);
            fill(r, 0, r.size(), 3);
            CountDownLatch running = new CountDownLatch(1);
            CountDownLatch finish = new CountDownLatch(1);
            // threads of their own (the common pool has one thread on two cores: the writer waited behind the reader)
            java.util.concurrent.ExecutorService threads = java.util.concurrent.Executors.newThreadPerTaskExecutor(
                    Thread.ofPlatform().factory());
            CompletableFuture<LaunchResult> reader = CompletableFuture.supplyAsync(() -> mem.launch(1, (EmulatedKernel) (args, i) -> {
                running.countDown();
                try {
                    finish.await();
                } catch (InterruptedException e) {
                    throw new IllegalStateException(e);
                }
                args.arg(0).getLong(0);
            }, 1, KernelArg.of(r, 0, PAGE, Access.READ)), threads);
            assertTrue(running.await(30, TimeUnit.SECONDS), "the kernel runs, pinning page 0 on the device");
            Thread[] writing = new Thread[1];
            CompletableFuture<Void> writer = CompletableFuture.runAsync(() -> {
                writing[0] = Thread.currentThread();
                try (HostView v = r.host(0, PAGE, Access.WRITE)) {   // waits for the kernel's pin
                    v.segment().set(java.lang.foreign.ValueLayout.JAVA_LONG, 0, 42);
                }
            }, threads);
            // past its check, waiting for the pin: else the check alone would refuse it and prove nothing
            long deadline = System.nanoTime() + 30_000_000_000L;
            while ((writing[0] == null || writing[0].getState() != Thread.State.WAITING
                    && writing[0].getState() != Thread.State.TIMED_WAITING) && System.nanoTime() < deadline) {
                Thread.sleep(5);
            }
            assertTrue(java.util.Arrays.stream(writing[0].getStackTrace()).anyMatch(f -> f.getMethodName().equals("ensure")),
                    "the writer waits inside the engine for the kernel's pin");
            r.protect(0, PAGE, Protection.READ_ONLY);
            finish.countDown();
            reader.get(30, TimeUnit.SECONDS);
            ExecutionException e = assertThrows(ExecutionException.class, () -> writer.get(30, TimeUnit.SECONDS));
            assertInstanceOf(ProtectionException.class, e.getCause(), "the write view was refused: " + e.getCause());
            check(r, 0, r.size(), 3);   // nothing written
            verified(mem);
            threads.close();
        }
    }

    /**
     * Page 0 advised a 2 MiB granule, pages 1-3 kept 4 KiB: freeing page 2 was accepted (only the
     * neighbours' granules were checked), and in userfaultfd mode a fault on page 0 brought page 2
     * back as a zero page the page table counted as the host's. Refused now, naming the granule.
     */
    @Test
    void aFreeThatAFartherGranuleReachesIntoIsRefused() {
        try (UnifiedMemory mem = UnifiedMemory.builder().device(EmulatedDevice.builder().capacity(8 * MiB).build()).build()) {
            Region r = mem.allocate(8 * MiB, PAGE);
            r.advise(0, PAGE, Advice.granularity(2 * MiB));
            MemoryFixture.names(IllegalArgumentException.class, "granule of the page at 0", () -> r.free(2 * PAGE, PAGE));
            assertEquals(false, r.snapshot(2 * PAGE, PAGE).freed(0), "nothing freed");
            r.free(2 * MiB, 2 * MiB);   // whole granules of their own: freed
            r.free(4 * MiB + 2 * PAGE, PAGE);   // 4 KiB granules all around it: freed
            verified(mem);
        }
    }

    /** The reverse: granularity advice whose granules would reach freed pages is refused. */
    @Test
    void granularityAdviceReachingFreedPagesIsRefused() {
        try (UnifiedMemory mem = UnifiedMemory.builder().device(EmulatedDevice.builder().capacity(8 * MiB).build()).build()) {
            Region r = mem.allocate(8 * MiB, PAGE);
            r.free(2 * PAGE, PAGE);
            MemoryFixture.names(IllegalArgumentException.class, "would reach the freed page at " + 2 * PAGE,
                    () -> r.advise(0, PAGE, Advice.granularity(2 * MiB)));
            assertEquals(PAGE, r.granularity(0), "nothing changed");
            r.advise(2 * MiB, PAGE, Advice.granularity(2 * MiB));   // a granule with no freed page
            assertEquals(2 * MiB, r.granularity(2 * MiB));
            verified(mem);
        }
    }
}
