package dev.hetmem;

import org.junit.jupiter.api.RepeatedTest;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;

import static dev.hetmem.MemoryFixture.MiB;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Host threads and device kernels on two devices work on overlapping ranges of one region at once,
 * every write mirrored in a shadow copy. Slots (128 KiB) are smaller than granules (256 KiB), so
 * operations of different threads share granules: views pin pages that kernels want, kernels pin
 * pages that views want, and migrations move neighbours of pinned pages. Data is checked against
 * the shadow inside every read, and the page-table invariant and device mirrors after the run.
 * A watchdog fails the test with every thread's stack if it stops making progress.
 */
class ConcurrencyStressTest {
    static final long SLOT = 128 * 1024;
    static final int SLOTS = 64;
    static final long SIZE = SLOT * SLOTS;
    static final int LONGS_PER_SLOT = (int) (SLOT / 8);

    final long[] shadow = new long[(int) (SIZE / 8)];
    final ReentrantLock[] slotLocks = new ReentrantLock[SLOTS];
    final AtomicLong mismatches = new AtomicLong();
    final AtomicLong ops = new AtomicLong();
    /** Nodes 1 and 2 of the memory under stress. */
    final TestDevice[] devices = new TestDevice[3];

    @RepeatedTest(3)
    void hostThreadsAndKernelsOnOverlappingRangesAgreeWithTheShadow() throws Exception {
        stress(16 * MiB, false);
    }

    /** Devices of 4 MiB for 8 MiB of data: every other operation evicts, racing with views, kernels and advice. */
    @RepeatedTest(3)
    void theSameWithDevicesTooSmallForTheData() throws Exception {
        stress(4 * MiB, false);
    }

    /** Half the region READ_MOSTLY: reads duplicate pages on up to three nodes, writes collapse them. */
    @RepeatedTest(3)
    void theSameWithReadDuplication() throws Exception {
        stress(16 * MiB, true);
    }

    @RepeatedTest(2)
    void theSameWithReadDuplicationAndEviction() throws Exception {
        stress(4 * MiB, true);
    }

    /** Half the region accessed by device 1 in place, overlapping the read-mostly half: remote entries come and go. */
    @RepeatedTest(3)
    void theSameWithRemoteMappings() throws Exception {
        stress(16 * MiB, true, true);
    }

    @RepeatedTest(2)
    void theSameWithRemoteMappingsAndEviction() throws Exception {
        stress(4 * MiB, true, true);
    }

    private void stress(long deviceBytes, boolean readMostly) throws Exception {
        stress(deviceBytes, readMostly, false);
    }

    private void stress(long deviceBytes, boolean readMostly, boolean accessedBy) throws Exception {
        for (int i = 0; i < SLOTS; i++) {
            slotLocks[i] = new ReentrantLock();
        }
        java.util.Arrays.fill(shadow, 0);
        mismatches.set(0);
        devices[1] = MemoryFixture.device(deviceBytes);
        devices[2] = MemoryFixture.device(deviceBytes);
        try (UnifiedMemory mem = MemoryFixture.memory(devices[1], devices[2])) {
            Region r = mem.allocate(SIZE, 256 * 1024);
            if (readMostly) {
                r.advise(0, SIZE / 2, Advice.readMostly(true));
            }
            if (accessedBy) {
                r.advise(SIZE / 4, SIZE / 2, Advice.accessedBy(1));
            }
            int workers = 6;
            ExecutorService pool = Executors.newFixedThreadPool(workers);
            List<Future<?>> futures = new ArrayList<>();
            for (int w = 0; w < workers; w++) {
                long seed = 1000 + w;
                boolean deviceWorker = w >= 4;
                futures.add(pool.submit(() -> work(mem, r, seed, deviceWorker, 250)));
            }
            pool.shutdown();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
            long lastOps = -1;
            long lastProgress = System.nanoTime();
            while (!pool.awaitTermination(1, TimeUnit.SECONDS)) {
                long now = System.nanoTime();
                if (ops.get() != lastOps) {
                    lastOps = ops.get();
                    lastProgress = now;
                }
                if (now - lastProgress > TimeUnit.SECONDS.toNanos(20) || now > deadline) {
                    String dump = threadDump();
                    pool.shutdownNow();
                    fail("no progress for 20 s (or over 120 s in all) after " + ops.get() + " operations; threads:\n" + dump);
                }
            }
            for (Future<?> f : futures) {
                f.get(1, TimeUnit.SECONDS);
            }
            assertEquals(0, mismatches.get(), "reads that disagreed with the shadow");
            assertTrue(mem.verify().isEmpty(), () -> String.join("\n", mem.verify()));
            try (HostView v = r.host(0, SIZE, Access.READ)) {
                for (int i = 0; i < shadow.length; i++) {
                    if (shadow[i] != v.segment().getAtIndex(ValueLayout.JAVA_LONG, i)) {
                        assertEquals(shadow[i], v.segment().getAtIndex(ValueLayout.JAVA_LONG, i), "long " + i);
                    }
                }
            }
            Stats st = mem.stats();
            assertTrue(st.node(1).faults() + st.node(2).faults() > 0, "devices took faults");
            r.free();
            assertEquals(deviceBytes, mem.stats().node(1).freeBytes());
            assertEquals(deviceBytes, mem.stats().node(2).freeBytes());
        } catch (TimeoutException e) {
            fail(e);
        }
    }

