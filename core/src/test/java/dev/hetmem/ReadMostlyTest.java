package dev.hetmem;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static dev.hetmem.MemoryFixture.MiB;
import static dev.hetmem.MemoryFixture.PAGE;
import static dev.hetmem.MemoryFixture.verified;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** READ_MOSTLY: reads make read-only copies on several nodes, a write collapses them to the writer. */
class ReadMostlyTest {
    TestDevice d1;
    TestDevice d2;
    UnifiedMemory mem;

    @BeforeEach
    void setUp() {
        d1 = MemoryFixture.device(16 * MiB);
        d2 = MemoryFixture.device(16 * MiB);
        mem = MemoryFixture.memory(d1, d2);
    }

    @AfterEach
    void tearDown() {
        verified(mem);
        mem.close();
    }

    @Test
    void readsDuplicateAndAWriteCollapsesTheCopies() {
        Region r = mem.allocate(2 * MiB);
        MemoryFixture.fill(r, 0, 2 * MiB, 3);
        r.advise(0, 2 * MiB, Advice.readMostly(true));
        MemorySegment buf = Arena.ofAuto().allocate(2 * MiB);
        d1.read(mem, r, 0, 512, buf);
        MemoryFixture.check(buf, 0, 3);
        assertEquals("nodes 0,1 ro", r.snapshot(0, PAGE).describe(0));
        verified(mem);
        d2.read(mem, r, 0, 512, buf);
        MemoryFixture.check(buf, 0, 3);
        assertEquals("nodes 0,1,2 ro", r.snapshot(0, PAGE).describe(0));
        assertEquals(2 * MiB, r.stats().node(1).residentBytes());
        assertEquals(2 * MiB, r.stats().node(2).residentBytes());
        verified(mem);   // both device page tables map the page read-only
        // a read-only copy cannot be written through: the kernel declared READ, and the entry is read-only
        assertThrows(RuntimeException.class, () -> mem.launch(1, d1.putLong(0, 1), 1,
                KernelArg.of(r, 0, 8, Access.READ)));
        // a write from device 1 collapses every copy to device 1
        mem.launch(1, d1.putLong(0, 42), 1, KernelArg.of(r, 0, 8, Access.WRITE));
        PageSnapshot s = r.snapshot(0, 2 * MiB);
        assertEquals("node 1 rw", s.describe(0));
        assertEquals("nodes 0,1,2 ro", s.describe(1), "only the written page collapses");
        assertEquals(16 * MiB - 511 * PAGE, mem.stats().node(2).freeBytes(), "device 2 dropped its copy of page 0");
        verified(mem);
        // reading on the host makes a host copy again; device 1 keeps its copy, read-only now
        try (HostView v = r.host(0, 16, Access.READ)) {
            assertEquals(42, v.segment().get(java.lang.foreign.ValueLayout.JAVA_LONG, 0));
        }
        assertEquals("nodes 0,1 ro", r.snapshot(0, PAGE).describe(0));
        verified(mem);
        MemoryFixture.check(r, 4096, 2 * MiB - 4096, 3);
        // a host write collapses to the host
        try (HostView v = r.host(0, 8, Access.WRITE)) {
            v.segment().set(java.lang.foreign.ValueLayout.JAVA_LONG, 0, 7);
        }
        assertEquals("node 0 rw", r.snapshot(0, PAGE).describe(0));
    }

    @Test
    void withoutTheAdviceReadsMove() {
        Region r = mem.allocate(2 * MiB);
        MemoryFixture.fill(r, 0, 2 * MiB, 4);
        MemorySegment buf = Arena.ofAuto().allocate(PAGE);
        d1.read(mem, r, 0, 1, buf);
        d2.read(mem, r, 0, 1, buf);
        assertEquals("node 2 rw", r.snapshot(0, PAGE).describe(0));
    }

    @Test
    void theAdviceCoversExactlyItsRange() {
        Region r = mem.allocate(4 * MiB, PAGE);
        MemoryFixture.fill(r, 0, 4 * MiB, 5);
        r.advise(MiB, MiB, Advice.readMostly(true));
        MemorySegment buf = Arena.ofAuto().allocate(4 * MiB);
        d1.read(mem, r, 0, 1024, buf);                     // 4 MiB: pages 0..1023
        PageSnapshot s = r.snapshot(0, 4 * MiB);
        for (int p = 0; p < 1024; p++) {
            boolean duplicated = p >= 256 && p < 512;
            assertEquals(duplicated ? "nodes 0,1 ro" : "node 1 rw", s.describe(p), "page " + p);
        }
        MemoryFixture.check(buf, 0, 5);
    }

