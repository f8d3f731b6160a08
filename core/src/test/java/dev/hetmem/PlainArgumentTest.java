package dev.hetmem;

import dev.hetmem.device.emulated.EmulatedKernel;
import dev.hetmem.driver.DeviceMemoryException;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.lang.foreign.ValueLayout;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static dev.hetmem.MemoryFixture.MiB;
import static dev.hetmem.MemoryFixture.PAGE;
import static dev.hetmem.MemoryFixture.check;
import static dev.hetmem.MemoryFixture.fill;
import static dev.hetmem.MemoryFixture.value;
import static dev.hetmem.MemoryFixture.verified;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Plain arguments: a kernel that reaches region arguments through plain pointers (written as for
 * plain buffers) runs on them once the core has placed each argument's pages in consecutive
 * device frames; the page table stays page by page around it. Runs on every test device.
 */
class PlainArgumentTest {
    private static final long DEVICE = 8 * MiB;

    /** Every long i of [0, bytes) of r is value(seed, i) + 1. */
    private static void checkIncremented(Region r, long bytes, long seed) {
        MemoryFixture.checkAdded(r, bytes, seed, 1);
    }

    /** Frames of r's pages [0, bytes) on node 1: consecutive, in page order. */
    private static void assertConsecutive(TestDevice d, Region r, long bytes) {
        long first = d.driver().probeFrame(r.address());
        assertTrue(first >= 0, "page 0 of " + r + " is on the device");
        for (long p = 1; p < bytes / PAGE; p++) {
            long f = d.driver().probeFrame(r.address() + p * PAGE);
            if (f != first + p) {
                assertEquals(first + p, f, "frame of page " + p + " of " + r);
            }
        }
    }

    @Test
    void plainArgumentsRunInConsecutiveFrames() {
        TestDevice d = MemoryFixture.device(DEVICE);
        try (UnifiedMemory mem = MemoryFixture.memory(d)) {
            long bytes = 2 * MiB + 3 * PAGE;   // not a power of two of pages: no buddy block is exactly it
            Region in = mem.allocate(bytes);
            Region out = mem.allocate(bytes);
            fill(in, 0, bytes, 11);
            mem.launch(1, d.plainIncrementInto(), bytes / 8, KernelArg.read(in), KernelArg.write(out));
            assertConsecutive(d, in, bytes);
            assertConsecutive(d, out, bytes);
            checkIncremented(out, bytes, 11);
            check(in, 0, bytes, 11);
            verified(mem);
        }
    }

    @Test
    void scatteredPagesAreGatheredBeforeTheKernelRuns() {
        TestDevice d = MemoryFixture.device(DEVICE);
        try (UnifiedMemory mem = MemoryFixture.memory(d)) {
            long bytes = MiB;
            Region in = mem.allocate(bytes, PAGE);
            Region other = mem.allocate(bytes, PAGE);
            Region out = mem.allocate(bytes, PAGE);
            fill(in, 0, bytes, 5);
            fill(other, 0, bytes, 6);
            // in's pages reach the device one at a time, interleaved with another region's and in
            // reverse order: their frames are scattered
            for (long p = bytes / PAGE - 1; p >= 0; p--) {
                mem.advise(in, p * PAGE, PAGE, new Advice.Prefetch(1));
                mem.advise(other, p * PAGE, PAGE, new Advice.Prefetch(1));
            }
            assertNotEquals(d.driver().probeFrame(in.address()) + 1, d.driver().probeFrame(in.address() + PAGE),
                    "the set-up scattered in's frames");
            long evictionsBefore = mem.stats().node(1).evictions();
            LaunchResult placed = mem.launch(1, d.plainIncrementInto(), bytes / 8, KernelArg.read(in), KernelArg.write(out));
            assertConsecutive(d, in, bytes);
            if (d.driver().canCopyWithin()) {
                // gathered device to device: nothing left the device, nothing came from the host
                assertEquals(evictionsBefore, mem.stats().node(1).evictions(), "in's pages stayed on the device");
                assertEquals(0, placed.pagesMigrated(), "in's pages moved within the device: " + placed);
            } else {
                assertTrue(mem.stats().node(1).evictions() > evictionsBefore, "the misplaced pages left the device first");
            }
            checkIncremented(out, bytes, 5);
            check(other, 0, bytes, 6);
            // in is in place now: a second launch moves only out, which the host read back meanwhile
            long placedAt = d.driver().probeFrame(in.address());
            LaunchResult again = mem.launch(1, d.plainIncrementInto(), bytes / 8, KernelArg.read(in), KernelArg.write(out));
            assertEquals(bytes / PAGE, again.pagesMigrated(), "only out came back: " + again);
            assertEquals(placedAt, d.driver().probeFrame(in.address()), "in stayed where it was placed");
            assertConsecutive(d, out, bytes);
            verified(mem);
        }
    }

