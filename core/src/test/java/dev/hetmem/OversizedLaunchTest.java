package dev.hetmem;

import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.device.emulated.EmulatedKernel;
import dev.hetmem.driver.DeviceMemoryException;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.lang.foreign.ValueLayout;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static dev.hetmem.MemoryFixture.MiB;
import static dev.hetmem.MemoryFixture.check;
import static dev.hetmem.MemoryFixture.checkAdded;
import static dev.hetmem.MemoryFixture.fill;
import static dev.hetmem.MemoryFixture.value;
import static dev.hetmem.MemoryFixture.verified;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * One launch over arguments larger than the device: tiled by declared per-item windows on every
 * device, faulted in while the kernel runs on a device that takes device faults, refused at once
 * (naming the per-item declaration) on one that does not.
 */
class OversizedLaunchTest {
    private static final long DEVICE = 4 * MiB;

    /**
     * A faulting launch on another thread adding 1 to every long of the first {@code bytes} of a,
     * counting its finished items; returns once its first item has run.
     */
    private static CompletableFuture<LaunchResult> startedIncrementing(UnifiedMemory mem, Region a, long bytes,
                                                                       java.util.concurrent.atomic.AtomicLong itemsDone)
            throws InterruptedException {
        java.util.concurrent.CountDownLatch running = new java.util.concurrent.CountDownLatch(1);
        CompletableFuture<LaunchResult> launch = CompletableFuture.supplyAsync(() ->
                mem.launch(1, (EmulatedKernel) (args, i) -> {
                    running.countDown();
                    args.arg(0).putLong(8 * i, args.arg(0).getLong(8 * i) + 1);
                    itemsDone.incrementAndGet();
                }, bytes / 8, KernelArg.readWrite(a)));
        assertTrue(running.await(60, TimeUnit.SECONDS), "the launch started");
        return launch;
    }

    /** in and out each 1.5x the device (3x in all), item i: out[i] = in[i] + 1, windows of one long each. */
    @Test
    void aTiledLaunchOverThreeTimesTheDeviceEqualsOneLaunch() {
        TestDevice d = MemoryFixture.device(DEVICE);
        try (UnifiedMemory mem = MemoryFixture.memory(d)) {
            long bytes = 6 * MiB;
            Region in = mem.allocate(bytes);
            Region out = mem.allocate(bytes);
            fill(in, 0, bytes, 7);
            Stats before = mem.stats();
            LaunchResult r = mem.launch(1, d.incrementInto(), bytes / 8, KernelArg.read(in).perItem(8),
                    KernelArg.write(out).perItem(8));
            Stats after = mem.stats();
            assertEquals(2 * bytes / MemoryFixture.PAGE, r.pagesTouched(), "every page of both, tile by tile: " + r);
            // what the tiles' prefetches moved too (it counted the tiles' own migrations only: a sixth of in's pages)
            long toDevice = after.node(1).pagesMigrated() - before.node(1).pagesMigrated();
            assertTrue(r.pagesMigrated() >= bytes / MemoryFixture.PAGE, "in moved to the device whole: " + r);
            assertEquals(toDevice, r.pagesMigrated(), "the launch's count is what moved to the device meanwhile: " + r);
            assertEquals(r.pagesMigrated() * MemoryFixture.PAGE, r.bytesMigrated(), r.toString());
            checkAdded(out, bytes, 7, 1);
            check(in, 0, bytes, 7);
            assertTrue(mem.stats().node(1).evictions() > 0, "tiles went through a device a third of the data");
            verified(mem);
        }
    }

    /**
     * Drop-behind: on a device whose tiles keep to the caches (the emulated device's default), a
     * tiled read drops the device's copies of each tile's window once the tile has run, the host
     * keeping its copy, so that the coming tiles take those frames instead of evicting; told not to
     * keep tiles to the caches, the same device evicts and drops nothing. Either way every long is
     * read once, with its value, and the host's data is whole.
     */
    @Test
    @Tag("emulated")   // the kernel is Java code; the knob is the emulated device's
    void aTiledReadDropsItsWindowsBehindWhereTilesKeepToTheCaches() {
        for (long cache : new long[] {EmulatedDevice.DEFAULT_TILE_CACHE_BYTES, 0}) {
            EmulatedDevice dev = EmulatedDevice.builder().capacity(DEVICE).computeThreads(2).tileCacheBytes(cache).build();
            try (UnifiedMemory mem = MemoryFixture.memoryOf(dev)) {
                long bytes = 3 * DEVICE;
                Region in = mem.allocate(bytes);
                fill(in, 0, bytes, 17);
                java.util.concurrent.atomic.AtomicLong sum = new java.util.concurrent.atomic.AtomicLong();
                java.util.concurrent.atomic.AtomicLong items = new java.util.concurrent.atomic.AtomicLong();
                mem.launch(1, (EmulatedKernel) (args, i) -> {
                    sum.addAndGet(args.arg(0).getLong(8 * i));
                    items.incrementAndGet();
                }, bytes / 8, KernelArg.read(in).perItem(8));
                long want = 0;
                for (long i = 0; i < bytes / 8; i++) {
                    want += value(17, i);
                }
                assertEquals(bytes / 8, items.get(), "every item ran once (cache " + cache + ")");
                assertEquals(bytes / MemoryFixture.PAGE, mem.stats().node(1).pagesMigrated(),
                        "each page went to the device once: none dropped before its tile ran (cache " + cache + ")");
                assertEquals(want, sum.get(), "every long read with its value (cache " + cache + ")");
                NodeStats device = mem.stats().node(1);
                if (cache > 0) {
                    assertTrue(device.pagesDroppedBehind() >= (bytes - DEVICE) / MemoryFixture.PAGE,
                            "the windows of all but the last tiles dropped behind: " + device.pagesDroppedBehind());
                    assertEquals(0, device.evictions(), "the coming tiles took the dropped frames, evicting nothing");
                    assertTrue(device.residentBytes() <= DEVICE / 2, "the last tiles alone stay: " + device.residentBytes());
                } else {
                    assertEquals(0, device.pagesDroppedBehind(), "tiles as for a device with memory of its own");
                    assertTrue(device.evictions() > 0, "tiles went through a device a third of the data");
                }
                check(in, 0, bytes, 17);
                verified(mem);
            }
        }
    }

