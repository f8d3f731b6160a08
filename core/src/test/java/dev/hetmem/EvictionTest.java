package dev.hetmem;

import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.device.emulated.EmulatedKernel;
import dev.hetmem.driver.PageGeometry;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.lang.foreign.ValueLayout;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static dev.hetmem.MemoryFixture.MiB;
import static dev.hetmem.MemoryFixture.verified;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A full device makes room by sending its coldest unpinned pages home (GMEM's host DRAM as the device's swap). */
class EvictionTest {
    static final long CAPACITY = 8 * MiB;
    static final long TILE = 2 * MiB;
    TestDevice dev;
    UnifiedMemory mem;

    @BeforeEach
    void setUp() {
        dev = MemoryFixture.device(CAPACITY);
        mem = MemoryFixture.memory(dev);
    }

    @AfterEach
    void tearDown() {
        verified(mem);
        mem.close();
    }

    /** Adds {@code delta} to every long of the tile at {@code offset}, on the device. */
    private LaunchResult addTile(Region r, long offset, long delta) {
        return mem.launch(1, dev.addLongs(delta),
                TILE / 8, KernelArg.of(r, offset, TILE, Access.READ_WRITE));
    }

    @Test
    void aDataSetThreeTimesTheDeviceIsComputedCorrectly() {
        Region r = mem.allocate(3 * CAPACITY);
        MemoryFixture.fill(r, 0, r.size(), 4);
        for (int sweep = 1; sweep <= 2; sweep++) {
            for (long off = 0; off < r.size(); off += TILE) {
                addTile(r, off, sweep);
            }
        }
        try (HostView v = r.host(0, r.size(), Access.READ)) {
            for (long i = 0; i < r.size() / 8; i++) {
                long want = MemoryFixture.value(4, i) + 3;
                if (v.segment().getAtIndex(ValueLayout.JAVA_LONG, i) != want) {
                    assertEquals(want, v.segment().getAtIndex(ValueLayout.JAVA_LONG, i), "long " + i);
                }
            }
        }
        Stats st = mem.stats();
        assertTrue(st.node(1).evictions() > 0, "the device had to evict");
        assertTrue(st.node(0).pagesMigrated(Trigger.EVICTION) >= (2 * 3 * CAPACITY - CAPACITY) / 4096,
                "evicted pages: " + st.node(0).pagesMigrated(Trigger.EVICTION));
    }