    /**
     * A region of {@code bytes} filled with {@code seed}'s values, brought to the device a page at a
     * time in reverse order, and then given {@code added} on every long by a kernel: only the device
     * holds it, in frames that are not in page order.
     */
    private static Region scatteredAndWrittenOnTheDevice(UnifiedMemory mem, TestDevice d, long bytes, long seed, long added) {
        Region r = mem.allocate(bytes, PAGE);
        fill(r, 0, bytes, seed);
        scatterInReverse(mem, r, bytes);
        mem.launch(1, d.addLongs(added), bytes / 8, KernelArg.of(r, 0, bytes, Access.READ_WRITE));
        return r;
    }

    /**
     * Fragments the device: a region of {@code bytes} (filled from {@code seed}) and another as large
     * take every other free frame, then the other is freed. Returns the one that stays.
     */
    private static Region fragment(UnifiedMemory mem, long bytes, long seed) {
        Region kept = mem.allocate(bytes, PAGE);
        Region gone = mem.allocate(bytes, PAGE);
        fill(kept, 0, bytes, seed);
        fill(gone, 0, bytes, seed + 1);
        for (long p = 0; p < bytes / PAGE; p++) {
            mem.advise(kept, p * PAGE, PAGE, new Advice.Prefetch(1));
            mem.advise(gone, p * PAGE, PAGE, new Advice.Prefetch(1));
        }
        gone.free();
        return kept;
    }

    /** Pages prefetched one at a time in reverse order: on the device, each frame below the next page's. */
    private static void scatterInReverse(UnifiedMemory mem, Region r, long bytes) {
        for (long p = bytes / PAGE - 1; p >= 0; p--) {
            mem.advise(r, p * PAGE, PAGE, new Advice.Prefetch(1));
        }
    }

    /**
     * A written plain argument whose pages only the device holds (an earlier kernel wrote them) is
     * gathered within the device: what the kernel wrote survives, nothing goes through the host,
     * and the old frames are free again.
     */
    @Test
    void deviceOnlyPagesAreGatheredWithinTheDevice() {
        TestDevice d = MemoryFixture.device(DEVICE);
        try (UnifiedMemory mem = MemoryFixture.memory(d)) {
            long bytes = 512 * PAGE;
            Region in = scatteredAndWrittenOnTheDevice(mem, d, bytes, 7, 5);
            Region out = mem.allocate(bytes, PAGE);
            assertTrue(!in.snapshot(0, PAGE).residentOn(0, 0), "only the device holds in");
            long freeBefore = mem.stats().node(1).freeBytes();
            LaunchResult placed = mem.launch(1, d.plainIncrementInto(), bytes / 8, KernelArg.readWrite(in),
                    KernelArg.write(out));
            assertConsecutive(d, in, bytes);
            if (d.driver().canCopyWithin()) {
                assertEquals(0, placed.pagesMigrated(), "nothing came from the host: " + placed);
            }
            assertEquals(freeBefore - bytes, mem.stats().node(1).freeBytes(), "in's old frames went back; out took its own");
            MemoryFixture.checkAdded(in, bytes, 7, 5);
            MemoryFixture.checkAdded(out, bytes, 7, 6);
            verified(mem);
        }
    }

    /**
     * A call that writes a span whose pages the device holds as read-only copies (read duplication)
     * cannot relocate them (the device may not write them): they are dropped, the host's copies
     * move into the run, and the data is right.
     */
    @Test
    void aWrittenSpanOfReadOnlyCopiesIsPlacedFromTheHost() {
        TestDevice d = MemoryFixture.device(DEVICE);
        try (UnifiedMemory mem = MemoryFixture.memory(d)) {
            long bytes = 256 * PAGE;
            Region in = mem.allocate(bytes, PAGE);
            Region out = mem.allocate(bytes, PAGE);
            fill(in, 0, bytes, 17);
            mem.advise(in, 0, bytes, new Advice.ReadMostly(true));
            scatterInReverse(mem, in, bytes);   // read-only duplicates, frames out of page order
            assertTrue(in.snapshot(0, PAGE).residentOn(0, 0) && in.snapshot(0, PAGE).residentOn(0, 1), "duplicated");
            LaunchResult r = mem.launch(1, d.plainIncrementInto(), bytes / 8, KernelArg.readWrite(in), KernelArg.write(out));
            assertEquals(bytes / PAGE, r.pagesMigrated(), "in's pages came from the host: " + r);
            assertConsecutive(d, in, bytes);
            check(in, 0, bytes, 17);
            checkIncremented(out, bytes, 17);
            verified(mem);
        }
    }

