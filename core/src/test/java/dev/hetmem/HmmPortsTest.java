package dev.hetmem;

import dev.hetmem.internal.Pins;
import dev.hetmem.internal.RangeAttributes;
import dev.hetmem.internal.RegionState;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

import static dev.hetmem.MemoryFixture.MiB;
import static dev.hetmem.MemoryFixture.PAGE;
import static dev.hetmem.MemoryFixture.check;
import static dev.hetmem.MemoryFixture.checkZero;
import static dev.hetmem.MemoryFixture.fill;
import static dev.hetmem.MemoryFixture.names;
import static dev.hetmem.MemoryFixture.verified;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Ports of the Linux kernel's HMM self-tests ({@code tools/testing/selftests/mm/hmm-tests.c}), one
 * method per kernel test, named as the kernel names it; the rest of the ported tests are in
 * {@link HmmSelfTest}. Runs on every device kind (the OpenCL suite runs it again on OpenCL).
 * Where the kernel checks {@code cpages} and {@code faults}, these check the pages touched and
 * the fault batches of {@link LaunchResult}: the kernel's test device counts one fault for a
 * whole-buffer access, and so does hetmem's batch count.
 */
class HmmPortsTest extends HmmFixture {

    @Test
    void open_close() {
        mem.close();
        mem = null;
        TestDevice again = MemoryFixture.device(8 * MiB);
        try (UnifiedMemory m = MemoryFixture.memory(again)) {
            assertEquals(2, m.nodes().size());
            verified(m);
        }
    }

    /** Data everywhere but the first two pages (read once, so zeros), made read-only; the device reads it all. */
    @Test
    void anon_read() {
        Region r = mem.allocate(4 * MiB);
        fill(r, 2 * PAGE, 4 * MiB - 2 * PAGE, 31);
        try (HostView v = r.host(0, 2 * PAGE, Access.READ)) {
            checkZero(v.segment());
        }
        r.protect(0, 4 * MiB, Protection.READ_ONLY);
        MemorySegment buf = arena.allocate(4 * MiB);
        LaunchResult res = dev.read(mem, r, 0, 1024, buf);
        assertEquals(1024, res.pagesTouched(), "cpages == npages");
        assertEquals(1, res.faultBatches(), "faults == 1: one pass for the whole buffer");
        assertEquals(2, res.faults(), "two 2 MiB granules in that pass");
        checkZero(buf.asSlice(0, 2 * PAGE));
        check(buf.asSlice(2 * PAGE), 2 * PAGE, 31);
    }

    /**
     * Ten rounds of host write, device read. The kernel counts one fault per read; here a round
     * takes one fault batch at most: once thrashing control holds the bouncing block home, the
     * device reads the host's copy in place and needs no fault at all.
     */
    @Test
    void anon_read_multiple() {
        Region r = mem.allocate(4 * MiB);
        long batches = 0;
        for (int c = 0; c < 10; c++) {
            fill(r, 0, 4 * MiB, 100 + c);
            MemorySegment buf = arena.allocate(4 * MiB);
            LaunchResult res = dev.read(mem, r, 0, 1024, buf);
            assertEquals(1024, res.pagesTouched());
            assertTrue(res.faultBatches() <= 1, "round " + c + ": " + res);
            if (c == 0) {
                assertEquals(1, res.faultBatches(), "the first read faults both granules in one pass");
            }
            batches += res.faultBatches();
            check(buf, 0, 100 + c);
        }
        assertEquals(batches, r.stats().node(1).faultBatches(), "the region's stats count the launches' batches");
        assertTrue(r.stats().node(1).faults() >= 2 * batches, "two granules a batch");
    }

    /**
     * A thread frees the second half while the device reads the whole: either the read ran first
     * (free waited for it, the data is right) or the free did (the read is refused, naming the
     * freed bytes). Never a crash, a hang, a wrong value or a lost frame.
     */
    @Test
    void anon_teardown() throws Exception {
        for (int c = 0; c < Integer.getInteger("hetmem.test.teardownRounds", 10); c++) {
            Region r = mem.allocate(4 * MiB);
            fill(r, 0, 4 * MiB, 200 + c);
            MemorySegment buf = arena.allocate(4 * MiB);
            CompletableFuture<Void> unmap = CompletableFuture.runAsync(() -> {
                sleepMicros(ThreadLocalRandom.current().nextInt(32));
                r.free(2 * MiB, 2 * MiB);
            });
            try {
                dev.read(mem, r, 0, 1024, buf);
                check(buf, 0, 200 + c);
            } catch (IllegalStateException refused) {
                assertTrue(refused.getMessage().contains("freed"), refused.getMessage());
            }
            unmap.get(30, TimeUnit.SECONDS);
            check(r, 0, 2 * MiB, 200 + c);
            assertTrue(r.snapshot(2 * MiB, 2 * MiB).freed(0));
            verified(mem);
            r.free();
        }
    }