    /**
     * A driver that keeps the interface's default {@code execute} runs whole launches only: a launch
     * larger than it, whose kernel reaches its arguments through the page table (ids stay global,
     * so every tile after the first needs an offset), is refused before its first tile runs. It
     * used to run the first tile, write its results, and fail on the second.
     */
    @Test
    void aDeviceThatRunsWholeLaunchesOnlyRefusesATiledLaunchBeforeAnyTileRuns() {
        WrappedDevice d = new WrappedDevice("whole-launches-only", DEVICE);
        try (UnifiedMemory mem = UnifiedMemory.builder().device(d).build()) {
            long bytes = 3 * DEVICE / 2;
            Region in = mem.allocate(bytes);
            Region out = mem.allocate(bytes);
            fill(in, 0, bytes, 7);
            fill(out, 0, bytes, 9);
            EmulatedKernel increment = (args, i) -> args.arg(1).putLong(8 * i, args.arg(0).getLong(8 * i) + 1);
            MemoryFixture.names(DeviceMemoryException.class, "runs whole launches only",
                    () -> mem.launch(1, increment, bytes / 8, KernelArg.read(in).perItem(8), KernelArg.write(out).perItem(8)));
            check(out, 0, bytes, 9);   // no tile ran
            check(in, 0, bytes, 7);
            verified(mem);
            // one that fits runs whole, as before
            Region small = mem.allocate(MiB);
            Region smallOut = mem.allocate(MiB);
            fill(small, 0, MiB, 5);
            mem.launch(1, increment, MiB / 8, KernelArg.read(small).perItem(8), KernelArg.write(smallOut).perItem(8));
            checkAdded(smallOut, MiB, 5, 1);
            verified(mem);
        }
    }

    @Test
    void argumentsLargerThanTheDeviceWithNoWindowFaultOrFailNamingTheWindows() {
        TestDevice d = MemoryFixture.device(DEVICE);
        try (UnifiedMemory mem = MemoryFixture.memory(d)) {
            long bytes = 3 * DEVICE;
            Region a = mem.allocate(bytes);
            fill(a, 0, bytes, 3);
            if (!d.driver().takesDeviceFaults()) {
                MemoryFixture.names(DeviceMemoryException.class, "KernelArg.perItem",
                        () -> mem.launch(1, d.addLongs(5), bytes / 8, KernelArg.readWrite(a)));
                check(a, 0, bytes, 3);   // refused before anything moved or ran
                verified(mem);
                return;
            }
            LaunchResult r = mem.launch(1, d.addLongs(5), bytes / 8, KernelArg.readWrite(a));
            assertTrue(r.faults() >= bytes / (2 * MiB), "at least one device fault per granule: " + r);
            assertEquals(r.faults(), r.faultBatches(), "each device fault is serviced alone: " + r);
            checkAdded(a, bytes, 3, 5);
            assertTrue(mem.stats().node(1).evictions() > 0, "granules of the launch itself were evicted to make room");
            verified(mem);
        }
    }