    @Test
    @Tag("emulated") // the peer path between two emulated devices
    void deviceToDeviceMigrationTakesThePeerPathWithoutTouchingTheHost() {
        Region r = mem.allocate(4 * MiB);
        MemoryFixture.fill(r, 0, 4 * MiB, 6);
        r.advise(0, 4 * MiB, Advice.prefetch(1));
        var peer = ((EmulatedTestDevice) d2).device;
        long before = peer.peerCopiedPages();
        r.advise(0, 4 * MiB, Advice.prefetch(2));
        assertEquals(before + 1024, peer.peerCopiedPages(), "every page went device to device");
        assertEquals(1024, r.snapshot(0, 4 * MiB).countOn(2));
        assertEquals(16 * MiB, mem.stats().node(1).freeBytes());
        verified(mem);
        // a peer copy that fails is undone: the pages stay on device 2, intact
        d1.failCopy(0);
        assertThrows(RuntimeException.class, () -> r.advise(0, 4 * MiB, Advice.prefetch(1)));
        d1.failCopy(-1);
        assertEquals(1024, r.snapshot(0, 4 * MiB).countOn(2));
        assertEquals(16 * MiB, mem.stats().node(1).freeBytes(), "no frame leaked on device 1");
        verified(mem);
        MemoryFixture.check(r, 0, 4 * MiB, 6);
    }

    /**
     * A device full of read-only duplicates under an open host view, and a prefetch that needs
     * room there: the duplicates are dropped (the view reads the host's copy), not kept whole
     * because a pin touches their block. Eviction used to keep every run that any pin covered,
     * so the prefetch waited for the view (its own thread's: for itself) for a minute and then
     * failed saying the device was pinned by running kernels.
     */
    @Test
    void duplicatesUnderAHostViewAreDroppedToMakeRoom() {
        Region r = mem.allocate(16 * MiB);
        MemoryFixture.fill(r, 0, 16 * MiB, 5);
        r.advise(0, 16 * MiB, Advice.readMostly(true));
        Region other = mem.allocate(4 * MiB);
        MemoryFixture.fill(other, 0, 4 * MiB, 6);
        try (HostView v = r.host(0, 16 * MiB, Access.READ)) {
            mem.prefetch(r, new long[] {0}, 16 * MiB, 1);
            assertEquals(16 * MiB, r.stats().node(1).residentBytes(), "device 1 is full of duplicates");
            long t0 = System.nanoTime();
            mem.prefetch(other, new long[] {0}, 4 * MiB, 1);
            assertEquals(4 * MiB, other.stats().node(1).residentBytes());
            org.junit.jupiter.api.Assertions.assertTrue(r.stats().node(1).residentBytes() <= 12 * MiB,
                    "duplicates dropped for the room: " + r.stats().node(1).residentBytes());
            org.junit.jupiter.api.Assertions.assertTrue(System.nanoTime() - t0 < 30_000_000_000L, "no wait for the view");
            MemoryFixture.check(v.segment(), 0, 5);
        }
        MemoryFixture.check(r, 0, 16 * MiB, 5);
        MemoryFixture.check(other, 0, 4 * MiB, 6);
    }