    private static void sleepMicros(int us) {
        long end = System.nanoTime() + us * 1000L;
        while (System.nanoTime() < end) {
            Thread.onSpinWait();
        }
    }

    /**
     * Six pages at 4 KiB granularity: page 1 freed (a migration over it fails and moves nothing),
     * page 2 read as zeros, page 3 written then made read-only, pages 4 and 5 written: pages 2 to
     * 5 migrate, each with its permission.
     */
    @Test
    void migrate_mixed() {
        Region r = mem.allocate(6 * PAGE, PAGE);
        r.free(PAGE, PAGE);
        names(IllegalStateException.class, "freed", () -> r.advise(0, 3 * PAGE, Advice.prefetch(1)));
        names(IllegalStateException.class, "[4096, 8192)", () -> mem.prefetch(r, new long[] {0}, 3 * PAGE, 1));
        assertEquals(0, r.snapshot(0, 6 * PAGE).countOn(1), "nothing moved");
        try (HostView v = r.host(2 * PAGE, PAGE, Access.READ)) {
            checkZero(v.segment());
        }
        fill(r, 3 * PAGE, 3 * PAGE, 41);
        r.protect(3 * PAGE, PAGE, Protection.READ_ONLY);
        r.advise(2 * PAGE, 4 * PAGE, Advice.prefetch(1));
        PageSnapshot s = r.snapshot(0, 6 * PAGE);
        assertEquals(4, s.countOn(1), s.toString());
        assertEquals(-1, s.writer(3), "the read-only page is read-only on the device");
        assertEquals(1, s.writer(4));
        assertTrue(s.freed(1));
        assertEquals("freed", s.describe(1));
        MemorySegment buf = arena.allocate(3 * PAGE);
        dev.read(mem, r, 3 * PAGE, 3, buf);
        check(buf, 3 * PAGE, 41);
    }

    /** The kernel's snapshot of a munmapped page is an error; hetmem's says "freed". */
    @Test
    void snapshot_of_a_freed_page() {
        Region r = mem.allocate(4 * MiB);
        fill(r, 0, 4 * MiB, 5);
        r.free(2 * MiB, 2 * MiB);
        PageSnapshot s = r.snapshot(0, 4 * MiB);
        assertEquals("node 0 rw", s.describe(0));
        assertEquals("freed", s.describe(512));
        assertTrue(s.toString().contains("pages 512-1023 freed"), s.toString());
    }

    /**
     * The kernel's {@code exclusive}: the device takes the pages for its atomics (cpages ==
     * npages, the data intact); the CPU's touch revokes that.
     */
    @Test
    void exclusive() {
        int ints = (int) (4 * MiB / 4);
        Region r = mem.allocate(4 * MiB);
        fillInts(r, i -> i);
        mem.launch(1, dev.atomicCount(ints), ints, KernelArg.of(r, 0, r.size(), Access.EXCLUSIVE));
        assertTrue(r.isExclusive(0, r.size(), 1), "the launch left every page exclusive to device 1");
        PageSnapshot s = r.snapshot(0, r.size());
        if (mem.driver(1).canMapHost()) {
            assertEquals(1024, s.countOn(0), "a device that maps host memory keeps the pages home: " + s);
        } else {
            assertEquals(1024, s.countOn(1), "other devices hold them alone: " + s);
        }
        verified(mem);
        try (HostView v = r.host(0, r.size(), Access.READ_WRITE)) {
            assertFalse(r.isExclusive(0, PAGE, 1), "the host's touch revoked exclusivity");
            for (int i = 0; i < ints; i++) {
                int got = v.segment().getAtIndex(ValueLayout.JAVA_INT, i);
                if (got != i + 1) {
                    assertEquals(i + 1, got, "int " + i);
                }
                v.segment().setAtIndex(ValueLayout.JAVA_INT, i, got + 1);
            }
        }
        assertEquals(1024, r.snapshot(0, r.size()).countOn(0));
        MemorySegment buf = arena.allocate(8 * PAGE);
        dev.read(mem, r, 0, 8, buf);
        assertEquals(2, buf.getAtIndex(ValueLayout.JAVA_INT, 0));
        assertEquals(8 * 1024 + 1, buf.getAtIndex(ValueLayout.JAVA_INT, 8 * 1024 - 1));
    }