    /** Zeros a read brought into being on the device, gathered within it: still zeros, still marked so. */
    @Test
    void untouchedPagesAreGatheredAsZeros() {
        TestDevice d = MemoryFixture.device(DEVICE);
        try (UnifiedMemory mem = MemoryFixture.memory(d)) {
            long bytes = 128 * PAGE;
            Region zeros = mem.allocate(bytes, PAGE);
            Region out = mem.allocate(bytes, PAGE);
            scatterInReverse(mem, zeros, bytes);
            LaunchResult r = mem.launch(1, d.plainIncrementInto(), bytes / 8, KernelArg.read(zeros), KernelArg.write(out));
            assertEquals(0, r.pagesMigrated(), "nothing came from the host: " + r);
            assertConsecutive(d, zeros, bytes);
            verified(mem);
            try (HostView v = out.host(0, bytes, Access.READ)) {
                for (long i = 0; i < bytes; i += 8) {
                    assertEquals(1L, v.segment().get(ValueLayout.JAVA_LONG, i), "out's long at " + i);
                }
            }
            try (HostView v = zeros.host(0, bytes, Access.READ)) {
                for (long i = 0; i < bytes; i += 8) {
                    assertEquals(0L, v.segment().get(ValueLayout.JAVA_LONG, i), "zeros' long at " + i);
                }
            }
            verified(mem);
        }
    }

    /**
     * A fragmented device (half its frames free, every other one): a plain argument's run is made by
     * moving another region's pages out of a window within the device (compaction), not by sending
     * them home. Everything stays on the device and every byte is right.
     */
    @Test
    void aFragmentedDeviceIsCompactedForAPlainArgument() {
        TestDevice d = MemoryFixture.device(4 * MiB);
        try (UnifiedMemory mem = MemoryFixture.memory(d)) {
            long half = 2 * MiB;
            Region kept = fragment(mem, half, 23);
            assertEquals(half, mem.stats().node(1).freeBytes(), "half the device is free");
            long bytes = 64 * PAGE;
            Region in = mem.allocate(bytes, PAGE);
            Region out = mem.allocate(bytes, PAGE);
            fill(in, 0, bytes, 25);
            long evictionsBefore = mem.stats().node(1).evictions();
            mem.launch(1, d.plainIncrementInto(), bytes / 8, KernelArg.read(in), KernelArg.write(out));
            assertConsecutive(d, in, bytes);
            assertConsecutive(d, out, bytes);
            assertEquals(evictionsBefore, mem.stats().node(1).evictions(), "nothing was evicted to make the runs");
            assertEquals(half - 2 * bytes, mem.stats().node(1).freeBytes(), "kept stayed on the device");
            checkIncremented(out, bytes, 25);
            check(kept, 0, half, 23);
            verified(mem);
        }
    }

    /**
     * A plain argument scattered on a device that is also fragmented: compaction clears a window for
     * its run and its pages move into it within the device; nothing comes from the host and nothing
     * is evicted.
     */
    @Test
    void aScatteredArgumentOnAFragmentedDeviceMovesWithinIt() {
        TestDevice d = MemoryFixture.device(4 * MiB);
        try (UnifiedMemory mem = MemoryFixture.memory(d)) {
            long bytes = 128 * PAGE;
            Region in = mem.allocate(bytes, PAGE);
            fill(in, 0, bytes, 31);
            scatterInReverse(mem, in, bytes);   // the first 128 frames, in reverse page order
            long rest = 4 * MiB - bytes;
            Region kept = fragment(mem, rest / 2, 32);   // every other frame of the rest
            Region out = mem.allocate(bytes, PAGE);
            long evictionsBefore = mem.stats().node(1).evictions();
            LaunchResult r = mem.launch(1, d.plainIncrementInto(), bytes / 8, KernelArg.read(in), KernelArg.write(out));
            assertConsecutive(d, in, bytes);
            assertConsecutive(d, out, bytes);
            assertEquals(0, r.pagesMigrated(), "in moved within the device: " + r);
            assertEquals(evictionsBefore, mem.stats().node(1).evictions(), "nothing was evicted");
            checkIncremented(out, bytes, 31);
            check(kept, 0, rest / 2, 32);
            verified(mem);
        }
    }

