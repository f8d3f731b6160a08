package dev.hetmem;

import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.device.emulated.EmulatedKernel;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import static dev.hetmem.MemoryFixture.MiB;
import static dev.hetmem.MemoryFixture.PAGE;
import static dev.hetmem.MemoryFixture.check;
import static dev.hetmem.MemoryFixture.fill;
import static dev.hetmem.MemoryFixture.value;
import static dev.hetmem.MemoryFixture.verified;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A page that a running kernel reads through a plain argument, placed anew for another launch
 * without waiting for that kernel (DETACHABLE_PINS): the next tile of a stencil shares the running
 * tile's halo pages. The running kernel keeps reading its frame, which is freed only when it ends;
 * a page the running kernel writes still waits for it. The first kernel blocks on a latch, which
 * only a Java kernel can.
 */
@Tag("emulated")
class RunningKernelPlacementTest {
    private static final long HALF = 32 * PAGE;

    /** A thread per launch: the common pool may have one thread on a small machine, and the first launch blocks. */
    private final ExecutorService threads = Executors.newCachedThreadPool();

    @org.junit.jupiter.api.AfterEach
    void stopThreads() {
        threads.shutdownNow();
    }

    /** 64 pages of the pattern of {@code seed}, read-mostly: the host keeps its copy, and a device's is a duplicate. */
    private static Region input(UnifiedMemory mem, long seed) {
        Region in = mem.allocate(2 * HALF);
        fill(in, 0, 2 * HALF, seed);
        mem.advise(in, 0, in.size(), Advice.readMostly(true));
        return in;
    }

    /** Inside a kernel: says it runs, then waits until the test lets it go on. */
    private static void startAndWait(CountDownLatch started, CountDownLatch go) {
        started.countDown();
        try {
            assertTrue(go.await(30, TimeUnit.SECONDS), "the test let the kernel go");
        } catch (InterruptedException e) {
            throw new IllegalStateException(e);
        }
    }

    /** A plain kernel of one item that sums its argument's longs after {@code go} opens; signals {@code started} first. */
    private static EmulatedKernel blockingSum(CountDownLatch started, CountDownLatch go, AtomicLong sum) {
        return EmulatedKernel.plain((a, item) -> {
            startAndWait(started, go);
            MemorySegment s = a.plain(0);
            long total = 0;
            for (long i = 0; i < s.byteSize() / 8; i++) {
                total += s.getAtIndex(ValueLayout.JAVA_LONG_UNALIGNED, i);
            }
            sum.set(total);
        }, 0);
    }

    /** Item i copies long i of its plain argument 0 into long i of argument 1. */
    private static EmulatedKernel plainCopy() {
        return EmulatedKernel.plain((a, i) -> a.arg(1).putLong(8 * i, a.plain(0).getAtIndex(ValueLayout.JAVA_LONG_UNALIGNED, i)), 0);
    }

    /** Long j of r's bytes [offset, offset + length) is value(seed, firstLong + j) + added. */
    private static void checkCopied(Region r, long offset, long length, long seed, long firstLong, long added) {
        try (HostView v = r.host(offset, length, Access.READ)) {
            for (long j = 0; j < length / 8; j++) {
                long want = value(seed, firstLong + j) + added;
                long got = v.segment().getAtIndex(ValueLayout.JAVA_LONG_UNALIGNED, j);
                if (want != got) {
                    assertEquals(want, got, "long " + j + " from byte " + offset + " of " + r);
                }
            }
        }
    }

    private static long expectedSum(long seed, long firstLong, long longs) {
        long total = 0;
        for (long i = firstLong; i < firstLong + longs; i++) {
            total += value(seed, i);
        }
        return total;
    }