    /**
     * A tiled launch whose later tiles lie past the end of one windowed argument (its per-item
     * window covers fewer items than the launch has): those tiles ask nothing of it, and the launch
     * equals one launch. An empty window used to become a request of no pages, refused with an
     * IllegalArgumentException when the first such tile was prepared, after earlier tiles had
     * written.
     */
    @Test
    @Tag("emulated")
    void tilesPastTheEndOfAWindowedArgumentAskNothingOfIt() {
        try (UnifiedMemory mem = UnifiedMemory.builder().device(EmulatedDevice.builder().capacity(DEVICE).build()).build()) {
            long inBytes = MiB;
            long outBytes = 3 * DEVICE;
            Region in = mem.allocate(inBytes);
            Region out = mem.allocate(outBytes);
            fill(in, 0, inBytes, 4);
            long inItems = inBytes / 8;
            mem.launch(1, (EmulatedKernel) (a, i) -> a.arg(1).putLong(i * 8, i < inItems ? a.arg(0).getLong(i * 8) + 1 : -1),
                    outBytes / 8, KernelArg.read(in).perItem(8), KernelArg.write(out).perItem(8));
            try (HostView v = out.host(0, outBytes, Access.READ)) {
                for (long i = 0; i < outBytes / 8; i += 509) {
                    assertEquals(i < inItems ? value(4, i) + 1 : -1, v.segment().get(ValueLayout.JAVA_LONG, i * 8), "item " + i);
                }
                assertEquals(-1, v.segment().get(ValueLayout.JAVA_LONG, outBytes - 8));
                assertEquals(value(4, inItems - 1) + 1, v.segment().get(ValueLayout.JAVA_LONG, inBytes - 8));
            }
            check(in, 0, inBytes, 4);
            verified(mem);
        }
    }

    /** The README's example, exactly: a 1 GiB region on the default 256 MiB emulated device. */
    @Test
    @Tag("emulated")
    void theReadmeExampleWorksAsWritten() {
        try (UnifiedMemory mem = UnifiedMemory.builder().device(EmulatedDevice.create()).build()) {
            Region a = mem.allocate(1L << 30);
            try (HostView v = a.host(0, 4096, Access.WRITE)) {
                v.segment().set(ValueLayout.JAVA_FLOAT, 0, 42f);
            }
            mem.launch(1, (EmulatedKernel) (args, i) ->
                    args.arg(0).putFloat(0, args.arg(0).getFloat(0) + 1), 1, KernelArg.readWrite(a));
            PageSnapshot s = a.snapshot(0, 4096);
            assertEquals(1, s.writer(0), "page 0 is on device 1, writable there: " + s.describe(0));
            a.advise(0, a.size(), Advice.prefetch(0));
            try (HostView v = a.host(0, 4096, Access.READ)) {
                assertEquals(43f, v.segment().get(ValueLayout.JAVA_FLOAT, 0));
            }
            verified(mem);
        }
    }

    /**
     * A device of two granules and two compute threads whose items each update a whole page, read
     * then write with a pause between, on pages scattered over all granules: each fault evicts a
     * granule the other thread may be in the middle of updating. Every increment must land exactly
     * once (an invalidation that did not wait for the items using it loses some: the eviction copies
     * the page home between an item's read and its write).
     */
    @Test
    @Tag("emulated")
    void pagesEvictedWhileTheLaunchUsesThemLoseNothing() {
        EmulatedDevice dev = MemoryFixture.emulated(4 * MiB);
        try (UnifiedMemory mem = MemoryFixture.memoryOf(dev)) {
            long bytes = 16 * MiB;
            long pages = bytes / MemoryFixture.PAGE;
            Region a = mem.allocate(bytes);
            fill(a, 0, bytes, 11);
            for (int round = 0; round < 2; round++) {
                mem.launch(1, (EmulatedKernel) (args, i) -> {
                    long page = (i * 517) % pages;   // coprime with the page count: every page once
                    long base = page * MemoryFixture.PAGE;
                    for (long j = 0; j < MemoryFixture.PAGE; j += 8) {
                        long v = args.arg(0).getLong(base + j);
                        if ((j & 511) == 0) {
                            java.util.concurrent.locks.LockSupport.parkNanos(2_000);   // let the other thread evict
                        }
                        args.arg(0).putLong(base + j, v + 1);
                    }
                }, pages, KernelArg.readWrite(a));
            }
            checkAdded(a, bytes, 11, 2);
            assertTrue(mem.stats().node(1).evictions() > 0, "granules were evicted while the launch ran");
            verified(mem);
        }
    }

    /** Frees racing a faulting launch wait for it; the launch completes and the region is gone after. */
    @Test
    @Tag("emulated")
    void aRegionFreedDuringAFaultingLaunchIsFreedAfterIt() throws Exception {
        EmulatedDevice dev = MemoryFixture.emulated(4 * MiB);
        try (UnifiedMemory mem = MemoryFixture.memoryOf(dev)) {
            long bytes = 16 * MiB;
            Region a = mem.allocate(bytes);
            fill(a, 0, bytes, 5);
            java.util.concurrent.atomic.AtomicLong itemsDone = new java.util.concurrent.atomic.AtomicLong();
            CompletableFuture<LaunchResult> launch = startedIncrementing(mem, a, bytes, itemsDone);
            a.free();   // waits for the launch: never frees pages a kernel is faulting in
            assertEquals(bytes / 8, itemsDone.get(), "free() returned only after every work item had run");
            launch.get(60, TimeUnit.SECONDS);
            assertThrows(IllegalStateException.class, () -> a.host(0, 8, Access.READ));
            verified(mem);
            assertEquals(dev.memoryBytes(), mem.stats().node(1).freeBytes(), "every device frame is free again");
        }
    }