    /**
     * A launch that fits the device, but whose large plain argument finds no run of consecutive
     * frames: another argument of the same launch lies in the middle of the device, and cannot leave
     * (the launch needs it). Without windows the launch fails with the sizes and nothing changes;
     * with per-item windows it runs tile by tile, each tile's window needing a shorter run.
     */
    /**
     * A region of {@code bytes} (more than half the device) that lies in the middle of the device,
     * with less than its length free on either side: it and a 2 MiB region (filled from {@code seed})
     * placed one after the other from the device's start by a launch that writes the first 2 MiB of
     * it (that region's longs plus one), then the 2 MiB region freed.
     */
    private static Region inTheMiddle(UnifiedMemory mem, TestDevice d, long bytes, long seed) {
        long frames = DEVICE / PAGE;
        Region first = mem.allocate(2 * MiB);
        Region middle = mem.allocate(bytes);
        fill(first, 0, 2 * MiB, seed);
        mem.launch(1, d.plainIncrementInto(), 2 * MiB / 8, KernelArg.read(first), KernelArg.write(middle));
        first.free();
        long at = d.driver().probeFrame(middle.address());
        assertTrue(at > 0 && at < bytes / PAGE && frames - (at + bytes / PAGE) < bytes / PAGE,
                "the region lies in the middle of the device, at frame " + at);
        return middle;
    }

    @Test
    void aPlainArgumentCutOffByTheLaunchsOwnPagesRunsTileByTile() {
        TestDevice d = MemoryFixture.device(DEVICE);
        try (UnifiedMemory mem = MemoryFixture.memory(d)) {
            long bytes = 1000 * PAGE;   // more than half the device, so that out's run can split it
            Region out = inTheMiddle(mem, d, bytes, 42);
            Region in = mem.allocate(bytes);
            fill(in, 0, bytes, 43);
            long outAt = d.driver().probeFrame(out.address());
            assertConsecutive(d, out, bytes);
            DeviceMemoryException e = assertThrows(DeviceMemoryException.class, () -> mem.launch(1, d.plainIncrementInto(),
                    bytes / 8, KernelArg.read(in), KernelArg.write(out)));
            assertTrue(e.getMessage().contains("consecutive free bytes for a plain argument")
                    && e.getMessage().contains("plain argument 0 touches (KernelArg.perItem"), e.getMessage());
            assertEquals(outAt, d.driver().probeFrame(out.address()), "out stayed");
            check(in, 0, bytes, 43);
            verified(mem);
            LaunchResult r = mem.launch(1, d.plainIncrementInto(), bytes / 8, KernelArg.read(in).perItem(8),
                    KernelArg.write(out).perItem(8));
            assertEquals(2 * bytes / PAGE, r.pagesTouched(), "every page of both: " + r);
            // tile by tile, each tile's window by the prefetch beside the tile before it or by the tile
            // itself: every page of in once (out is on the device already)
            assertEquals(bytes / PAGE, r.pagesMigrated(), "in came tile by tile, each page once: " + r);
            checkIncremented(out, bytes, 43);
            check(in, 0, bytes, 43);
            verified(mem);
        }
    }

    /**
     * A kernel item that launches a kernel on another device, where a plain argument finds no run,
     * and throws that failure: it is the kernel's, and the outer launch (which fits, and has a plain
     * windowed argument) must not take it for its own placement's and run again tile by tile, its
     * items a second time.
     */
    @Test
    @Tag("emulated") // only a Java kernel launches kernels
    void aFailureOfAKernelALaunchRunsIsNotTakenForItsOwnPlacement() {
        TestDevice d = MemoryFixture.device(DEVICE);
        TestDevice d2 = MemoryFixture.device(DEVICE);
        try (UnifiedMemory mem = MemoryFixture.memory(d, d2)) {
            long bytes = 1000 * PAGE;
            Region first = mem.allocate(2 * MiB);
            Region out = mem.allocate(bytes);
            Region in = mem.allocate(bytes);
            fill(in, 0, bytes, 45);
            mem.launch(2, d2.plainIncrementInto(), 2 * MiB / 8, KernelArg.read(first), KernelArg.write(out));
            first.free();   // out in the middle of device 2, as above: in finds no run beside it
            AtomicInteger firstItems = new AtomicInteger();
            EmulatedKernel outer = EmulatedKernel.plain((args, id) -> {
                if (id == 0) {
                    firstItems.incrementAndGet();   // a tiled retry would run its first item again (ids restart at 0)
                    try {
                        mem.launch(2, d2.plainIncrementInto(), bytes / 8, KernelArg.read(in), KernelArg.write(out));
                    } catch (DeviceMemoryException x) {
                        throw (RuntimeException) x.getCause();   // the placement's own exception, as a kernel may throw it
                    }
                }
            }, 0);
            // the outer launch reads another region with a window: cut into tiles on device 1 if it retried
            Region other = mem.allocate(bytes);
            RuntimeException e = assertThrows(RuntimeException.class,
                    () -> mem.launch(1, outer, bytes / 8, KernelArg.read(other).perItem(8)));
            assertTrue(String.valueOf(e.getMessage()).contains("consecutive free bytes for a plain argument"), e.toString());
            assertEquals(1, firstItems.get(), "item 0 ran once");
            check(in, 0, bytes, 45);
            verified(mem);
        }
    }