    /**
     * As below, with nothing running: the relocating batch's other pages could not fit even with
     * every page it does not need gone (the allocate phase's DeviceFull), so the launch places the
     * argument through the host at once instead of failing.
     */
    @Test
    void aRelocationThatCannotFitTheRestOfItsBatchGoesThroughTheHost() {
        EmulatedDevice dev = EmulatedDevice.builder().capacity(4 * MiB).build();
        try (UnifiedMemory mem = UnifiedMemory.builder().device(dev).build()) {
            long quarter = MiB;
            Region in = mem.allocate(quarter, PAGE);
            Region out = mem.allocate(600 * PAGE, PAGE);
            fill(in, 0, quarter, 4);
            for (long p = quarter / PAGE - 1; p >= 0; p--) {
                mem.advise(in, p * PAGE, PAGE, new Advice.Prefetch(1));   // frames not in page order
            }
            // in's old frames, its new run and out's 600 pages: 1112 of 1024; 856 once in's old frames go first
            mem.launch(1, plainCopy(), quarter / 8, KernelArg.read(in), KernelArg.write(out));
            check(out, 0, quarter, 4);
            check(in, 0, quarter, 4);
            verified(mem);
        }
    }

    /**
     * A launch whose plain argument's pages move within the device holds their old frames until it
     * commits. When the rest of its batch then finds no room (the other frames pinned by a running
     * kernel), it places the argument through the host instead, which frees those frames first,
     * at once: not after the running kernel ends, nor with a failure at the 60 s deadline.
     */
    @Test
    void aRelocationLeavingNoRoomForTheRestOfItsBatchGoesThroughTheHostAtOnce() throws Exception {
        EmulatedDevice dev = EmulatedDevice.builder().capacity(4 * MiB).build();
        try (UnifiedMemory mem = UnifiedMemory.builder().device(dev).build()) {
            long quarter = MiB;
            Region in = mem.allocate(quarter, PAGE);
            Region held = mem.allocate(quarter, PAGE);
            Region out = mem.allocate(2 * quarter, PAGE);
            fill(in, 0, quarter, 3);
            for (long p = quarter / PAGE - 1; p >= 0; p--) {
                mem.advise(in, p * PAGE, PAGE, new Advice.Prefetch(1));   // frames not in page order
            }
            CountDownLatch started = new CountDownLatch(1);
            CountDownLatch go = new CountDownLatch(1);
            CompletableFuture<LaunchResult> running = CompletableFuture.supplyAsync(
                    () -> mem.launch(1, blockingSum(started, go, new AtomicLong()), 1, KernelArg.read(held)), threads);
            assertTrue(started.await(10, TimeUnit.SECONDS), "the first kernel runs");
            // in's old frames, its new run and out's 512 frames: 1024 beside held's 256 pinned of 1024;
            // 768 once in's old frames are gone first
            CompletableFuture<LaunchResult> copy = CompletableFuture.supplyAsync(
                    () -> mem.launch(1, plainCopy(), quarter / 8, KernelArg.read(in), KernelArg.write(out)), threads);
            copy.get(20, TimeUnit.SECONDS);
            assertFalse(running.isDone(), "placed while the first kernel still held its pages");
            go.countDown();
            running.get(10, TimeUnit.SECONDS);
            check(out, 0, quarter, 3);
            check(in, 0, quarter, 3);
            verified(mem);
        }
    }