    /**
     * Device 1 full of pages its own kernel pins and of read-only duplicates that only a kernel
     * on device 2 pins: a prefetch to device 1 drops its duplicates for the room (device 2's
     * kernel reads its own copy). Eviction kept them for any device's pin, so the prefetch waited
     * a minute for device 2's kernel and then failed saying device 1 was pinned.
     */
    @Test
    @Tag("emulated") // HeldKernel: an emulated kernel that holds its arguments pinned
    void duplicatesAKernelOfAnotherDevicePinsAreDroppedToMakeRoom() throws Exception {
        Region r = mem.allocate(4 * MiB);
        MemoryFixture.fill(r, 0, 4 * MiB, 7);
        r.advise(0, 4 * MiB, Advice.readMostly(true));
        Region filler = mem.allocate(12 * MiB);
        Region other = mem.allocate(4 * MiB);
        MemoryFixture.fill(other, 0, 4 * MiB, 8);
        r.advise(0, 4 * MiB, Advice.prefetch(1));
        HeldKernel onOne = new HeldKernel(mem, 1, KernelArg.of(filler, 0, 12 * MiB, Access.READ_WRITE));
        HeldKernel onTwo = new HeldKernel(mem, 2, KernelArg.of(r, 0, 4 * MiB, Access.READ));
        try {
            org.junit.jupiter.api.Assertions.assertTrue(onOne.awaitRunning(10) && onTwo.awaitRunning(10));
            assertEquals("nodes 0,1,2 ro", r.snapshot(0, PAGE).describe(0));
            long t0 = System.nanoTime();
            var f = java.util.concurrent.CompletableFuture.supplyAsync(() -> mem.prefetch(other, new long[] {0}, 4 * MiB, 1));
            assertEquals(1024L, f.get(30, java.util.concurrent.TimeUnit.SECONDS));
            org.junit.jupiter.api.Assertions.assertTrue(System.nanoTime() - t0 < 20_000_000_000L, "no wait for device 2's kernel");
            PageSnapshot snap = r.snapshot(0, 4 * MiB);
            assertEquals(0, snap.countOn(1), "device 1's duplicates dropped");
            assertEquals(1024, snap.countOn(2), "device 2's kept under its kernel");
            assertEquals(1024, snap.countOn(0));
        } finally {
            onOne.release();
            onTwo.release();
        }
        assertEquals(null, onOne.failure());
        assertEquals(null, onTwo.failure());
        MemoryFixture.check(r, 0, 4 * MiB, 7);
        MemoryFixture.check(other, 0, 4 * MiB, 8);
    }

    /**
     * A page only devices hold, read-only on two of them: evicting it from one drops that copy and
     * leaves the other's, with or without a kernel of the other device pinning it. Eviction moved
     * it home, which took the other device's copy too (and, under that device's kernel, kept it
     * on both and waited).
     */
    @Test
    @Tag("emulated") // HeldKernel: an emulated kernel that holds its arguments pinned
    void evictingADuplicateOnlyDevicesHoldLeavesTheOtherDevicesCopy() throws Exception {
        Region r = onDevicesOnly(9);
        Region big = mem.allocate(16 * MiB);
        HeldKernel onTwo = new HeldKernel(mem, 2, KernelArg.of(r, 0, 2 * MiB, Access.READ));
        try {
            org.junit.jupiter.api.Assertions.assertTrue(onTwo.awaitRunning(10));
            var f = java.util.concurrent.CompletableFuture.supplyAsync(() -> mem.prefetch(big, new long[] {0}, 16 * MiB, 1));
            f.get(30, java.util.concurrent.TimeUnit.SECONDS);
            PageSnapshot snap = r.snapshot(0, 4 * MiB);
            assertEquals(0, snap.countOn(1), "device 1's copies made room");
            assertEquals(1024, snap.countOn(2), "device 2 kept every copy, pinned or not");
            assertEquals(0, snap.countOn(0), "nothing went home");
        } finally {
            onTwo.release();
        }
        assertEquals(null, onTwo.failure());
        MemoryFixture.check(r, 0, 4 * MiB, 9);
    }

    /**
     * A release drops a device's read-only duplicates: of pages the host holds too (the move home
     * planned nothing for them, and their frames stayed), and of pages another device holds too,
     * without taking that device's copies or waiting for its kernel (a move home took them and waited).
     * From a review of the prefetch paths.
     */
    @Test
    @Tag("emulated") // HeldKernel: an emulated kernel that holds its arguments pinned
    void aReleaseDropsTheDevicesDuplicatesAndLeavesOtherDevicesCopies() throws Exception {
        Region withHost = mem.allocate(4 * MiB);
        MemoryFixture.fill(withHost, 0, 4 * MiB, 10);
        withHost.advise(0, 4 * MiB, Advice.readMostly(true));
        withHost.advise(0, 4 * MiB, Advice.prefetch(1));
        assertEquals("nodes 0,1 ro", withHost.snapshot(0, PAGE).describe(0));
        Region devicesOnly = onDevicesOnly(11);
        HeldKernel onTwo = new HeldKernel(mem, 2, KernelArg.of(devicesOnly, 0, 2 * MiB, Access.READ));
        try {
            org.junit.jupiter.api.Assertions.assertTrue(onTwo.awaitRunning(10));
            var released = java.util.concurrent.CompletableFuture.supplyAsync(() -> mem.release(1));
            assertEquals(0L, released.get(30, java.util.concurrent.TimeUnit.SECONDS), "no page's data had to move home");
            assertEquals(0, withHost.snapshot(0, 4 * MiB).countOn(1), "the duplicates of host pages dropped");
            assertEquals(1024, withHost.snapshot(0, 4 * MiB).countOn(0));
            PageSnapshot two = devicesOnly.snapshot(0, 4 * MiB);
            assertEquals(0, two.countOn(1), "device 1's copies dropped");
            assertEquals(1024, two.countOn(2), "device 2 kept every copy, pinned or not");
            assertEquals(mem.nodes().get(1).capacityBytes(), mem.stats().node(1).freeBytes(), "device 1 holds nothing");
        } finally {
            onTwo.release();
        }
        assertEquals(null, onTwo.failure());
        MemoryFixture.check(withHost, 0, 4 * MiB, 10);
        MemoryFixture.check(devicesOnly, 0, 4 * MiB, 11);
    }