    /** Allocation or copy failures during a launch's faults: the launch fails clearly; nothing is lost. */
    @Test
    @Tag("emulated")
    void failuresInjectedDuringFaultsLoseNothing() {
        for (boolean copy : new boolean[] {false, true}) {
            EmulatedDevice dev = MemoryFixture.emulated(4 * MiB);
            try (UnifiedMemory mem = MemoryFixture.memoryOf(dev)) {
                long bytes = 12 * MiB;
                Region a = mem.allocate(bytes);
                fill(a, 0, bytes, 9);
                if (copy) {
                    dev.failCopy(3);
                } else {
                    dev.failAllocation(3);
                }
                RuntimeException e = assertThrows(RuntimeException.class, () -> mem.launch(1,
                        (EmulatedKernel) (args, i) -> args.arg(0).putLong(8 * i, args.arg(0).getLong(8 * i) + 1),
                        bytes / 8, KernelArg.readWrite(a)));
                assertTrue(String.valueOf(e.getMessage()).contains("injected"), "the failure says what it was: " + e);
                verified(mem);
                // every long was incremented once or not at all
                try (HostView v = a.host(0, bytes, Access.READ)) {
                    for (long i = 0; i < bytes / 8; i++) {
                        long got = v.segment().get(ValueLayout.JAVA_LONG, 8 * i);
                        if (got != value(9, i) && got != value(9, i) + 1) {
                            assertEquals(value(9, i), got, "a[" + i + "] after a failed launch (" + (copy ? "copy" : "allocation") + ")");
                        }
                    }
                }
            }
        }
    }

    /** A region made read-only while a faulting launch writes it: the launch fails naming it, it does not spin. */
    @Test
    @Tag("emulated")
    void protectionChangedDuringAFaultingLaunchFailsItCleanly() throws Exception {
        EmulatedDevice dev = MemoryFixture.emulated(4 * MiB);
        try (UnifiedMemory mem = MemoryFixture.memoryOf(dev)) {
            long bytes = 16 * MiB;
            Region a = mem.allocate(bytes);
            fill(a, 0, bytes, 2);
            CompletableFuture<LaunchResult> launch = startedIncrementing(mem, a, bytes, new java.util.concurrent.atomic.AtomicLong());
            a.protect(0, bytes, Protection.READ_ONLY);
            var e = assertThrows(java.util.concurrent.ExecutionException.class, () -> launch.get(60, TimeUnit.SECONDS));
            assertTrue(e.getCause() instanceof ProtectionException, "the launch failed on the protection: " + e.getCause());
            verified(mem);
        }
    }

    /**
     * A write fault between a range's protection becoming read-write again and the protection
     * change reaching the range's blocks (it locks all of them first: here it waits for block 0
     * while the item writes a page of block 1): served, the item's store lands. The device's entry
     * was still read-only from the read-only spell, the fault found nothing to move, and the item
     * faulted again at once until the launch failed after 10,000 faults on a writable range.
     */
    @Test
    @Tag("emulated")
    void aWriteFaultWhileAProtectionIsLiftedIsServed() throws Exception {
        writeWhileAProtectionIsLifted(false);
    }

    /**
     * As above, for a page the device maps in place (accessed-by advice): its entry was write-protected
     * by the read-only spell while the page table kept it remotely writable, the fault found a plan with
     * nothing to do (not the case of nothing to move, which put entries in line), and the item faulted
     * again until the launch failed after 10,000 faults. From a review.
     */
    @Test
    @Tag("emulated")
    void aWriteFaultOnAPageMappedInPlaceWhileAProtectionIsLiftedIsServed() throws Exception {
        writeWhileAProtectionIsLifted(true);
    }

    /** A page of block 1 written by a launch, read-only, then written while block 0 holds up the protection's lifting. */
    private static void writeWhileAProtectionIsLifted(boolean mappedInPlace) throws Exception {
        EmulatedDevice dev = MemoryFixture.emulated(2 * MiB);
        try (UnifiedMemory mem = MemoryFixture.memoryOf(dev)) {
            long bytes = 8 * MiB;
            Region a = mem.allocate(bytes);
            fill(a, 0, bytes, 2);
            if (mappedInPlace) {
                a.advise(0, bytes, Advice.accessedBy(1));
            }
            long at = 2 * MiB + 64;   // a page of block 1
            // larger than the device, no window: by faults; the page ends on the device (or mapped in place), writable
            mem.launch(1, (EmulatedKernel) (args, i) -> args.arg(0).putLong(at, 5), 1, KernelArg.readWrite(a));
            assertEquals(mappedInPlace ? 0 : 1, a.snapshot(at, 8).countOn(1), "held on the device, or mapped in place");
            a.protect(0, bytes, Protection.READ_ONLY);   // its entry loses write; the page table keeps it
            dev.hetmem.pagetable.Block first = a.state().table().block(0);
            CompletableFuture<Void> lifted;
            first.lock.lock();
            try {
                lifted = CompletableFuture.runAsync(() -> a.protect(0, bytes, Protection.READ_WRITE));
                long deadline = System.nanoTime() + 10_000_000_000L;
                while (a.attributes(at, 8).protection() != Protection.READ_WRITE) {
                    assertTrue(System.nanoTime() < deadline, "the protection change never began");
                    Thread.onSpinWait();
                }
                mem.launch(1, (EmulatedKernel) (args, i) -> args.arg(0).putLong(at, 6), 1, KernelArg.readWrite(a));
            } finally {
                first.lock.unlock();
            }
            lifted.get(30, TimeUnit.SECONDS);
            try (HostView v = a.host(at, 8, Access.READ)) {
                assertEquals(6L, v.segment().get(ValueLayout.JAVA_LONG, 0));
            }
            verified(mem);
        }
    }