    /** The kernel's {@code exclusive_mprotect}: read-only after exclusive, the device's next write fails. */
    @Test
    void exclusive_mprotect() {
        int ints = (int) (2 * MiB / 4);
        Region r = mem.allocate(2 * MiB);
        fillInts(r, i -> i);
        mem.launch(1, dev.atomicCount(ints), ints, KernelArg.of(r, 0, r.size(), Access.EXCLUSIVE));
        assertTrue(r.isExclusive(0, r.size(), 1));
        r.protect(0, r.size(), Protection.READ_ONLY);
        assertFalse(r.isExclusive(0, r.size(), 1), "read-only ends device-exclusive access");
        assertThrows(ProtectionException.class,
                () -> mem.launch(1, dev.atomicCount(ints), ints, KernelArg.of(r, 0, r.size(), Access.EXCLUSIVE)));
        assertThrows(ProtectionException.class,
                () -> mem.launch(1, dev.addLongs(1), 8, KernelArg.of(r, 0, r.size(), Access.WRITE)));
        verified(mem);
        try (HostView v = r.host(0, r.size(), Access.READ)) {
            for (int i = 0; i < ints; i += 4099) {
                assertEquals(i + 1, v.segment().getAtIndex(ValueLayout.JAVA_INT, i));
            }
        }
    }

    /**
     * Device atomics on an exclusive argument against host threads that only read: each reader
     * sees every counter only grow, never past its final value; the counters end exact.
     */
    @Test
    @org.junit.jupiter.api.Timeout(120)
    void exclusive_atomics_against_concurrent_host_readers() throws Exception {
        int slots = 1024;
        int perLaunch = 64;
        int launches = 6;
        Region r = mem.allocate(slots * 4L);
        AtomicBoolean done = new AtomicBoolean();
        AtomicReference<String> wrong = new AtomicReference<>();
        List<Thread> readers = new ArrayList<>();
        for (int t = 0; t < 2; t++) {
            readers.add(Thread.ofPlatform().start(() -> {
                int[] last = new int[slots];
                while (!done.get() && wrong.get() == null) {
                    try (HostView v = r.host(0, slots * 4L, Access.READ)) {
                        for (int i = 0; i < slots; i++) {
                            int got = v.segment().getAtIndex(ValueLayout.JAVA_INT, i);
                            if (got < last[i] || got > launches * perLaunch || got % perLaunch != 0) {
                                wrong.compareAndSet(null, "slot " + i + " read " + got + " after " + last[i]);
                            }
                            last[i] = got;
                        }
                    }
                    // pins are not fair: readers that reopen at once could keep the launch waiting for ever
                    java.util.concurrent.locks.LockSupport.parkNanos(200_000);
                }
            }));
        }
        try {
            for (int l = 0; l < launches; l++) {
                mem.launch(1, dev.atomicCount(slots), (long) slots * perLaunch,
                        KernelArg.of(r, 0, r.size(), Access.EXCLUSIVE));
            }
        } finally {
            done.set(true);
            for (Thread t : readers) {
                t.join(30_000);
            }
        }
        assertEquals(null, wrong.get());
        try (HostView v = r.host(0, slots * 4L, Access.READ)) {
            for (int i = 0; i < slots; i++) {
                assertEquals(launches * perLaunch, v.segment().getAtIndex(ValueLayout.JAVA_INT, i), "slot " + i);
            }
        }
    }

    @Test
    void exclusive_is_ended_by_another_device() {
        TestDevice d2 = withSecondDevice();
        Region r = mem.allocate(2 * MiB);
        fillInts(r, i -> 0);
        mem.launch(1, dev.atomicCount(512), 512, KernelArg.of(r, 0, r.size(), Access.EXCLUSIVE));
        assertTrue(r.isExclusive(0, r.size(), 1));
        MemorySegment buf = arena.allocate(PAGE);
        d2.read(mem, r, 0, 1, buf);
        assertFalse(r.isExclusive(0, PAGE, 1), "device 2 reached the page: device 1 holds it alone no more");
        assertEquals(1, buf.getAtIndex(ValueLayout.JAVA_INT, 0));
        names(IllegalArgumentException.class, "EXCLUSIVE", () -> r.host(0, 8, Access.EXCLUSIVE));
    }