    @Test
    void aPageARunningKernelOnlyReadsIsPlacedForAnotherLaunchWithoutWaitingForIt() throws Exception {
        EmulatedDevice dev = MemoryFixture.emulated(4 * MiB);
        try (UnifiedMemory mem = MemoryFixture.memoryOf(dev)) {
            Region in = input(mem, 7);
            Region out = mem.allocate(HALF);
            // as many pages as the device has free frames if the first kernel's old frames were freed early
            long fillerBytes = 4 * MiB - (HALF + HALF + HALF + HALF / 2);
            Region filler = mem.allocate(fillerBytes);
            CountDownLatch started = new CountDownLatch(1);
            CountDownLatch go = new CountDownLatch(1);
            AtomicLong sum = new AtomicLong();
            // the first kernel holds pages [0, 32) of in
            CompletableFuture<LaunchResult> first = CompletableFuture.supplyAsync(() -> mem.launch(1,
                    blockingSum(started, go, sum), 1, KernelArg.of(in, 0, HALF, Access.READ)), threads);
            try {
                assertTrue(started.await(30, TimeUnit.SECONDS), "the first kernel runs");
                long firstFrame = dev.probeFrame(in.address());
                // the second wants pages [16, 48) in one run: the first's pages 16..31 must be placed anew
                LaunchResult second = CompletableFuture.supplyAsync(() -> mem.launch(1, plainCopy(), HALF / 8,
                        KernelArg.of(in, HALF / 2, HALF, Access.READ), KernelArg.write(out)), threads).get(30, TimeUnit.SECONDS);
                assertFalse(first.isDone(), "the second launch did not wait for the first kernel");
                checkCopied(out, 0, HALF, 7, HALF / 2 / 8, 0);
                assertEquals(firstFrame, dev.probeFrame(in.address()), "page 0 stayed where the first kernel has it");
                assertTrue(dev.probeFrame(in.address() + HALF / 2) != firstFrame + 16,
                        "page 16 left the first kernel's run for the second's");
                verified(mem);   // the first kernel's old frames count as held, by no page
                // the rest of the device, taken and written while the first kernel still reads its old frames
                // (were those frames free, this would write -1 into them)
                mem.launch(1, (EmulatedKernel) (a, i) -> a.arg(0).putLong(8 * i, -1), fillerBytes / 8, KernelArg.write(filler));
                assertTrue(second.pagesMigrated() >= HALF / 2 / PAGE, "the shared pages were copied for the second: " + second);
            } finally {
                go.countDown();
            }
            first.get(30, TimeUnit.SECONDS);
            assertEquals(expectedSum(7, 0, HALF / 8), sum.get(), "the first kernel read its pages' bytes to the end");
            check(in, 0, 2 * HALF, 7);
            verified(mem);
            assertEquals(mem.stats().node(1).freeBytes() + mem.stats().node(1).residentBytes(), 4 * MiB,
                    "the kept frames were freed when the first kernel ended");
        }
    }

    @Test
    void aPageARunningKernelWritesWaitsForIt() throws Exception {
        EmulatedDevice dev = MemoryFixture.emulated(4 * MiB);
        try (UnifiedMemory mem = MemoryFixture.memoryOf(dev)) {
            Region in = input(mem, 3);
            Region out = mem.allocate(HALF);
            CountDownLatch started = new CountDownLatch(1);
            CountDownLatch go = new CountDownLatch(1);
            // the first kernel holds pages [0, 32) of in for writing, and adds 1 to each long when let go
            EmulatedKernel writer = EmulatedKernel.plain((a, item) -> {
                startAndWait(started, go);
                MemorySegment s = a.plain(0);
                for (long i = 0; i < s.byteSize() / 8; i++) {
                    s.setAtIndex(ValueLayout.JAVA_LONG_UNALIGNED, i, s.getAtIndex(ValueLayout.JAVA_LONG_UNALIGNED, i) + 1);
                }
            }, 0);
            CompletableFuture<LaunchResult> first = CompletableFuture.supplyAsync(() -> mem.launch(1, writer, 1,
                    KernelArg.of(in, 0, HALF, Access.READ_WRITE)), threads);
            CompletableFuture<LaunchResult> second;
            try {
                assertTrue(started.await(30, TimeUnit.SECONDS), "the first kernel runs");
                second = CompletableFuture.supplyAsync(() -> mem.launch(1, plainCopy(), HALF / 8,
                        KernelArg.of(in, HALF / 2, HALF, Access.READ), KernelArg.write(out)), threads);
                Thread.sleep(300);
                assertFalse(second.isDone(), "a page the running kernel writes is not placed anew beside it");
            } finally {
                go.countDown();
            }
            first.get(30, TimeUnit.SECONDS);
            second.get(30, TimeUnit.SECONDS);
            // the second read the first kernel's stores in pages 16..31, the old bytes after
            checkCopied(out, 0, HALF / 2, 3, HALF / 2 / 8, 1);
            checkCopied(out, HALF / 2, HALF / 2, 3, HALF / 8, 0);
            verified(mem);
        }
    }
}