    /** A kernel of a faulting launch may not call into the memory manager: refused, not a deadlock. */
    @Test
    @Tag("emulated")
    void aFaultingItemCallingIntoTheCoreIsRefused() {
        EmulatedDevice dev = MemoryFixture.emulated(4 * MiB);
        try (UnifiedMemory mem = MemoryFixture.memoryOf(dev)) {
            long bytes = 12 * MiB;
            Region a = mem.allocate(bytes);
            Region other = mem.allocate(MiB);
            var e = assertThrows(IllegalStateException.class, () -> mem.launch(1, (EmulatedKernel) (args, i) -> {
                args.arg(0).putLong(8 * i, 1);
                if (i == 7) {
                    try (HostView v = other.host(0, 8, Access.READ)) {
                        v.segment().get(ValueLayout.JAVA_LONG, 0);
                    }
                }
            }, bytes / 8, KernelArg.readWrite(a)));
            assertTrue(e.getMessage().contains("takes device faults"), e.getMessage());
            verified(mem);
        }
    }

    /**
     * Calls into the core from a faulting work item that hand the work to another thread, or that
     * change a region's attributes first: refused, with nothing changed. {@code prefetchAsync} was
     * accepted, and its migration waited for the item's own translations while the item waited for
     * it (a deadlock holding block locks); {@code protect} marked the range read-only before the
     * engine refused, leaving the attributes and the mappings out of line.
     */
    @Test
    @Tag("emulated")
    void aFaultingItemsAsynchronousPrefetchAndProtectAreRefusedWithNothingChanged() throws Exception {
        EmulatedDevice dev = MemoryFixture.emulated(4 * MiB);
        try (UnifiedMemory mem = MemoryFixture.memoryOf(dev)) {
            long bytes = 12 * MiB;
            Region a = mem.allocate(bytes);
            Region other = mem.allocate(MiB);
            var prefetch = CompletableFuture.supplyAsync(() -> assertThrows(IllegalStateException.class,
                    () -> mem.launch(1, (EmulatedKernel) (args, i) -> {
                        args.arg(0).putLong(8 * i, 1);
                        if (i == 7) {
                            mem.prefetchAsync(a, 0, bytes, 0).join();
                        }
                    }, bytes / 8, KernelArg.readWrite(a))));
            var refused = prefetch.get(30, TimeUnit.SECONDS);
            assertTrue(refused.getMessage().contains("takes device faults"), refused.getMessage());
            var e = assertThrows(IllegalStateException.class, () -> mem.launch(1, (EmulatedKernel) (args, i) -> {
                args.arg(0).putLong(8 * i, 1);
                if (i == 7) {
                    other.protect(0, MiB, Protection.READ_ONLY);
                }
            }, bytes / 8, KernelArg.readWrite(a)));
            assertTrue(e.getMessage().contains("takes device faults"), e.getMessage());
            assertEquals(Protection.READ_WRITE, other.protection(0), "the refused protect changed nothing");
            verified(mem);
        }
    }