    /**
     * The kernel's {@code migrate_partial_unmap_fault}: a range on the device, half of it freed at
     * offset 0, a quarter and a half; the rest faults back right, the freed part is refused.
     */
    @Test
    void migrate_partial_unmap_fault() {
        long size = 2 * MiB;
        for (long granule : new long[] {64 * 1024, PAGE}) {
            for (long offset : new long[] {0, size / 4, size / 2}) {
                Region r = mem.allocate(size, granule);
                fill(r, 0, size, offset + granule);
                r.advise(0, size, Advice.prefetch(1));
                assertEquals(512, r.snapshot(0, size).countOn(1));
                long deviceFree = mem.stats().node(1).freeBytes();
                r.free(offset, size / 2);
                assertEquals(deviceFree + size / 2, mem.stats().node(1).freeBytes(), "the freed half's device frames went");
                for (long p = 0; p < size; p += PAGE) {
                    if (p < offset || p >= offset + size / 2) {
                        check(r, p, PAGE, offset + granule);
                    }
                }
                names(IllegalStateException.class, "freed", () -> r.host(offset, PAGE, Access.READ));
                names(IllegalStateException.class, "freed", () -> mem.launch(1, dev.noop(), 1, KernelArg.read(r)));
                long before = mem.stats().node(1).freeBytes();
                r.free(offset, size / 2);   // again: nothing left to drop
                assertEquals(before, mem.stats().node(1).freeBytes());
                names(IllegalStateException.class, "freed", () -> r.protect(offset, PAGE, Protection.READ_ONLY));
                verified(mem);
                r.free();
            }
        }
    }

    /** A free whose edge would split the granule of a page beside it is refused, naming that granule. */
    @Test
    void partial_free_refuses_to_split_a_neighbours_granule() {
        Region r = mem.allocate(4 * MiB, 64 * 1024);
        r.advise(0, MiB, Advice.granularity(2 * MiB));   // the page at 0 moves with [0, 2 MiB)
        names(IllegalArgumentException.class, "2097152-byte granule of the page at 1044480", () -> r.free(MiB, MiB));
        names(IllegalArgumentException.class, "65536-byte granule", () -> r.free(2 * MiB + PAGE, 64 * 1024));
        r.free(2 * MiB, MiB);
        fill(r, 0, 2 * MiB, 4);
        r.advise(0, PAGE, Advice.prefetch(1));   // the granule of page 0 is whole: nothing freed in it
        assertEquals(256, r.snapshot(0, MiB).countOn(1));
        check(r, 0, 2 * MiB, 4);
    }

    /** Freeing part of a region whose pages are spread over two devices, with a host view open elsewhere. */
    @Test
    void partial_free_across_two_devices_beside_an_open_view() {
        TestDevice d2 = withSecondDevice();
        Region r = mem.allocate(8 * MiB);
        fill(r, 0, 8 * MiB, 77);
        r.advise(2 * MiB, 2 * MiB, Advice.prefetch(1));
        r.advise(4 * MiB, 2 * MiB, Advice.prefetch(2));
        try (HostView open = r.host(0, 2 * MiB, Access.READ_WRITE)) {
            names(IllegalStateException.class, "host view", () -> r.free(0, 4 * MiB));
            r.free(2 * MiB, 4 * MiB);
            check(open.segment(), 0, 77);
            names(IllegalArgumentException.class, "2097152-byte granule", () -> r.free(6 * MiB + PAGE, PAGE));
        }
        assertEquals(16 * MiB, mem.stats().node(2).freeBytes(), "device 2's frames of the freed range went");
        assertEquals(64 * MiB, mem.stats().node(1).freeBytes(), "device 1's too");
        check(r, 0, 2 * MiB, 77);
        check(r, 6 * MiB, 2 * MiB, 77);
        mem.launch(2, d2.noop(), 1, KernelArg.of(r, 6 * MiB, 2 * MiB, Access.READ));
        verified(mem);
    }