    /** A copy that fails while pages are gathered within the device loses nothing: the launch fails, the data stays. */
    @Test
    void aFailedCopyWithinTheDeviceLosesNothing() {
        TestDevice d = MemoryFixture.device(DEVICE);
        try (UnifiedMemory mem = MemoryFixture.memory(d)) {
            long bytes = 256 * PAGE;
            Region out = mem.allocate(bytes, PAGE);
            // out placed and written on the device first, so that gathering in is the launch's only copy
            mem.launch(1, d.plainIncrementInto(), bytes / 8, KernelArg.read(mem.allocate(bytes, PAGE)),
                    KernelArg.write(out));
            Region in = scatteredAndWrittenOnTheDevice(mem, d, bytes, 9, 2);
            d.failCopy(0);
            RuntimeException e = assertThrows(RuntimeException.class, () -> mem.launch(1, d.plainIncrementInto(),
                    bytes / 8, KernelArg.read(in), KernelArg.write(out)));
            d.failCopy(-1);
            if (d.driver().canCopyWithin()) {
                assertTrue(String.valueOf(e.getMessage()).contains("copy within"), "the copy within the device failed: " + e);
            }
            verified(mem);
            MemoryFixture.checkAdded(in, bytes, 9, 2);
            mem.launch(1, d.plainIncrementInto(), bytes / 8, KernelArg.read(in), KernelArg.write(out));
            assertConsecutive(d, in, bytes);
            MemoryFixture.checkAdded(out, bytes, 9, 3);
            verified(mem);
        }
    }

    /**
     * Gathering within the device needs the old frames and the new ones at once; where the device
     * cannot hold both, the pages go through the host as before (the old frames freed first).
     */
    @Test
    void aSpanThatCannotBeGatheredWithinTheDeviceGoesThroughTheHost() {
        TestDevice d = MemoryFixture.device(4 * MiB);
        try (UnifiedMemory mem = MemoryFixture.memory(d)) {
            long bytes = 384 * PAGE;   // in's old frames, its new ones and out's: 1152 frames of 1024
            Region in = mem.allocate(bytes, PAGE);
            Region out = mem.allocate(bytes, PAGE);
            fill(in, 0, bytes, 13);
            scatterInReverse(mem, in, bytes);
            mem.launch(1, d.plainIncrementInto(), bytes / 8, KernelArg.read(in), KernelArg.write(out));
            assertConsecutive(d, in, bytes);
            assertConsecutive(d, out, bytes);
            checkIncremented(out, bytes, 13);
            check(in, 0, bytes, 13);
            verified(mem);
        }
    }

    /** Whether r's pages [0, bytes) lie on node 1 in consecutive frames, in page order. */
    private static boolean consecutive(TestDevice d, Region r, long bytes) {
        long first = d.driver().probeFrame(r.address());
        for (long p = 1; p < bytes / PAGE; p++) {
            if (first < 0 || d.driver().probeFrame(r.address() + p * PAGE) != first + p) {
                return false;
            }
        }
        return first >= 0;
    }

    /**
     * On a device whose free frames are every other one, an ordinary prefetch lands apart, and a
     * launch that takes that range as a plain argument gathers it again; a plain prefetch places its
     * range as the launch takes it (a run made for it), and the launch then leaves it where it is.
     */
    @Test
    void aPlainPrefetchIsPlacedAsALaunchTakesItAndTheLaunchLeavesItThere() throws Exception {
        TestDevice d = MemoryFixture.device(4 * MiB);
        try (UnifiedMemory mem = MemoryFixture.memory(d)) {
            long half = 2 * MiB;
            Region kept = fragment(mem, half, 61);   // every other frame of the device
            long bytes = 64 * PAGE;
            Region apart = mem.allocate(bytes, PAGE);
            Region placed = mem.allocate(bytes, PAGE);
            Region out = mem.allocate(bytes, PAGE);
            fill(apart, 0, bytes, 62);
            fill(placed, 0, bytes, 63);
            assertEquals(bytes / PAGE, mem.prefetchAsync(apart, 0, bytes, 1).get(), "every page of apart moved");
            assertFalse(consecutive(d, apart, bytes), "an ordinary prefetch lands in free frames, apart");
            long apartAt = d.driver().probeFrame(apart.address());
            mem.launch(1, d.plainIncrementInto(), bytes / 8, KernelArg.read(apart), KernelArg.write(out));
            assertConsecutive(d, apart, bytes);
            assertNotEquals(apartAt, d.driver().probeFrame(apart.address()), "the launch gathered apart elsewhere");
            checkIncremented(out, bytes, 62);

            assertEquals(bytes / PAGE, mem.prefetchPlainAsync(placed, 0, bytes, 1).get(), "every page of placed moved");
            assertConsecutive(d, placed, bytes);
            long placedAt = d.driver().probeFrame(placed.address());
            mem.launch(1, d.plainIncrementInto(), bytes / 8, KernelArg.read(placed), KernelArg.write(out));
            assertEquals(placedAt, d.driver().probeFrame(placed.address()), "the launch found placed in place");
            assertConsecutive(d, placed, bytes);
            checkIncremented(out, bytes, 63);
            check(kept, 0, half, 61);
            verified(mem);
        }
    }