    /**
     * A faulting launch whose kernel fails while another of its threads waits in a device fault
     * for a page under another thread's host view, that thread waiting for the launch's outcome
     * before it closes the view: the launch stops its waiting thread and reports the kernel's
     * failure, rather than wait for it (and so for the view) for good.
     */
    @Test
    @Tag("emulated")
    void aFaultingLaunchThatFailsDoesNotWaitForItsThreadWaitingForAView() throws Exception {
        EmulatedDevice dev = MemoryFixture.emulated(4 * MiB);
        try (UnifiedMemory mem = MemoryFixture.memoryOf(dev)) {
            long bytes = 12 * MiB;
            Region a = mem.allocate(bytes, 4096);   // faults by the page: the other thread's items go on
            fill(a, 0, bytes, 9);
            long viewed = 3 * 4096;   // in the first chunk of items: one thread stops there at once
            java.util.concurrent.ExecutorService launcher = java.util.concurrent.Executors.newSingleThreadExecutor();
            try {
                CompletableFuture<LaunchResult> launch;
                try (HostView v = a.host(viewed, 4096, Access.READ)) {
                    launch = CompletableFuture.supplyAsync(() -> mem.launch(1, (EmulatedKernel) (args, i) -> {
                        if (i == bytes / 8 - 1) {
                            sleep(200);
                            throw new IllegalStateException("the kernel failed at its last item");
                        }
                        args.arg(0).putLong(8 * i, args.arg(0).getLong(8 * i) + 1);
                    }, bytes / 8, KernelArg.readWrite(a)), launcher);
                    var e = assertThrows(java.util.concurrent.ExecutionException.class, () -> launch.get(20, TimeUnit.SECONDS),
                            "the failed launch returned while the view stayed open");
                    assertTrue(String.valueOf(e.getCause()).contains("the kernel failed at its last item"), e.toString());
                    assertEquals(value(9, viewed / 8), v.segment().get(ValueLayout.JAVA_LONG, 0), "the viewed page");
                }
                checkAddedAtMostOnce(a, bytes, 9);
                for (long i = viewed / 8; i < (viewed + 4096) / 8; i++) {
                    assertEquals(value(9, i), readLong(a, 8 * i), "long " + i + " of the viewed page, never reached");
                }
                verified(mem);
                // the launching thread of the pool is not left interrupted: a next launch on it runs
                assertEquals(bytes / 4096, launcher.submit(() -> mem.launch(1, (EmulatedKernel) (args, i) -> {
                }, bytes / 8, KernelArg.readWrite(a)).pagesTouched()).get(60, TimeUnit.SECONDS));
            } finally {
                launcher.shutdownNow();
            }
        }
    }

    /**
     * The launching thread interrupted while a helper thread of its faulting launch waits in a
     * device fault for a page under another thread's host view: the launch stops and fails, the
     * interrupt kept. (The launching thread holds its first item until the helper waits, so that
     * the helper, which takes every other chunk in order, is the one that reaches the viewed last
     * page.)
     */
    @Test
    @Tag("emulated")
    void anInterruptedFaultingLaunchStopsWhileItsHelperWaitsForAView() throws Exception {
        EmulatedDevice dev = MemoryFixture.emulated(4 * MiB);
        // thrashing control off: a block it holds home is mapped in place for a device's fault, with no
        // wait for the view, and the launch then completes (it did once in a clean-clone CI run, the
        // machine busy): the wait this test is about would not happen
        try (UnifiedMemory mem = UnifiedMemory.builder().device(dev).copyThreads(2).thrashControl(false).build()) {
            long bytes = 12 * MiB;
            Region a = mem.allocate(bytes, 4096);
            fill(a, 0, bytes, 9);
            long viewed = bytes - 4096;
            java.util.concurrent.atomic.AtomicLong ran = new java.util.concurrent.atomic.AtomicLong();
            java.util.concurrent.atomic.AtomicBoolean held = new java.util.concurrent.atomic.AtomicBoolean();
            java.util.concurrent.atomic.AtomicBoolean release = new java.util.concurrent.atomic.AtomicBoolean();
            java.util.concurrent.atomic.AtomicBoolean keptInterrupt = new java.util.concurrent.atomic.AtomicBoolean();
            CompletableFuture<Throwable> outcome = new CompletableFuture<>();
            Thread[] launching = new Thread[1];
            try (HostView v = a.host(viewed, 4096, Access.READ)) {
                launching[0] = Thread.ofPlatform().unstarted(() -> {
                    try {
                        mem.launch(1, (EmulatedKernel) (args, i) -> {
                            if (Thread.currentThread() == launching[0] && held.compareAndSet(false, true)) {
                                while (!release.get()) {
                                    Thread.onSpinWait();
                                }
                            }
                            ran.incrementAndGet();
                            args.arg(0).putLong(8 * i, args.arg(0).getLong(8 * i) + 1);
                        }, bytes / 8, KernelArg.readWrite(a));
                        outcome.complete(null);
                    } catch (Throwable e) {
                        keptInterrupt.set(Thread.currentThread().isInterrupted());
                        outcome.complete(e);
                    }
                });
                launching[0].start();
                // the helper has stopped at the viewed page when the count stands still
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                long seen = -1;
                while ((!held.get() || ran.get() != seen) && System.nanoTime() < deadline) {
                    seen = ran.get();
                    Thread.sleep(300);
                }
                launching[0].interrupt();
                release.set(true);
                Throwable e = outcome.get(20, TimeUnit.SECONDS);
                assertTrue(e instanceof InterruptedOperationException && String.valueOf(e.getMessage()).contains("interrupted"),
                        "the launch failed on the interrupt, as a type the caller can name: " + e);
                assertTrue(keptInterrupt.get(), "the launching thread's interrupt is kept");
                assertEquals(value(9, viewed / 8), v.segment().get(ValueLayout.JAVA_LONG, 0), "the viewed page");
            } finally {
                release.set(true);
            }
            launching[0].join();
            checkAddedAtMostOnce(a, bytes, 9);
            verified(mem);
        }
    }