    /**
     * A release visits only the blocks with pages on the device: it swept every region whole and
     * made a page-table block for every 2 MiB it locked (an untouched 64 GiB region gained 32,768,
     * kept for good). From a review of the prefetch paths.
     */
    @Test
    void aReleaseLeavesUntouchedMemoryWithoutTables() {
        Region untouched = mem.allocate(64L << 30);
        Region used = mem.allocate(4 * MiB);
        MemoryFixture.fill(used, 0, 4 * MiB, 12);
        used.advise(0, 4 * MiB, Advice.prefetch(1));
        long before = mem.stats().metadataBytes();
        assertEquals(1024L, mem.release(1));
        long after = mem.stats().metadataBytes();
        org.junit.jupiter.api.Assertions.assertTrue(after <= before, "no tables made for " + untouched + ": " + before + " bytes, then " + after);
        assertEquals(1024, used.snapshot(0, 4 * MiB).countOn(0));
        MemoryFixture.check(used, 0, 4 * MiB, 12);
    }

    /**
     * As above with a kernel of the releasing device too: its copies stay where that kernel pins them,
     * and the release waits for neither kernel (it planned a move home of those pages, waited for
     * both and took device 2's copies). A release after the kernels end takes the rest.
     */
    @Test
    @Tag("emulated") // HeldKernel: an emulated kernel that holds its arguments pinned
    void aReleaseLeavesTheDuplicatesItsOwnKernelPinsAndWaitsForNoKernel() throws Exception {
        Region r = onDevicesOnly(13);
        HeldKernel onOne = new HeldKernel(mem, 1, KernelArg.of(r, 0, 2 * MiB, Access.READ));
        HeldKernel onTwo = new HeldKernel(mem, 2, KernelArg.of(r, 0, 2 * MiB, Access.READ));
        try {
            org.junit.jupiter.api.Assertions.assertTrue(onOne.awaitRunning(10) && onTwo.awaitRunning(10));
            var released = java.util.concurrent.CompletableFuture.supplyAsync(() -> mem.release(1));
            assertEquals(0L, released.get(30, java.util.concurrent.TimeUnit.SECONDS));
            PageSnapshot s = r.snapshot(0, 4 * MiB);
            assertEquals(512, s.countOn(1), "the half device 1's kernel pins stays");
            assertEquals(1024, s.countOn(2), "device 2 kept every copy");
        } finally {
            onOne.release();
            onTwo.release();
        }
        assertEquals(null, onOne.failure());
        assertEquals(null, onTwo.failure());
        assertEquals(0L, mem.release(1));
        assertEquals(0, r.snapshot(0, 4 * MiB).countOn(1));
        MemoryFixture.check(r, 0, 4 * MiB, 13);
    }

    /** 4 MiB filled with pattern {@code seed}, held read-only by devices 1 and 2 only, the host holding no copy. */
    private Region onDevicesOnly(long seed) {
        Region r = mem.allocate(4 * MiB);
        MemoryFixture.fill(r, 0, 4 * MiB, seed);
        r.advise(0, 4 * MiB, Advice.prefetch(1));           // moved: the host holds no copy
        r.advise(0, 4 * MiB, Advice.readMostly(true));
        r.advise(0, 4 * MiB, Advice.prefetch(2));           // duplicated from device 1
        assertEquals("nodes 1,2 ro", r.snapshot(0, PAGE).describe(0));
        return r;
    }
}