    /**
     * A plain prefetch whose run a running kernel's pages cut (they lie in the middle of the device,
     * less than the range free on either side) waits for that kernel, as a prefetch waits for room
     * pinned pages hold, rather than landing apart for the launch to move again; once the kernel
     * ends its pages make way and the range is placed in one run, every byte kept.
     */
    @Test
    @Tag("emulated") // a held kernel is an emulated one
    void aPlainPrefetchCutOffByARunningKernelWaitsForItAndIsThenPlaced() throws Exception {
        TestDevice d = MemoryFixture.device(DEVICE);
        try (UnifiedMemory mem = MemoryFixture.memory(d)) {
            long bytes = 1000 * PAGE;
            Region middle = inTheMiddle(mem, d, bytes, 71);
            Region in = mem.allocate(bytes);
            fill(in, 0, bytes, 72);
            HeldKernel kernel = new HeldKernel(mem, 1, KernelArg.read(middle));
            java.util.concurrent.CompletableFuture<Long> prefetched;
            try {
                assertTrue(kernel.awaitRunning(10), "the held kernel runs");
                prefetched = mem.prefetchPlainAsync(in, 0, bytes, 1);
                Thread.sleep(300);
                assertFalse(prefetched.isDone(), "the prefetch waits for the kernel: " + prefetched);
            } finally {
                kernel.release();
            }
            assertEquals(null, kernel.failure());
            assertEquals(bytes / PAGE, prefetched.get(10, TimeUnit.SECONDS), "every page of in moved");
            assertConsecutive(d, in, bytes);
            check(in, 0, bytes, 72);
            checkIncremented(middle, 2 * MiB, 71);
            verified(mem);
        }
    }

    @Test
    void aPlainPrefetchRefusesTheHostAndARangeLongerThanOnePointerSpans() {
        TestDevice d = MemoryFixture.device(4 * MiB);
        try (UnifiedMemory mem = MemoryFixture.memory(d)) {
            Region r = mem.allocate(4 * MiB + PAGE);
            IllegalArgumentException host = assertThrows(IllegalArgumentException.class,
                    () -> mem.prefetchPlainAsync(r, 0, PAGE, 0));
            assertEquals("a plain prefetch goes to a device: node 0 is outside [1, 1], the devices of this memory "
                    + "(node 0 is the host)", host.getMessage());
            IllegalArgumentException beyond = assertThrows(IllegalArgumentException.class,
                    () -> mem.prefetchPlainAsync(r, 0, PAGE, 2));
            assertEquals("a plain prefetch goes to a device: node 2 is outside [1, 1], the devices of this memory",
                    beyond.getMessage());
            IllegalArgumentException longer = assertThrows(IllegalArgumentException.class,
                    () -> mem.prefetchPlainAsync(r, 100, 4 * MiB, 1));
            long stretch = d.driver().contiguousFrames();
            assertTrue(longer.getMessage().contains("a plain prefetch of 4194304 bytes at offset 100 spans 1025 pages; "
                    + "one pointer spans at most " + stretch + " pages"), longer.getMessage());
            verified(mem);
        }
    }