    /**
     * Two read arguments over one region, the second a page behind the first (item i reads long
     * i + 512 and long i): drop-behind after a tile keeps the page the lagging argument's next
     * window starts at, though the leading argument's tile went past it, so each page goes to the
     * device once. Dropped by the leading argument's own windows alone, that page came back every tile.
     */
    @Test
    @Tag("emulated")   // the kernel is Java code; drop-behind is the emulated device's
    void dropBehindKeepsWhatAnotherArgumentOfTheRegionReadsNext() {
        EmulatedDevice dev = EmulatedDevice.builder().capacity(DEVICE).computeThreads(2).build();
        try (UnifiedMemory mem = MemoryFixture.memoryOf(dev)) {
            long bytes = 3 * DEVICE;
            long lag = MemoryFixture.PAGE;
            Region in = mem.allocate(bytes);
            fill(in, 0, bytes, 29);
            java.util.concurrent.atomic.AtomicLong sum = new java.util.concurrent.atomic.AtomicLong();
            long items = (bytes - lag) / 8;
            mem.launch(1, (EmulatedKernel) (args, i) -> sum.addAndGet(args.arg(0).getLong(8 * i) - args.arg(1).getLong(8 * i)),
                    items, KernelArg.of(in, lag, bytes - lag, Access.READ).perItem(8),
                    KernelArg.of(in, 0, bytes - lag, Access.READ).perItem(8));
            long want = 0;
            for (long i = 0; i < items; i++) {
                want += value(29, i + lag / 8) - value(29, i);
            }
            assertEquals(want, sum.get(), "every pair read with its values");
            NodeStats device = mem.stats().node(1);
            assertTrue(device.pagesDroppedBehind() > 0, "dropped behind: " + device);
            assertEquals(bytes / MemoryFixture.PAGE, device.pagesMigrated(), "each page went to the device once: " + device);
            verified(mem);
        }
    }

    /**
     * One item's window larger than the caches the device keeps tiles to (3 MiB rows, 2 MiB): the
     * launch tiles as on a device with memory of its own (a quarter of the device a tile), where it
     * was refused for want of room "three times over" once tiles kept to the caches.
     */
    @Test
    @Tag("emulated")   // the kernel is Java code; the knob is the emulated device's
    void anItemsWindowLargerThanTheCachesStillTiles() {
        long device = 16 * MiB;
        long row = 3 * MiB;
        EmulatedDevice dev = EmulatedDevice.builder().capacity(device).computeThreads(2).build();
        try (UnifiedMemory mem = MemoryFixture.memoryOf(dev)) {
            long rows = 16;   // three times the device
            Region in = mem.allocate(rows * row);
            fill(in, 0, rows * row, 23);
            java.util.concurrent.atomic.AtomicLong sum = new java.util.concurrent.atomic.AtomicLong();
            mem.launch(1, (EmulatedKernel) (args, i) -> {
                long s = 0;
                for (long o = i * row; o < (i + 1) * row; o += 8) {
                    s += args.arg(0).getLong(o);
                }
                sum.addAndGet(s);
            }, rows, KernelArg.read(in).perItem(row));
            long want = 0;
            for (long i = 0; i < rows * row / 8; i++) {
                want += value(23, i);
            }
            assertEquals(want, sum.get(), "every row summed");
            assertEquals(0, mem.stats().node(1).pagesDroppedBehind(), "tiled as on a device with memory of its own");
            assertTrue(mem.stats().node(1).evictions() > 0, "tiles went through a device a third of the data");
            verified(mem);
        }
    }

    /**
     * A tiled launch whose kernel fails while a coming tile's prefetch waits for another thread's
     * host view over that tile's window, the view's thread waiting for the launch's outcome before
     * it closes the view: the launch stops its prefetches and reports the kernel's failure, rather
     * than wait for the prefetch (and so for the view) before it returns. On a device with memory of
     * its own the view is in the next tile; where tiles keep to the caches, in the tile after it
     * (two are prefetched ahead), and the prefetch of the next tile, between, has ended. Either way
     * the kernel fails only once a thread is seen waiting for the view's pin.
     */
    @Test
    @Tag("emulated")   // the kernel is Java code; the knob is the emulated device's
    void aTiledLaunchThatFailsDoesNotWaitForItsComingTilesPrefetch() throws Exception {
        for (long cache : new long[] {0, EmulatedDevice.DEFAULT_TILE_CACHE_BYTES}) {
            EmulatedDevice dev = EmulatedDevice.builder().capacity(DEVICE).computeThreads(2).tileCacheBytes(cache).build();
            try (UnifiedMemory mem = MemoryFixture.memoryOf(dev)) {
                failWhileAComingTilesPrefetchWaitsForAView(mem, cache);
            }
        }
    }