    /**
     * A host view another thread opens while a partial free begins (after the free's check for
     * views, before the range is marked freed: the window is made here by marking the range as
     * the free does and then running its drop) is not waited for: the drop comes back at once
     * with that view, the pages it covers keep their host copy (the device's duplicates go), every
     * other page of the range is dropped (on the device and at home), and a free of the range
     * after the view closes drops the rest.
     */
    @Test
    void partial_free_spares_a_view_opened_as_it_began() throws Exception {
        Region r = mem.allocate(8 * MiB);
        fill(r, 0, 8 * MiB, 91);
        r.advise(4 * MiB, 2 * MiB, Advice.readMostly(true));   // the viewed part: on the device and at home
        r.advise(2 * MiB, 4 * MiB, Advice.prefetch(1));        // [6, 8) MiB stays at home
        long deviceFree = mem.stats().node(1).freeBytes();
        CountDownLatch opened = new CountDownLatch(1);
        CountDownLatch closeIt = new CountDownLatch(1);
        // threads of their own: the common pool may have a single worker on a small machine
        java.util.concurrent.ExecutorService threads = java.util.concurrent.Executors.newFixedThreadPool(2);
        try {
            CompletableFuture<Long> viewer = CompletableFuture.supplyAsync(() -> {
                try (HostView v = r.host(4 * MiB, 2 * MiB, Access.READ)) {
                    opened.countDown();
                    closeIt.await();
                    check(v.segment(), 4 * MiB, 91);   // still the data it saw: the host's copy under it stayed
                    return v.segment().get(ValueLayout.JAVA_LONG, 8);
                } catch (InterruptedException e) {
                    throw new IllegalStateException(e);
                }
            }, threads);
            assertTrue(opened.await(10, TimeUnit.SECONDS));
            RegionState s = r.state();
            long from = 2 * MiB / PAGE;
            long to = 8 * MiB / PAGE;
            s.attributes().update(from, to, RangeAttributes.Attrs::asFreed);
            Pins.Pin spared = CompletableFuture
                    .supplyAsync(() -> mem.engine().discardUnlessViewed(s, from, to, Long.MAX_VALUE), threads)
                    .get(10, TimeUnit.SECONDS);   // waiting for the view instead would time out here
            assertEquals(4 * MiB / PAGE, spared.from(), "the view that was spared");
            assertEquals(512, r.snapshot(4 * MiB, 2 * MiB).countOn(0), "the view's pages stay at home");
            assertEquals(0, r.snapshot(6 * MiB, 2 * MiB).countOn(0), "the unviewed pages at home went");
            assertEquals(deviceFree + 4 * MiB, mem.stats().node(1).freeBytes(),
                    "the device's copies went, the unviewed part's and the viewed part's duplicates alike");
            verified(mem);   // no device holds a freed page, the view still open
            names(IllegalStateException.class, "freed", () -> r.host(2 * MiB, PAGE, Access.READ).close());
            closeIt.countDown();
            viewer.get(10, TimeUnit.SECONDS);
        } finally {
            closeIt.countDown();
            threads.shutdownNow();
        }
        r.free(2 * MiB, 6 * MiB);   // again, after the view closed: drops what the view covered
        assertEquals(0, r.snapshot(4 * MiB, 2 * MiB).countOn(0), "the viewed pages went too");
        names(IllegalStateException.class, "freed", () -> r.host(4 * MiB, PAGE, Access.READ).close());
        check(r, 0, 2 * MiB, 91);
        verified(mem);
    }

    /** The kernel's {@code migrate_anon_huge_empty}: an untouched 2 MiB range migrates as zeros. */
    @Test
    void migrate_anon_huge_empty() {
        Region r = mem.allocate(2 * MiB);
        r.advise(0, 2 * MiB, Advice.prefetch(1));
        assertEquals(512, r.snapshot(0, 2 * MiB).countOn(1));
        zerosOnTheDeviceAndAtHome(r);
    }

    /** The device reads the 2 MiB region as zeros, and so does the host after it. */
    private void zerosOnTheDeviceAndAtHome(Region r) {
        MemorySegment buf = arena.allocate(2 * MiB);
        buf.fill((byte) 0xFF);
        dev.read(mem, r, 0, 512, buf);
        checkZero(buf);
        try (HostView v = r.host(0, 2 * MiB, Access.READ)) {
            checkZero(v.segment());
        }
    }

    /** The kernel's {@code migrate_anon_huge_zero}: read as zeros first, then migrated; still zeros everywhere. */
    @Test
    void migrate_anon_huge_zero() {
        Region r = mem.allocate(2 * MiB);
        try (HostView v = r.host(0, 8, Access.READ)) {
            assertEquals(0, v.segment().get(ValueLayout.JAVA_LONG, 0));
        }
        r.advise(0, 2 * MiB, Advice.prefetch(1));
        zerosOnTheDeviceAndAtHome(r);
    }