    @Test
    void aPlainArgumentEvictedBetweenLaunchesComesBackPlaced() {
        TestDevice d = MemoryFixture.device(4 * MiB);
        try (UnifiedMemory mem = MemoryFixture.memory(d)) {
            long bytes = MiB;
            Region in = mem.allocate(bytes);
            Region out = mem.allocate(bytes);
            Region big = mem.allocate(3 * MiB);
            fill(in, 0, bytes, 21);
            mem.launch(1, d.plainIncrementInto(), bytes / 8, KernelArg.read(in), KernelArg.write(out));
            mem.launch(1, d.addLongs(3), 3 * MiB / 8, KernelArg.readWrite(big));   // needs in's and out's room
            assertTrue(mem.stats().node(1).evictions() > 0, "the second launch evicted");
            fill(in, 0, bytes, 22);   // host writes bring in home (what eviction left is gone now)
            mem.launch(1, d.plainIncrementInto(), bytes / 8, KernelArg.read(in), KernelArg.write(out));
            assertConsecutive(d, in, bytes);
            assertConsecutive(d, out, bytes);
            checkIncremented(out, bytes, 22);
            verified(mem);
        }
    }

    @Test
    void plainArgumentsThreeTimesTheDeviceRunTileByTile() {
        TestDevice d = MemoryFixture.device(4 * MiB);
        try (UnifiedMemory mem = MemoryFixture.memory(d)) {
            long bytes = 6 * MiB;
            Region in = mem.allocate(bytes);
            Region out = mem.allocate(bytes);
            fill(in, 0, bytes, 31);
            LaunchResult r = mem.launch(1, d.plainIncrementInto(), bytes / 8, KernelArg.read(in).perItem(8),
                    KernelArg.write(out).perItem(8));
            assertEquals(2 * bytes / PAGE, r.pagesTouched(), "every page of both: " + r);
            checkIncremented(out, bytes, 31);
            check(in, 0, bytes, 31);
            // the sums' windows, written, are evicted; the input's windows, read, dropped once their tile ran
            assertTrue(mem.stats().node(1).evictions() > 0 || mem.stats().node(1).pagesDroppedBehind() > 0,
                    "tiles went through a device a third of the data");
            verified(mem);
        }
    }

    @Test
    void aPlainArgumentBesideReadMostlyDuplicates() {
        TestDevice d = MemoryFixture.device(DEVICE);
        try (UnifiedMemory mem = MemoryFixture.memory(d)) {
            long bytes = MiB;
            Region in = mem.allocate(bytes);
            Region out = mem.allocate(bytes);
            fill(in, 0, bytes, 41);
            mem.advise(in, 0, bytes, new Advice.ReadMostly(true));
            mem.launch(1, d.plainIncrementInto(), bytes / 8, KernelArg.read(in), KernelArg.write(out));
            assertConsecutive(d, in, bytes);
            check(in, 0, bytes, 41);   // the host reads its own copy: the device keeps its duplicate
            assertTrue(in.snapshot(0, PAGE).residentOn(0, 1), "the device kept its read-only copy");
            mem.launch(1, d.plainIncrementInto(), bytes / 8, KernelArg.read(in), KernelArg.write(out));
            checkIncremented(out, bytes, 41);
            verified(mem);
        }
    }

    @Test
    void aPlainArgumentLargerThanTheDeviceWithNoWindowFailsAtOnceWithTheSizes() {
        TestDevice d = MemoryFixture.device(4 * MiB);
        try (UnifiedMemory mem = MemoryFixture.memory(d)) {
            Region in = mem.allocate(6 * MiB);
            Region out = mem.allocate(PAGE);
            DeviceMemoryException e = assertThrows(DeviceMemoryException.class,
                    () -> mem.launch(1, d.plainIncrementInto(), 1, KernelArg.read(in), KernelArg.write(out)));
            assertTrue(e.getMessage().contains("plain argument 0") && e.getMessage().contains("KernelArg.perItem")
                    && e.getMessage().contains(String.valueOf(6 * MiB)), e.getMessage());
            verified(mem);
        }
    }

    /**
     * A host view of pages the host holds a copy of does not need the device's copy: placement
     * drops the misplaced device copies without waiting for the view, even the caller's own.
     */
    @Test
    void aHostViewOfDuplicatedPagesDoesNotHoldUpPlacement() {
        TestDevice d = MemoryFixture.device(DEVICE);
        try (UnifiedMemory mem = MemoryFixture.memory(d)) {
            long bytes = 256 * PAGE;
            Region in = mem.allocate(bytes, PAGE);
            Region other = mem.allocate(bytes, PAGE);
            Region out = mem.allocate(bytes);
            fill(in, 0, bytes, 51);
            mem.advise(in, 0, bytes, new Advice.ReadMostly(true));
            for (long p = bytes / PAGE - 1; p >= 0; p--) {   // duplicates scattered among another region's pages
                mem.advise(in, p * PAGE, PAGE, new Advice.Prefetch(1));
                mem.advise(other, p * PAGE, PAGE, new Advice.Prefetch(1));
            }
            try (HostView v = in.host(0, bytes, Access.READ)) {
                mem.launch(1, d.plainIncrementInto(), bytes / 8, KernelArg.read(in), KernelArg.write(out));
                assertConsecutive(d, in, bytes);
                check(v.segment(), 0, 51);
            }
            checkIncremented(out, bytes, 51);
            verified(mem);
        }
    }

