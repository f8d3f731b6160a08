package dev.hetmem;

import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.device.emulated.EmulatedKernel;
import dev.hetmem.driver.CopyBatch;
import dev.hetmem.driver.DeviceCopyException;
import dev.hetmem.driver.DeviceFaultHandler;
import dev.hetmem.driver.DeviceKernel;
import dev.hetmem.driver.KernelBinding;
import jdk.jfr.Recording;
import jdk.jfr.consumer.RecordingFile;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import static dev.hetmem.MemoryFixture.MiB;
import static dev.hetmem.MemoryFixture.PAGE;
import static dev.hetmem.MemoryFixture.check;
import static dev.hetmem.MemoryFixture.fill;
import static dev.hetmem.MemoryFixture.verified;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A prefetch of many ranges runs its batches on several threads at once (each planning, copying
 * and committing its own), with nothing lost when one of them fails and no wait on the caller's
 * own pins.
 */
@Tag("emulated") // the injected copy failure is the emulated device's
@Timeout(value = 120, unit = TimeUnit.SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)   // a wait for itself hangs
class ParallelPrefetchTest {
    /** Every other 4 KiB page of {@code bytes}: the pattern of bench migrate's 4 KiB rows. */
    private static long[] everyOtherPage(long bytes) {
        long[] offs = new long[(int) (bytes / PAGE / 2)];
        for (int i = 0; i < offs.length; i++) {
            offs[i] = 2L * i * PAGE;
        }
        return offs;
    }

    /** A region that moves page by page, not by 2 MiB granules. */
    private static Region pageGrained(UnifiedMemory mem, long bytes) {
        Region r = mem.allocate(bytes);
        r.advise(0, bytes, Advice.granularity(PAGE));
        return r;
    }

    /** A test body run under a flight recording; returns the id of the region whose prefetch batches count. */
    private interface Recorded {
        int run() throws Exception;
    }

    /** The threads (JFR's ids) that ran the prefetch batches of the region {@code body} returns, one per batch. */
    private static List<Long> batchThreads(Recorded body) throws Exception {
        Path file = Files.createTempFile("hetmem", ".jfr");
        try (Recording rec = new Recording()) {
            rec.enable("dev.hetmem.Migration");
            rec.start();
            int region = body.run();
            rec.stop();
            rec.dump(file);
            return RecordingFile.readAllEvents(file).stream()
                    .filter(e -> e.getEventType().getName().equals("dev.hetmem.Migration")
                            && e.getString("trigger").equals("PREFETCH") && e.getInt("region") == region)
                    .map(e -> e.getThread().getJavaThreadId()).toList();
        } finally {
            Files.deleteIfExists(file);
        }
    }

    /**
     * An asynchronous prefetch runs beside the caller's work (a kernel): its copies stay on its own
     * thread, where a prefetch its caller waits for spreads its copy over the copy threads.
     */
    @Test
    void anAsynchronousPrefetchCopiesOnItsOwnThreadAndAWaitedOneOnTheCopyThreads() throws Exception {
        Set<String> copiers = ConcurrentHashMap.newKeySet();
        WrappedDevice d = new WrappedDevice("threads", 64 * MiB) {
            @Override
            public void copy(CopyBatch b, int from, int to) {
                copiers.add(Thread.currentThread().getName());
                super.copy(b, from, to);
            }
        };
        try (UnifiedMemory mem = UnifiedMemory.builder().copyThreads(2).device(d).build()) {
            long bytes = 16 * MiB;   // one batch, far above the size a copy is split from
            Region waited = mem.allocate(bytes);
            Region async = mem.allocate(bytes);
            fill(waited, 0, bytes, 3);
            fill(async, 0, bytes, 4);
            waited.advise(0, bytes, Advice.prefetch(1));
            assertTrue(copiers.stream().anyMatch(n -> n.startsWith("hetmem-copy-")),
                    "a waited prefetch spread its copy over the copy threads: " + copiers);
            copiers.clear();
            assertEquals(bytes / PAGE, mem.prefetchAsync(async, 0, bytes, 1).get());
            assertEquals(1, copiers.size(), "one thread copied: " + copiers);
            assertTrue(copiers.iterator().next().startsWith("hetmem-async-"), "the prefetch's own: " + copiers);
            mem.advise(async, 0, bytes, Advice.prefetch(0));
            copiers.clear();
            assertEquals(bytes / PAGE, mem.prefetchPlainAsync(async, 0, bytes, 1).get());
            assertEquals(1, copiers.size(), "one thread copied the plain prefetch: " + copiers);
            check(waited, 0, bytes, 3);
            check(async, 0, bytes, 4);
            verified(mem);
        }
    }