    private void work(UnifiedMemory mem, Region r, long seed, boolean deviceWorker, int count) {
        SplittableRandom rnd = new SplittableRandom(seed);
        for (int k = 0; k < count; k++) {
            int first = rnd.nextInt(SLOTS);
            int n = 1 + rnd.nextInt(Math.min(3, SLOTS - first));
            int op = rnd.nextInt(10);
            if (op == 0) {
                // advice needs no slot: it moves data, never changes it
                int node = rnd.nextInt(3);
                r.advise(first * SLOT, n * SLOT, Advice.prefetch(node));
                ops.incrementAndGet();
                continue;
            }
            if (op == 1 && rnd.nextInt(8) == 0) {
                mem.release(1 + rnd.nextInt(2));
                ops.incrementAndGet();
                continue;
            }
            for (int s = first; s < first + n; s++) {
                slotLocks[s].lock();
            }
            try {
                long off = first * SLOT;
                long len = n * SLOT;
                int base = first * LONGS_PER_SLOT;
                long stamp = rnd.nextLong();
                boolean write = rnd.nextBoolean();
                if (!deviceWorker) {
                    try (HostView v = r.host(off, len, write ? Access.READ_WRITE : Access.READ)) {
                        MemorySegment seg = v.segment();
                        for (int i = 0; i < n * LONGS_PER_SLOT; i++) {
                            if (seg.getAtIndex(ValueLayout.JAVA_LONG, i) != shadow[base + i]) {
                                mismatches.incrementAndGet();
                            }
                            if (write) {
                                long val = stamp + i;
                                seg.setAtIndex(ValueLayout.JAVA_LONG, i, val);
                                shadow[base + i] = val;
                            }
                        }
                    }
                } else {
                    // a device reads the slots (dmirror READ) and checks them; a writer then stores its stamps (WRITE)
                    TestDevice device = devices[1 + rnd.nextInt(2)];
                    try (Arena arena = Arena.ofConfined()) {
                        MemorySegment buf = arena.allocate(len, 8);
                        device.read(mem, r, off, len / 4096, buf);
                        for (int i = 0; i < n * LONGS_PER_SLOT; i++) {
                            if (buf.getAtIndex(ValueLayout.JAVA_LONG, i) != shadow[base + i]) {
                                mismatches.incrementAndGet();
                            }
                        }
                        if (write) {
                            for (int i = 0; i < n * LONGS_PER_SLOT; i++) {
                                buf.setAtIndex(ValueLayout.JAVA_LONG, i, stamp + i);
                            }
                            device.write(mem, r, off, len / 4096, buf);
                            for (int i = 0; i < n * LONGS_PER_SLOT; i++) {
                                shadow[base + i] = stamp + i;
                            }
                        }
                    }
                }
                ops.incrementAndGet();
            } finally {
                for (int s = first + n - 1; s >= first; s--) {
                    slotLocks[s].unlock();
                }
            }
        }
    }

    private static String threadDump() {
        StringBuilder b = new StringBuilder();
        for (Map.Entry<Thread, StackTraceElement[]> e : Thread.getAllStackTraces().entrySet()) {
            b.append('"').append(e.getKey().getName()).append("\" ").append(e.getKey().getState()).append('\n');
            for (StackTraceElement el : e.getValue()) {
                b.append("    at ").append(el).append('\n');
            }
        }
        return b.toString();
    }
}