    /**
     * A tiled launch mixing a plain windowed argument with a page-table argument written once per
     * group of items ({@code perItems}): tiles never split a group, so each group's slot is written
     * by exactly one tile, at the right place (each tile sees ids from 0 and both windows from their
     * tile's start).
     */
    @Test
    @org.junit.jupiter.api.Tag("emulated")
    void tilesKeepGroupsWhole() {
        TestDevice d = MemoryFixture.device(4 * MiB);
        try (UnifiedMemory mem = MemoryFixture.memory(d)) {
            long longs = 12 * MiB / 8;
            int group = 96;   // neither a power of two nor a divisor of a page's longs
            long groups = longs / group;
            Region in = mem.allocate(groups * group * 8);
            Region sums = mem.allocate(groups * 8);
            fill(in, 0, in.size(), 61);
            dev.hetmem.device.emulated.EmulatedKernel k = dev.hetmem.device.emulated.EmulatedKernel.plain((a, i) -> {
                if (i % group == 0) {
                    long s = 0;
                    for (long j = i; j < i + group; j++) {
                        s += a.plain(0).get(ValueLayout.JAVA_LONG_UNALIGNED, 8 * j);
                    }
                    a.arg(1).putLong(8 * (i / group), s);
                }
            }, 0);
            mem.launch(1, k, groups * group, KernelArg.read(in).perItem(8), KernelArg.write(sums).perItems(group, 8, 8));
            try (HostView v = sums.host(0, sums.size(), Access.READ)) {
                for (long g = 0; g < groups; g++) {
                    long want = 0;
                    for (long j = g * group; j < (g + 1) * group; j++) {
                        want += value(61, j);
                    }
                    long got = v.segment().get(ValueLayout.JAVA_LONG, 8 * g);
                    if (got != want) {
                        assertEquals(want, got, "sum of group " + g);
                    }
                }
            }
            // the sums' windows, written, are evicted; the input's windows, read, dropped once their tile ran
            assertTrue(mem.stats().node(1).evictions() > 0 || mem.stats().node(1).pagesDroppedBehind() > 0,
                    "tiles went through a device a third of the data");
            verified(mem);
        }
    }

    /**
     * Three threads at once over one region: two launch plain kernels whose input spans overlap
     * (each placement moves pages the other placed, waiting for the other's pins), one launches a
     * translated kernel over the whole region; every result is checked, every round.
     */
    @Test
    void concurrentPlainLaunchesOverOverlappingSpans() throws Exception {
        TestDevice d = MemoryFixture.device(DEVICE);
        try (UnifiedMemory mem = MemoryFixture.memory(d)) {
            long bytes = MiB;
            Region in = mem.allocate(bytes, PAGE);
            fill(in, 0, bytes, 71);
            Region[] outs = {mem.allocate(bytes / 2), mem.allocate(bytes / 2), mem.allocate(bytes)};
            long[] from = {0, bytes / 4, 0};
            long[] len = {bytes / 2, bytes / 2, bytes};
            java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(3);
            try {
                java.util.List<java.util.concurrent.Future<?>> done = new java.util.ArrayList<>();
                for (int t = 0; t < 3; t++) {
                    int w = t;
                    done.add(pool.submit(() -> {
                        for (int round = 0; round < 15; round++) {
                            KernelArg src = KernelArg.of(in, from[w], len[w], Access.READ);
                            mem.launch(1, w < 2 ? d.plainIncrementInto() : d.incrementInto(), len[w] / 8, src,
                                    KernelArg.write(outs[w]));
                            try (HostView v = outs[w].host(0, len[w], Access.READ)) {
                                for (long i = 0; i < len[w] / 8; i++) {
                                    long want = value(71, from[w] / 8 + i) + 1;
                                    long got = v.segment().get(ValueLayout.JAVA_LONG, 8 * i);
                                    if (got != want) {
                                        assertEquals(want, got, "thread " + w + " round " + round + " long " + i);
                                    }
                                }
                            }
                        }
                        return null;
                    }));
                }
                for (java.util.concurrent.Future<?> f : done) {
                    f.get(120, java.util.concurrent.TimeUnit.SECONDS);
                }
            } finally {
                pool.shutdownNow();
            }
            check(in, 0, bytes, 71);
            verified(mem);
        }
    }
}