    /**
     * A tiled launch's prefetch of its next tile runs beside the running tile's kernel: its copies
     * stay on its own thread (hetmem-async-*), as an asynchronous prefetch's do, and are not spread
     * over the copy threads that the kernel's cores would share (before, each tile's 2 MiB of windows
     * was split over hetmem-copy-* threads). Only the first tile's bring-in, which the launch waits
     * for, spreads; each later tile waits for its prefetch and finds its pages in place.
     */
    @Test
    void aTiledLaunchPrefetchesItsNextTileOnItsOwnThread() {
        List<String> copiers = Collections.synchronizedList(new ArrayList<>());
        WrappedDevice d = new WrappedDevice("threads", 8 * MiB) {
            @Override
            public void copy(CopyBatch b, int from, int to) {
                copiers.add(Thread.currentThread().getName());
                super.copy(b, from, to);
            }

            @Override
            public boolean runsFromAnyItem() {
                return true;   // tiles run from their first item, as the emulated device's do
            }

            @Override
            public void execute(DeviceKernel k, long offset, long n, List<KernelBinding> a,
                                DeviceFaultHandler faults) {
                inner.execute(k, offset, n, a, faults);
            }
        };
        try (UnifiedMemory mem = UnifiedMemory.builder().copyThreads(2).device(d).build()) {
            long bytes = 32 * MiB;
            Region r = mem.allocate(bytes);
            fill(r, 0, bytes, 9);
            long[] sum = new long[(int) (bytes / PAGE)];
            LaunchResult res = mem.launch(1, (EmulatedKernel) (a, i) -> {
                sum[(int) i] = a.arg(0).getLong(i * PAGE);
            }, bytes / PAGE, KernelArg.read(r).perItem(PAGE));
            assertEquals(bytes / PAGE, res.pagesMigrated(), "every page came once");
            int firstAsync = -1;
            synchronized (copiers) {
                for (int i = 0; i < copiers.size(); i++) {
                    if (copiers.get(i).startsWith("hetmem-async-")) {
                        firstAsync = i;
                        break;
                    }
                }
                assertTrue(firstAsync > 0, "the first tile was brought in, the next ones prefetched: " + copiers);
                List<String> after = copiers.subList(firstAsync, copiers.size());
                assertTrue(after.stream().allMatch(n -> n.startsWith("hetmem-async-")),
                        "after the first tile, only the tile prefetches' own threads copied: " + after);
            }
            try (HostView v = r.host(0, bytes, Access.READ)) {
                for (int i = 0; i < sum.length; i++) {
                    assertEquals(v.segment().get(ValueLayout.JAVA_LONG, (long) i * PAGE), sum[i], "page " + i);
                }
            }
            check(r, 0, bytes, 9);
            verified(mem);
        }
    }

