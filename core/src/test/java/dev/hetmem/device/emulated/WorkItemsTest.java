package dev.hetmem.device.emulated;

import dev.hetmem.KernelArg;
import dev.hetmem.Region;
import dev.hetmem.UnifiedMemory;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The emulated device hands a launch's items out in chunks: each runs once, and a held-up thread leaves its chunks to the others. */
@Tag("emulated")
class WorkItemsTest {

    @Test
    void threadsClaimingAtOnceGetEveryItemExactlyOnce() {
        long from = 1_000_003;
        int n = 100_003;   // not a multiple of the chunk: the last chunk is short
        WorkItems items = new WorkItems(from, from + n, WorkItems.chunk(n, 4));
        assertEquals(n / (4 * WorkItems.CHUNKS_PER_THREAD), items.chunk());
        assertEquals(items.chunk(), EmulatedDevice.itemsPerChunk(n, 4));
        AtomicIntegerArray runs = new AtomicIntegerArray(n);
        List<CompletableFuture<Void>> threads = new ArrayList<>();
        CountDownLatch start = new CountDownLatch(1);   // all four claim at once
        ExecutorService pool = Executors.newFixedThreadPool(4);
        for (int t = 0; t < 4; t++) {
            threads.add(CompletableFuture.runAsync(() -> {
                try {
                    start.await();
                } catch (InterruptedException e) {
                    throw new IllegalStateException(e);
                }
                for (long s = items.claim(); s >= 0; s = items.claim()) {
                    long e = items.endOf(s);
                    assertTrue(e > s && e <= from + n && e - s <= items.chunk(), s + ".." + e);
                    for (long i = s; i < e; i++) {
                        runs.incrementAndGet((int) (i - from));
                    }
                }
            }, pool));
        }
        start.countDown();
        threads.forEach(CompletableFuture::join);
        pool.shutdown();
        for (int i = 0; i < n; i++) {
            assertEquals(1, runs.get(i), "item " + (from + i));
        }
        assertEquals(-1, items.claim());
    }

    @Test
    void stopHandsOutNothingMoreAndSmallLaunchesTakeOneItemChunks() {
        WorkItems items = new WorkItems(0, 10, WorkItems.chunk(10, 2));
        assertEquals(1, items.chunk());
        assertEquals(0, items.claim());
        assertEquals(1, items.endOf(0));
        items.stop();
        assertEquals(-1, items.claim());
        assertEquals(-1, new WorkItems(5, 5, 1).claim());
        assertEquals(7, EmulatedDevice.itemsPerChunk(7, 1), "one thread takes every item at once");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new WorkItems(9, 3, 1));
        assertTrue(e.getMessage().contains("[9, 3)"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> EmulatedDevice.itemsPerChunk(100, 0));
        assertTrue(e.getMessage().contains("computeThreads 0"), e.getMessage());
    }

    @Test
    void aComputeThreadHeldUpLeavesTheRestOfTheLaunchToTheOther() {
        // item 0 waits until all but a few of the others have run: with a fixed half per thread its
        // thread would hold the rest of its half, and the wait would end only at its time limit
        long n = 6400;
        long chunk = EmulatedDevice.itemsPerChunk(n, 2);
        long reachable = n - chunk;   // all but item 0's chunk, which its thread holds
        EmulatedDevice d = EmulatedDevice.builder().capacity(16 << 20).computeThreads(2).build();
        try (UnifiedMemory mem = UnifiedMemory.builder().device(d).build()) {
            Region r = mem.allocate(4096);
            AtomicLong done = new AtomicLong();
            long[] waitedNanos = new long[1];
            EmulatedKernel k = (args, i) -> {
                if (i == 0) {
                    long t0 = System.nanoTime();
                    while (done.get() < reachable && System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(20)) {
                        Thread.onSpinWait();
                    }
                    waitedNanos[0] = System.nanoTime() - t0;
                    assertTrue(done.get() >= reachable, "only " + done.get() + " other items ran while item 0 waited");
                }
                done.incrementAndGet();
            };
            mem.launch(d.node(), k, n, KernelArg.readWrite(r));
            assertEquals(n, done.get());
            assertTrue(waitedNanos[0] < TimeUnit.SECONDS.toNanos(20), waitedNanos[0] + " ns");
        }
    }
    @Test
    void aKernelItemOnTheComputePoolLaunchesAKernelOfSeveralItems() throws Exception {
        // two compute threads: the pool has one thread. An item running on it launches a kernel whose
        // helper part queues behind that very thread: the launching thread runs every item itself and
        // must not wait for the part that never began
        EmulatedDevice d = EmulatedDevice.builder().capacity(16 << 20).computeThreads(2).build();
        try (UnifiedMemory mem = UnifiedMemory.builder().device(d).build()) {
            Region outer = mem.allocate(4096);
            Region inner = mem.allocate(2 * 4096);
            CountDownLatch bothRunning = new CountDownLatch(2);
            AtomicLong innerItems = new AtomicLong();
            AtomicLong notTogether = new AtomicLong();
            EmulatedKernel count = (args, i) -> innerItems.incrementAndGet();
            EmulatedKernel launching = (args, i) -> {
                bothRunning.countDown();
                try {
                    if (!bothRunning.await(20, TimeUnit.SECONDS)) {
                        notTogether.incrementAndGet();
                    }
                } catch (InterruptedException e) {
                    throw new IllegalStateException(e);
                }
                mem.launch(d.node(), count, 100, KernelArg.read(inner));
            };
            CompletableFuture<Void> launch = CompletableFuture.runAsync(
                    () -> mem.launch(d.node(), launching, 2, KernelArg.readWrite(outer)));
            launch.get(60, TimeUnit.SECONDS);   // before the fix: waited for good
            assertEquals(0, notTogether.get(), "the two items did not run on two threads at once");
            assertEquals(200, innerItems.get());
        }
    }
}