    /** The kernel's {@code migrate_anon_huge_free}: MADV_FREE of a device-resident range (DONT_NEED here). */
    @Test
    void migrate_anon_huge_free() {
        Region r = mem.allocate(2 * MiB);
        fill(r, 0, 2 * MiB, 3);
        r.advise(0, 2 * MiB, Advice.prefetch(1));
        long free = mem.stats().node(1).freeBytes();
        r.advise(0, 2 * MiB, Advice.dontNeed());
        assertEquals(free + 2 * MiB, mem.stats().node(1).freeBytes());
        try (HostView v = r.host(0, 2 * MiB, Access.READ)) {
            checkZero(v.segment());
        }
    }

    /** The kernel's {@code migrate_anon_huge_fault}: a 2 MiB granule on the device, all of it, then faulted back. */
    @Test
    void migrate_anon_huge_fault() {
        Region r = mem.allocate(2 * MiB);
        fill(r, 0, 2 * MiB, 4);
        r.advise(0, 2 * MiB, Advice.prefetch(1));
        PageSnapshot s = r.snapshot(0, 2 * MiB);
        for (int p = 0; p < 512; p++) {
            assertEquals("node 1 rw", s.describe(p));
        }
        long batches = r.stats().node(0).faultBatches();
        check(r, 0, 2 * MiB, 4);
        assertEquals(batches + 1, r.stats().node(0).faultBatches(), "one host fault batch brought the granule back");
    }

    /**
     * The kernel's {@code migrate_anon_huge_err}: the device cannot back a 2 MiB run; the move
     * happens in smaller runs, in both directions, and a single page reads right after each.
     */
    @Test
    void migrate_anon_huge_err() {
        Region r = mem.allocate(2 * MiB);
        fill(r, 0, 2 * MiB, 6);
        dev.failRunsOfAtLeast(16);
        try {
            r.advise(0, 2 * MiB, Advice.prefetch(1));
            assertEquals(512, r.snapshot(0, 2 * MiB).countOn(1));
            verified(mem);
            check(r, 2048 * 4, 8, 6);   // the kernel reads int 2048
            r.advise(0, 2 * MiB, Advice.prefetch(1));
            assertEquals(512, r.snapshot(0, 2 * MiB).countOn(1), "migrated again in small runs");
            mem.release(1);   // to the host while large runs are still refused
            assertEquals(0, r.snapshot(0, 2 * MiB).countOn(1));
            check(r, 0, 2 * MiB, 6);
        } finally {
            dev.failRunsOfAtLeast(0);
        }
    }

    /** {@code migrate_anon_huge_err} between two devices: each refuses large runs when it is the target. */
    @Test
    void migrate_anon_huge_err_between_devices() {
        TestDevice d2 = withSecondDevice();
        Region r = mem.allocate(2 * MiB);
        fill(r, 0, 2 * MiB, 8);
        r.advise(0, 2 * MiB, Advice.prefetch(1));
        d2.failRunsOfAtLeast(16);
        dev.failRunsOfAtLeast(16);
        try {
            r.advise(0, 2 * MiB, Advice.prefetch(2));
            assertEquals(512, r.snapshot(0, 2 * MiB).countOn(2));
            verified(mem);
            r.advise(0, 2 * MiB, Advice.prefetch(1));
            assertEquals(512, r.snapshot(0, 2 * MiB).countOn(1));
            verified(mem);
            check(r, 0, 2 * MiB, 8);
        } finally {
            d2.failRunsOfAtLeast(0);
            dev.failRunsOfAtLeast(0);
        }
    }

    /** The kernel's {@code migrate_anon_huge_zero_err}: the same with zeros. */
    @Test
    void migrate_anon_huge_zero_err() {
        Region r = mem.allocate(2 * MiB);
        dev.failRunsOfAtLeast(16);
        try {
            r.advise(0, 2 * MiB, Advice.prefetch(1));
            assertEquals(512, r.snapshot(0, 2 * MiB).countOn(1));
            try (HostView v = r.host(2048 * 4, 4, Access.READ)) {
                assertEquals(0, v.segment().get(ValueLayout.JAVA_INT, 0));
            }
            r.advise(0, 2 * MiB, Advice.prefetch(1));
            try (HostView v = r.host(0, 2 * MiB, Access.READ)) {
                checkZero(v.segment());
            }
        } finally {
            dev.failRunsOfAtLeast(0);
        }
    }

    private static void fillInts(Region r, java.util.function.IntUnaryOperator value) {
        try (HostView v = r.host(0, r.size(), Access.WRITE)) {
            for (int i = 0; i < r.size() / 4; i++) {
                v.segment().setAtIndex(ValueLayout.JAVA_INT, i, value.applyAsInt(i));
            }
        }
    }
}