    /**
     * The memory's asynchronous work runs on threads of its own, not on virtual threads: a copy
     * waits in native code (an OpenCL event, a memcpy), which holds a virtual thread's carrier, and
     * the carriers are the JVM's, shared with every virtual thread of the program. Here each copy
     * sleeps in native code (usleep through the FFM API) while as many asynchronous prefetches copy
     * as the scheduler has carriers; a virtual thread of the program then starts and ends at once.
     * On virtual threads it waited for a copy to end (305 ms with copies of 300 ms; each copy sleeps a
     * second here, so that a pause of the JVM's own cannot pass for the wait).
     */
    @Test
    void asynchronousPrefetchesLeaveTheProgramsVirtualThreadsTheirCarriers() throws Throwable {
        int carriers = Integer.getInteger("jdk.virtualThreadScheduler.parallelism", Runtime.getRuntime().availableProcessors());
        Linker linker = Linker.nativeLinker();
        MethodHandle usleep = linker.downcallHandle(linker.defaultLookup().find("usleep").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
        CountDownLatch copying = new CountDownLatch(carriers);
        AtomicBoolean hold = new AtomicBoolean(true);
        Thread.ofVirtual().start(() -> { }).join();   // the scheduler started before anything is timed
        WrappedDevice d = new WrappedDevice("native waits", Math.max(64, 4L * carriers) * MiB) {
            @Override
            public void copy(CopyBatch b, int from, int to) {
                if (hold.get()) {
                    copying.countDown();
                    try {
                        int rc = (int) usleep.invokeExact(1_000_000);
                    } catch (Throwable t) {
                        throw new IllegalStateException(t);
                    }
                }
                super.copy(b, from, to);
            }
        };
        try (UnifiedMemory mem = UnifiedMemory.builder().copyThreads(1).device(d).build()) {
            List<Region> regions = new ArrayList<>();
            List<CompletableFuture<Long>> ahead = new ArrayList<>();
            for (int i = 0; i < carriers; i++) {
                Region r = mem.allocate(MiB);
                fill(r, 0, MiB, 30 + i);
                regions.add(r);
            }
            for (Region r : regions) {
                ahead.add(mem.prefetchAsync(r, 0, MiB, 1));
            }
            assertTrue(copying.await(10, TimeUnit.SECONDS), "every prefetch is copying");
            long t0 = System.nanoTime();
            Thread.ofVirtual().start(() -> { }).join();
            long waited = System.nanoTime() - t0;
            hold.set(false);
            for (CompletableFuture<Long> f : ahead) {
                assertEquals(MiB / PAGE, f.get(10, TimeUnit.SECONDS));
            }
            assertTrue(waited < 500_000_000L, "a virtual thread of the program waited " + waited / 1_000_000
                    + " ms for a carrier while " + carriers + " prefetches copied");
            for (int i = 0; i < carriers; i++) {
                check(regions.get(i), 0, MiB, 30 + i);
            }
            verified(mem);
        }
    }

    @Test
    void aLongListIsMovedByBatchesOnSeveralThreadsAndEveryByteStays() throws Exception {
        List<Long> threads = batchThreads(() -> {
            try (UnifiedMemory mem = MemoryFixture.memoryOf(EmulatedDevice.builder().capacity(64 * MiB).build())) {
                Region r = pageGrained(mem, 48 * MiB);
                fill(r, 0, 48 * MiB, 7);
                long[] offs = everyOtherPage(48 * MiB);   // 6144 pages: 12 batches of 512 (two blocks each), a ms or two each
                assertEquals(offs.length, mem.prefetch(r, offs, PAGE, 1));
                assertEquals(24 * MiB, mem.stats().node(1).residentBytes(), "every other page on the device");
                verified(mem);
                assertEquals(offs.length, mem.prefetch(r, offs, PAGE, 0));
                assertEquals(0, mem.stats().node(1).residentBytes());
                check(r, 0, 48 * MiB, 7);
                verified(mem);
                return r.id();
            }
        });
        assertTrue(Set.copyOf(threads).size() >= 2, "the batches of one call ran on threads " + threads);
    }

    @Test
    void aListWhoseGranulesWouldNotFitOneBatchMovesOnlyThePagesAskedFor() {
        // 64 MiB device: a batch holds at most 32 MiB of it; 64 ranges of 256 KiB, one per 2 MiB granule:
        // 128 MiB widened, so only the 16 MiB asked for move, as one batch of the whole list would have decided
        try (UnifiedMemory mem = MemoryFixture.memoryOf(EmulatedDevice.builder().capacity(64 * MiB).build())) {
            Region r = mem.allocate(128 * MiB);
            fill(r, 0, 128 * MiB, 17);
            long[] offs = new long[64];
            for (int i = 0; i < offs.length; i++) {
                offs[i] = i * 2 * MiB;
            }
            assertEquals(64 * 64, mem.prefetch(r, offs, 256 * 1024, 1), "the pages asked for, and only those");
            assertEquals(16 * MiB, mem.stats().node(1).residentBytes(), "every range asked for is on the device");
            check(r, 0, 128 * MiB, 17);
            verified(mem);
        }
    }

    @Test
    void aCopyThatFailsInOneBatchFailsTheCallAndLosesNothing() {
        EmulatedDevice dev = EmulatedDevice.builder().capacity(64 * MiB).build();
        try (UnifiedMemory mem = MemoryFixture.memoryOf(dev)) {
            Region r = pageGrained(mem, 32 * MiB);
            fill(r, 0, 32 * MiB, 11);
            long[] offs = everyOtherPage(32 * MiB);
            dev.failCopy(3000);   // inside the first batches: some may have committed, one is undone
            assertThrows(DeviceCopyException.class, () -> mem.prefetch(r, offs, PAGE, 1));
            dev.failCopy(-1);
            verified(mem);
            check(r, 0, 32 * MiB, 11);
            assertTrue(mem.stats().node(1).residentBytes() < 16 * MiB, "the failed batch moved nothing");
            assertEquals(offs.length - mem.stats().node(1).residentBytes() / PAGE, mem.prefetch(r, offs, PAGE, 1),
                    "the rest moves once the device copies again");
            check(r, 0, 32 * MiB, 11);
            verified(mem);
        }
    }

    @Test
    void aCallerThatHoldsAViewOfTheRegionRunsItsBatchesItselfAndIsNotLeftWaitingForItself() throws Exception {
        long caller = Thread.currentThread().threadId();
        List<Long> threads = batchThreads(() -> {
            // a 16 MiB device: one batch holds at most 8 MiB (2048 pages)
            try (UnifiedMemory mem = MemoryFixture.memoryOf(EmulatedDevice.builder().capacity(16 * MiB).build())) {
                Region r = pageGrained(mem, 32 * MiB);
                fill(r, 0, 32 * MiB, 13);
                // the view's pages in the second batch of a list: a batch on another thread that took it would
                // wait for the caller's view, which the caller closes only after the call
                long[] withView = new long[4096];
                for (int i = 0; i < 2048; i++) {
                    withView[i] = i * PAGE;                     // batch 0: [0, 8 MiB), a whole batch
                    withView[2048 + i] = 24 * MiB + i * PAGE;   // batch 1: [24, 32 MiB), the view in it
                }
                long[] away = new long[3072];                   // [0, 12 MiB): two batches, none under the view
                for (int i = 0; i < away.length; i++) {
                    away[i] = i * PAGE;
                }
                try (HostView v = r.host(24 * MiB, 4 * MiB, Access.READ)) {
                    // refused, as a batch that meets the caller's own pin is, not waited for
                    assertThrows(PinnedByCallerException.class, () -> mem.prefetch(r, withView, PAGE, 1));
                    mem.prefetch(r, away, PAGE, 1);
                    assertEquals(4 * MiB, v.segment().byteSize());
                }
                PageSnapshot snap = r.snapshot(0, 12 * MiB);
                for (int p = 0; p < 3072; p++) {
                    assertTrue(snap.residentOn(p, 1), "page " + p + " on the device");
                }
                check(r, 0, 32 * MiB, 13);
                verified(mem);
                return r.id();
            }
        });
        assertTrue(threads.size() >= 2, "batches recorded: " + threads);
        assertTrue(threads.stream().allMatch(t -> t == caller), "every batch on the caller's thread " + caller + ": " + threads);
    }

    /**
     * A prefetch list out of order is sorted by where each range's granule starts, and the
     * granules are advice another thread may change meanwhile: keys that moved under the sort made
     * it throw "Comparison method violates its general contract!" (found by the stress program).
     * Each range's granule is read once now; every list moves, and every byte stays.
     */
    @Test
    void aListSortedWhileAnotherThreadChangesItsGranulesMovesAndKeepsEveryByte() throws Exception {
        try (UnifiedMemory mem = MemoryFixture.memoryOf(EmulatedDevice.builder().capacity(64 * MiB).build())) {
            long bytes = 16 * MiB;
            Region r = mem.allocate(bytes);
            fill(r, 0, bytes, 31);
            long[] offs = new long[2048];
            java.util.Random rnd = new java.util.Random(7);
            AtomicBoolean stop = new AtomicBoolean();
            Thread advisor = Thread.ofPlatform().start(() -> {
                java.util.Random a = new java.util.Random(11);
                while (!stop.get()) {
                    long at = a.nextInt((int) (bytes / (2 * MiB))) * 2 * MiB;
                    r.advise(at, 2 * MiB, Advice.granularity(a.nextBoolean() ? PAGE : 2 * MiB));
                }
            });
            try {
                long end = System.nanoTime() + 3_000_000_000L;
                while (System.nanoTime() < end) {
                    for (int i = 0; i < offs.length; i++) {
                        offs[i] = rnd.nextInt((int) (bytes / PAGE)) * PAGE;   // out of order: the list is sorted
                    }
                    mem.prefetch(r, offs, PAGE, 1);   // after the first, little to move: mostly the sort
                }
            } finally {
                stop.set(true);
                advisor.join();
            }
            check(r, 0, bytes, 31);
            assertEquals(List.of(), mem.verify());
        }
    }
}