    private static void failWhileAComingTilesPrefetchWaitsForAView(UnifiedMemory mem, long cache) throws Exception {
        long bytes = 3 * DEVICE;
        Region a = mem.allocate(bytes);
        fill(a, 0, bytes, 9);
        long tileItems = DEVICE / 4 / 8;
        // tiles ramp up (an eighth, a quarter, a half of a tile, then whole ones) to a quarter of the device
        // (1024 pages, 131072 items: tile 3 holds items [114688, 245760), tile 4 [245760, 376832)) or, where
        // tiles keep to the caches, to a sixth (170 pages, 87040 items, ramped in whole pages of items: tile 3
        // [75776, 162816), tile 4 [162816, 249856), tile 5 [249856, 336896)). Item tileItems fails, in tile 3
        // either way; the viewed
        // item, 2 * tileItems + 512, is in tile 4, the next, or in tile 5, two ahead
        java.util.concurrent.atomic.AtomicBoolean sawTheWait = new java.util.concurrent.atomic.AtomicBoolean();
        java.util.concurrent.ExecutorService launcher = java.util.concurrent.Executors.newSingleThreadExecutor();
        try {
            CompletableFuture<LaunchResult> launch;
            try (HostView v = a.host(2 * tileItems * 8 + 4096, 4096, Access.READ)) {
                launch = CompletableFuture.supplyAsync(() -> mem.launch(1, (EmulatedKernel) (args, i) -> {
                    if (i == tileItems) {
                        // fails once a coming tile's prefetch waits for the view's pin (or after 20 s)
                        for (long end = System.nanoTime() + 20_000_000_000L; System.nanoTime() < end && !sawTheWait.get(); ) {
                            sawTheWait.set(Thread.getAllStackTraces().values().stream().anyMatch(trace ->
                                    java.util.Arrays.stream(trace).anyMatch(f -> f.getMethodName().equals("awaitRelease"))));
                            sleep(5);
                        }
                        throw new IllegalStateException("the kernel failed in its fourth tile");
                    }
                    args.arg(0).putLong(8 * i, args.arg(0).getLong(8 * i) + 1);
                }, bytes / 8, KernelArg.readWrite(a).perItem(8)), launcher);
                // this thread waits for the launch before it closes its view
                var e = assertThrows(java.util.concurrent.ExecutionException.class, () -> launch.get(40, TimeUnit.SECONDS),
                        "the failed launch returned while the view stayed open (cache " + cache + ")");
                assertTrue(String.valueOf(e.getCause()).contains("the kernel failed in its fourth tile")
                        || (e.getCause().getCause() != null
                        && e.getCause().getCause().getMessage().contains("the kernel failed in its fourth tile")), e.toString());
                assertTrue(sawTheWait.get(), "a coming tile's prefetch waited for the view (cache " + cache + ")");
                assertEquals(value(9, 2 * tileItems + 512), v.segment().get(ValueLayout.JAVA_LONG, 0), "the viewed page");
            }
            // nothing lost: the first tiles' items added one, the tiles after the failed one nothing
            // (the failed tile's items may have run or not)
            for (long i = 0; i < bytes / 8; i += 509) {
                long was = value(9, i);
                long got = readLong(a, 8 * i);
                if (i < tileItems / 2) {
                    assertEquals(was + 1, got, "long " + i + " of the first tiles (cache " + cache + ")");
                } else if (i >= 2 * tileItems) {
                    assertEquals(was, got, "long " + i + " of a tile after the failed one (cache " + cache + ")");
                } else {
                    assertTrue(got == was || got == was + 1, "long " + i + ": " + got + " against " + was);
                }
            }
            verified(mem);
        } finally {
            launcher.shutdownNow();
        }
    }

    private static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** After a launch adding one to each long failed part-way: every 509th long of the pattern gained one or nothing. */
    private static void checkAddedAtMostOnce(Region a, long bytes, long seed) {
        for (long i = 0; i < bytes / 8; i += 509) {
            long was = value(seed, i);
            long got = readLong(a, 8 * i);
            assertTrue(got == was || got == was + 1, "long " + i + ": " + got + " against " + was);
        }
    }

    private static long readLong(Region r, long offset) {
        try (HostView v = r.host(offset, 8, Access.READ)) {
            return v.segment().get(ValueLayout.JAVA_LONG, 0);
        }
    }

    /** The launching thread's own host view over an argument of a launch larger than the device. */
    @Test
    void aLaunchOverThePagesOfTheCallersOwnViewIsRefusedAtOnce() {
        TestDevice d = MemoryFixture.device(DEVICE);
        try (UnifiedMemory mem = MemoryFixture.memory(d)) {
            long bytes = 3 * DEVICE;
            Region a = mem.allocate(bytes);
            try (HostView v = a.host(0, 4096, Access.READ)) {
                assertThrows(PinnedByCallerException.class, () -> mem.launch(1, d.addLongs(1), bytes / 8,
                        KernelArg.readWrite(a).perItem(8)));
                if (d.driver().takesDeviceFaults()) {
                    assertThrows(PinnedByCallerException.class, () -> mem.launch(1, d.addLongs(1), bytes / 8,
                            KernelArg.readWrite(a)));
                }
            }
            verified(mem);
        }
    }
}