    /**
     * A use is dated when its pages are there: a prefetch whose copy ran while a launch used other
     * pages ranks after that launch's, so making room evicts the launch's pages (used, done) and
     * keeps what the prefetch brought (wanted next). Dated when it began, the prefetch ranked
     * before the launch and its pages were the ones evicted.
     */
    @Test
    @Tag("emulated") // the empty kernel is a Java one
    @org.junit.jupiter.api.Timeout(value = 60, unit = TimeUnit.SECONDS,
            threadMode = org.junit.jupiter.api.Timeout.ThreadMode.SEPARATE_THREAD)   // a launch stuck behind the held copy
    void aPrefetchThatRanBesideALaunchRanksAfterItsPages() throws Exception {
        CountDownLatch copying = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        java.util.concurrent.atomic.AtomicBoolean hold = new java.util.concurrent.atomic.AtomicBoolean();
        WrappedDevice d = new WrappedDevice("held copies", 12 * MiB) {
            @Override
            public void copy(dev.hetmem.driver.CopyBatch b, int from, int to) {
                if (hold.get()) {
                    copying.countDown();
                    try {
                        release.await();
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
                super.copy(b, from, to);
            }
        };
        try (UnifiedMemory m = UnifiedMemory.builder().copyThreads(1).device(d).build()) {
            long layer = 4 * MiB;
            Region used = m.allocate(layer);
            Region next = m.allocate(layer);
            Region more = m.allocate(2 * layer);
            MemoryFixture.fill(used, 0, layer, 11);
            MemoryFixture.fill(next, 0, layer, 12);
            MemoryFixture.fill(more, 0, 2 * layer, 13);
            used.advise(0, layer, Advice.prefetch(1));
            hold.set(true);
            java.util.concurrent.CompletableFuture<Long> ahead;
            try {
                ahead = m.prefetchAsync(next, 0, layer, 1);
                assertTrue(copying.await(10, TimeUnit.SECONDS), "the prefetch is copying");
                hold.set(false);
                // a launch over used while the prefetch copies: nothing to move, a use all the same
                m.launch(1, (EmulatedKernel) (a, i) -> { }, 1, KernelArg.of(used, 0, layer, Access.READ));
            } finally {
                release.countDown();
            }
            assertEquals(layer / PageGeometry.PAGE_BYTES, ahead.get(10, TimeUnit.SECONDS));
            more.advise(0, 2 * layer, Advice.prefetch(1));   // 8 MiB where 4 are free: one of the two goes
            PageSnapshot brought = next.snapshot(0, layer);
            PageSnapshot usedPages = used.snapshot(0, layer);
            for (int p = 0; p < brought.pages(); p++) {
                assertTrue(brought.residentOn(p, 1), "page " + p + " the prefetch brought stayed: " + brought.describe(p));
                assertTrue(!usedPages.residentOn(p, 1), "page " + p + " the launch used was evicted: " + usedPages.describe(p));
            }
            MemoryFixture.check(used, 0, layer, 11);
            MemoryFixture.check(next, 0, layer, 12);
            MemoryFixture.check(more, 0, 2 * layer, 13);
            verified(m);
        }
    }

    @Test
    @Tag("emulated") // the kernel waits on a latch in the JVM, which only a Java kernel can
    void pagesOfARunningKernelAreNeverEvicted() throws Exception {
        Region r = mem.allocate(4 * CAPACITY);
        MemoryFixture.fill(r, 0, r.size(), 5);
        CountDownLatch running = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        long[] sum = new long[1];
        ExecutorService ex = Executors.newSingleThreadExecutor();
        try {
            Future<?> held = ex.submit(() -> mem.launch(1, (EmulatedKernel) (args, i) -> {
                running.countDown();
                try {
                    release.await();
                } catch (InterruptedException e) {
                    throw new IllegalStateException(e);
                }
                long s = 0;
                for (long o = 0; o < TILE; o += 8) {
                    s += args.arg(0).getLong(o);
                }
                sum[0] = s;
            }, 1, KernelArg.of(r, 0, TILE, Access.READ)));
            assertTrue(running.await(10, TimeUnit.SECONDS));
            // sweep everything else through the rest of the device, several times over
            for (long off = TILE; off < r.size(); off += TILE) {
                addTile(r, off, 1);
                assertEquals(512, r.snapshot(0, TILE).countOn(1), "the running kernel's tile stays on the device");
            }
            release.countDown();
            held.get(10, TimeUnit.SECONDS);
            long want = 0;
            for (long i = 0; i < TILE / 8; i++) {
                want += MemoryFixture.value(5, i);
            }
            assertEquals(want, sum[0]);
        } finally {
            ex.shutdownNow();
        }
    }

    @Test
    void evictionWorksWhileHostViewsAreOpenElsewhere() {
        Region a = mem.allocate(4 * MiB);
        Region b = mem.allocate(3 * CAPACITY);
        MemoryFixture.fill(a, 0, a.size(), 6);
        MemoryFixture.fill(b, 0, b.size(), 7);
        try (HostView v = a.host(0, a.size(), Access.READ_WRITE)) {
            for (long off = 0; off < b.size(); off += TILE) {
                addTile(b, off, 2);
            }
            MemoryFixture.check(v.segment(), 0, 6);
            v.segment().set(ValueLayout.JAVA_LONG, 0, 99);
        }
        try (HostView v = a.host(0, 8, Access.READ)) {
            assertEquals(99, v.segment().get(ValueLayout.JAVA_LONG, 0));
        }
        assertTrue(mem.stats().node(1).evictions() > 0);
    }

    @Test
    void prefetchOfMoreThanTheDeviceKeepsTheLastPartThere() {
        Region r = mem.allocate(3 * CAPACITY);
        MemoryFixture.fill(r, 0, r.size(), 8);
        r.advise(0, r.size(), Advice.prefetch(1));
        assertTrue(r.stats().node(1).residentBytes() <= CAPACITY);
        assertTrue(r.stats().node(1).residentBytes() > 0);
        MemoryFixture.check(r, 0, r.size(), 8);
    }

    @Test
    void nothingLeaksAfterEvictionsAndClose() {
        Region r = mem.allocate(2 * CAPACITY);
        for (long off = 0; off < r.size(); off += TILE) {
            addTile(r, off, 1);
        }
        r.free();
        assertEquals(CAPACITY, mem.stats().node(1).freeBytes());
    }

    /** Launches, on {@code ex}, a kernel over the device's worth of {@code r} that holds it until {@code release}. */
    private Future<?> pinWholeDevice(ExecutorService ex, Region r, CountDownLatch running, CountDownLatch release) {
        return ex.submit(() -> mem.launch(1, (EmulatedKernel) (args, i) -> {
            running.countDown();
            try {
                release.await();
            } catch (InterruptedException e) {
                throw new IllegalStateException(e);
            }
        }, 1, KernelArg.of(r, 0, CAPACITY, Access.READ)));
    }

    @Test
    @Tag("emulated") // the kernel waits on a latch in the JVM, which only a Java kernel can
    void aLaunchThatNeedsFramesPinnedByARunningKernelWaitsForThem() throws Exception {
        Region r = mem.allocate(CAPACITY + TILE);
        MemoryFixture.fill(r, 0, r.size(), 9);
        CountDownLatch running = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        ExecutorService ex = Executors.newFixedThreadPool(2);
        try {
            // this kernel pins the whole device
            Future<?> big = pinWholeDevice(ex, r, running, release);
            assertTrue(running.await(10, TimeUnit.SECONDS));
            Future<LaunchResult> next = ex.submit(() -> addTile(r, CAPACITY, 1));
            Thread.sleep(200);
            assertTrue(!next.isDone(), "the second launch waits for frames instead of failing");
            release.countDown();
            big.get(10, TimeUnit.SECONDS);
            next.get(10, TimeUnit.SECONDS);
            try (HostView v = r.host(CAPACITY, 8, Access.READ)) {
                assertEquals(MemoryFixture.value(9, CAPACITY / 8) + 1, v.segment().get(ValueLayout.JAVA_LONG, 0));
            }
        } finally {
            ex.shutdownNow();
        }
    }

    /**
     * A caller waiting for room that a running kernel holds gives up when its thread is interrupted,
     * with its interrupt flag still set, instead of retrying without pause until the deadline
     * (parking returns at once while the flag is set). Nothing of its launch happened.
     */
    @Test
    @Tag("emulated") // the kernel waits on a latch in the JVM, which only a Java kernel can
    void aCallerWaitingForRoomStopsWhenInterrupted() throws Exception {
        Region r = mem.allocate(CAPACITY + TILE);
        MemoryFixture.fill(r, 0, r.size(), 9);
        CountDownLatch running = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        ExecutorService ex = Executors.newFixedThreadPool(1);
        try {
            Future<?> big = pinWholeDevice(ex, r, running, release);
            assertTrue(running.await(10, TimeUnit.SECONDS));
            Throwable[] failure = new Throwable[1];
            boolean[] flagAfter = new boolean[1];
            Thread waiter = new Thread(() -> {
                try {
                    addTile(r, CAPACITY, 1);
                } catch (Throwable t) {
                    failure[0] = t;
                }
                flagAfter[0] = Thread.currentThread().isInterrupted();
            });
            waiter.start();
            Thread.sleep(300);
            assertTrue(waiter.isAlive(), "the launch waits for frames");
            long t0 = System.nanoTime();
            waiter.interrupt();
            waiter.join(10_000);
            long waitedMs = (System.nanoTime() - t0) / 1_000_000;
            assertTrue(!waiter.isAlive(), "an interrupted caller still waited for room after 10 s");
            assertTrue(waitedMs < 5_000, "stopped after " + waitedMs + " ms");
            // a type the caller can name and catch (it was an IllegalStateException of an internal package)
            assertTrue(failure[0] instanceof InterruptedOperationException
                    && failure[0].getMessage().contains("interrupted while waiting for room on device node 1"),
                    "failed with " + failure[0]);
            assertTrue(flagAfter[0], "the interrupt flag is kept for the caller");
            release.countDown();
            big.get(10, TimeUnit.SECONDS);
            // the interrupted launch changed nothing: the tile still holds what was written
            try (HostView v = r.host(CAPACITY, 8, Access.READ)) {
                assertEquals(MemoryFixture.value(9, CAPACITY / 8), v.segment().get(ValueLayout.JAVA_LONG, 0));
            }
        } finally {
            release.countDown();
            ex.shutdownNow();
        }
    }

    /**
     * Arguments larger than the device with no per-item window: a device that takes faults runs the
     * kernel and faults in only what it touches (here nothing); one that does not refuses at once,
     * naming the sizes and the declaration that would let the launch run tiled.
     */
    @Test
    void aLaunchLargerThanTheDeviceRunsByFaultsOrFailsAtOnceWithTheSizes() {
        Region r = mem.allocate(2 * CAPACITY);
        if (mem.driver(1).takesDeviceFaults()) {
            LaunchResult res = mem.launch(1, dev.noop(), 1, KernelArg.of(r, 0, CAPACITY + 4096, Access.READ));
            assertEquals(0, res.faults(), "a kernel that touches nothing faults nothing in");
            assertEquals(CAPACITY, mem.stats().node(1).freeBytes(), "and nothing was brought to the device");
            return;
        }
        var e = org.junit.jupiter.api.Assertions.assertThrows(dev.hetmem.driver.DeviceMemoryException.class,
                () -> mem.launch(1, dev.noop(), 1, KernelArg.of(r, 0, CAPACITY + 4096, Access.READ)));
        assertTrue(e.getMessage().contains("has " + CAPACITY + " bytes") && e.getMessage().contains("KernelArg.perItem"),
                e.getMessage());
        assertEquals(CAPACITY, mem.stats().node(1).freeBytes(), "nothing was left allocated");
    }

    /**
     * Recency counts every use: a launch whose tile is already on the device (nothing to move) makes
     * it the most recently used, so the next eviction takes the tiles not used since. The use was
     * not recorded when nothing moved, and the tile used last went first.
     */
    @Test
    void aTileUsedAgainWithoutMovingIsEvictedAfterTheTilesNotUsedSince() throws InterruptedException {
        Region r = mem.allocate(CAPACITY + TILE);
        MemoryFixture.fill(r, 0, r.size(), 6);
        for (long off = 0; off < CAPACITY; off += TILE) {
            addTile(r, off, 1);   // the device full, tile 0 the least recently used
            Thread.sleep(2);   // distinct times, whatever the clock's step
        }
        assertEquals(0, addTile(r, 0, 1).pagesMigrated(), "tile 0 is still on the device: nothing moves");
        Thread.sleep(2);
        addTile(r, CAPACITY, 1);   // room for one more tile: the eviction takes two (its minimum batch)
        assertEquals(1, r.attributes(0, TILE).location(), "tile 0, used last, stays on the device");
        assertEquals(0, r.attributes(TILE, TILE).location(), "tile 1, the least recently used, went home");
        try (HostView v = r.host(0, r.size(), Access.READ)) {
            for (long i = 0; i < r.size() / 8; i++) {
                long want = MemoryFixture.value(6, i) + (i < TILE / 8 ? 2 : 1);
                if (v.segment().getAtIndex(ValueLayout.JAVA_LONG, i) != want) {
                    assertEquals(want, v.segment().getAtIndex(ValueLayout.JAVA_LONG, i), "long " + i);
                }
            }
        }
    }

    /**
     * The copies one eviction drops from several victim blocks are invalidated together, in one
     * call: an invalidation waits for every work item of a faulting launch over the range, and one
     * per victim made a tiled launch's prefetch wait once per 2 MiB block it evicted (before: one
     * call per victim, each covering 2 MiB). Nothing is lost and the table stays in line.
     */
    @Test
    @Tag("emulated")   // a wrapped emulated device counts the invalidations
    void theVictimsOfOneEvictionShareOneInvalidation() {
        assertOneInvalidationFor(CAPACITY, CAPACITY - TILE, 2 * TILE, 2 * TILE / 4096);
    }

    /**
     * A batch that finds the device full makes room for all of its frames at once, not for its
     * current run alone: one eviction, one shootdown. Before, a batch of four blocks onto a full
     * device evicted twice, two blocks each time (an eviction makes room for at least 1024 pages),
     * each with its own invalidation and so its own wait for a faulting launch's running items.
     */
    @Test
    @Tag("emulated")   // a wrapped emulated device counts the invalidations
    void aBatchMakesRoomForAllItsFramesInOneEviction() {
        // 16 MiB: a batch may hold half the device, so the second region's four blocks are one batch
        assertOneInvalidationFor(2 * CAPACITY, 2 * CAPACITY, 4 * TILE, 4 * TILE / 4096);
    }

    /**
     * A first region of {@code firstBytes} duplicated on a device of {@code capacity}, then a second
     * of {@code secondBytes} prefetched there: exactly {@code droppedPages} of the first's copies are
     * dropped, all in one invalidation call.
     */
    private static void assertOneInvalidationFor(long capacity, long firstBytes, long secondBytes, long droppedPages) {
        java.util.concurrent.atomic.AtomicBoolean recording = new java.util.concurrent.atomic.AtomicBoolean();
        long[] span = new long[2];   // the first region's device addresses
        java.util.List<Long> bytesOfFirstPerCall = java.util.Collections.synchronizedList(new java.util.ArrayList<>());
        WrappedDevice counting = new WrappedDevice("counting-invalidations", capacity) {
            @Override
            public void invalidate(dev.hetmem.driver.VaRanges ranges) {
                if (recording.get()) {
                    long bytes = 0;
                    for (int i = 0; i < ranges.size(); i++) {
                        long a = Math.max(span[0], ranges.start(i));
                        long b = Math.min(span[1], ranges.start(i) + ranges.length(i));
                        bytes += Math.max(0, b - a);
                    }
                    if (bytes > 0) {
                        bytesOfFirstPerCall.add(bytes);
                    }
                }
                super.invalidate(ranges);
            }
        };
        try (UnifiedMemory m = UnifiedMemory.builder().device(counting).build()) {
            Region first = m.allocate(firstBytes);
            MemoryFixture.fill(first, 0, first.size(), 8);
            first.advise(0, first.size(), Advice.readMostly(true));
            first.advise(0, first.size(), Advice.prefetch(1));
            long duplicated = first.size() / 4096;
            assertEquals(duplicated, first.snapshot(0, first.size()).countOn(1), "the first region is duplicated on the device");
            span[0] = first.state().pageAddress(0);
            span[1] = span[0] + first.size();
            Region second = m.allocate(secondBytes);
            MemoryFixture.fill(second, 0, second.size(), 9);
            recording.set(true);
            second.advise(0, second.size(), Advice.prefetch(1));
            recording.set(false);
            long dropped = duplicated - first.snapshot(0, first.size()).countOn(1);
            assertEquals(droppedPages, dropped, "the victims' copies dropped, no more");
            assertEquals(java.util.List.of(dropped * 4096), bytesOfFirstPerCall,
                    "one invalidation for every copy dropped (bytes of the first region per call)");
            assertEquals(second.size() / 4096, second.snapshot(0, second.size()).countOn(1));
            MemoryFixture.check(first, 0, first.size(), 8);
            MemoryFixture.check(second, 0, second.size(), 9);
            verified(m);
        }
    }

    /**
     * Page-by-page migration that runs out of room part-way (a running kernel pins the rest of the
     * device) and goes round again once the kernel ends: the prefetch counts every page it moved,
     * those committed before the retry too. It dropped them: 64 pages on a device with 16 frames
     * free were reported as 48.
     */
    @Test
    void aPageByPagePrefetchThatWaitsForRoomCountsThePagesItMovedBeforeTheWait() throws Exception {
        long page = PageGeometry.PAGE_BYTES;
        try (UnifiedMemory mem = UnifiedMemory.builder().granularity(page).migrationMode(MigrationMode.VANILLA)
                .device(EmulatedDevice.builder().capacity(MiB).build()).build()) {
            Region pinned = mem.allocate(MiB - 16 * page);
            Region moved = mem.allocate(64 * page);
            MemoryFixture.fill(moved, 0, moved.size(), 12);
            HeldKernel kernel = new HeldKernel(mem, 1, KernelArg.of(pinned, 0, pinned.size(), Access.READ_WRITE));
            ExecutorService pool = Executors.newSingleThreadExecutor();
            try {
                assertTrue(kernel.awaitRunning(10), "the kernel holding the rest of the device runs");
                Future<Long> prefetch = pool.submit(() -> mem.prefetch(moved, new long[] {0}, moved.size(), 1));
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
                while (moved.snapshot(0, moved.size()).countOn(1) < 16 && System.nanoTime() < deadline) {
                    Thread.sleep(5);
                }
                // a snapshot waits for the block locks a pass of the prefetch holds: 16 shows once that pass gave up for room
                assertEquals(16, moved.snapshot(0, moved.size()).countOn(1), "the free frames filled, the rest waiting for room");
                kernel.release();
                assertEquals(null, kernel.failure());
                assertEquals(64L, prefetch.get(30, TimeUnit.SECONDS), "pages the prefetch moved");
            } finally {
                kernel.release();
                pool.shutdownNow();
            }
            assertEquals(64, moved.snapshot(0, moved.size()).countOn(1));
            verified(mem);
        }
    }
}
