package dev.hetmem;

import dev.hetmem.device.emulated.EmulatedKernel;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static dev.hetmem.MemoryFixture.MiB;
import static dev.hetmem.MemoryFixture.PAGE;
import static dev.hetmem.MemoryFixture.check;
import static dev.hetmem.MemoryFixture.checkZero;
import static dev.hetmem.MemoryFixture.fill;
import static dev.hetmem.MemoryFixture.verified;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The behaviours of the Linux kernel's HMM self-tests (tools/testing/selftests/mm/hmm-tests.c)
 * that apply to hetmem, on every device kind (the dmirror of these tests); a test that ports one
 * kernel test has its name. More in {@link HmmPortsTest}; the README lists those that do not apply.
 */
class HmmSelfTest extends HmmFixture {

    @Test
    void deviceReadOfUntouchedMemorySeesZeros() {
        Region r = mem.allocate(4 * MiB);
        MemorySegment buf = arena.allocate(16 * PAGE);
        buf.fill((byte) 0x5A);
        LaunchResult res = dev.read(mem, r, 0, 16, buf);
        assertEquals(16, res.pagesTouched());
        assertEquals(1, res.faults(), "one 2 MiB granule faulted");
        checkZero(buf);
        PageSnapshot s = r.snapshot(0, 4 * MiB);
        for (int p = 0; p < 512; p++) {
            assertEquals(1 << 1, s.residentMask(p), "page " + p + " of the faulted granule is on the device");
            // zeros a read created are read-only, as the kernel's test device maps the zero page
            // (HMM_DMIRROR_PROT_ZERO): the first write takes write permission
            assertEquals(-1, s.writer(p));
        }
        for (int p = 512; p < 1024; p++) {
            assertTrue(s.untouched(p), "page " + p + " outside the granule stays untouched");
        }
    }

    @Test
    void anon_write() {
        Region r = mem.allocate(3 * MiB + 5);
        MemorySegment src = arena.allocate(64 * PAGE);
        fill(src, 0, 7);
        LaunchResult res = dev.write(mem, r, 0, 64, src);
        assertEquals(64, res.pagesTouched(), "cpages == npages");
        assertEquals(1, res.faultBatches(), "faults == 1: one pass for the whole buffer");
        check(r, 0, 64 * PAGE, 7);
        PageSnapshot s = r.snapshot(0, 64 * PAGE);
        assertEquals(64, s.countOn(0), "pages came home for the host view");
        assertEquals(0, s.countOn(1));
        assertEquals(1, r.stats().node(0).faults(), "one host fault brought the granule home");
    }

    @Test
    void anon_write_prot() {
        Region r = mem.allocate(4 * MiB);
        fill(r, 0, 4 * MiB, 3);
        r.protect(MiB, MiB, Protection.READ_ONLY);
        MemorySegment src = arena.allocate(4 * PAGE);
        src.fill((byte) 1);
        assertThrows(ProtectionException.class, () -> dev.write(mem, r, MiB, 4, src));
        assertThrows(ProtectionException.class, () -> r.host(MiB + 100, 10, Access.WRITE));
        assertThrows(ProtectionException.class, () -> r.host(0, 2 * MiB, Access.READ_WRITE));
        // a device read of the read-only range works and maps it read-only on the device
        MemorySegment buf = arena.allocate(4 * PAGE);
        dev.read(mem, r, MiB, 4, buf);
        check(buf, MiB, 3);
        verified(mem);
        // kernels that declared read access cannot write through it either
        var ex = assertThrows(RuntimeException.class, () -> mem.launch(1,
                dev.putLong(0, 42), 1, KernelArg.of(r, MiB, PAGE, Access.READ)));
        assertTrue(ex.getMessage().contains("read-only"), ex.getMessage());
        check(r, 0, 4 * MiB, 3);
        r.protect(MiB, MiB, Protection.READ_WRITE);
        dev.write(mem, r, MiB, 4, src);
        try (HostView v = r.host(MiB, 4 * PAGE, Access.READ)) {
            assertEquals((byte) 1, v.segment().get(ValueLayout.JAVA_BYTE, 4 * PAGE - 1));
        }
    }

    @Test
    void migrate() {
        Region r = mem.allocate(8 * MiB);
        fill(r, 0, 8 * MiB, 11);
        assertEquals(4, r.stats().node(0).faults(), "first touch of four granules populated them on the host");
        r.advise(0, 8 * MiB, Advice.prefetch(1));
        PageSnapshot s = r.snapshot(0, 8 * MiB);
        assertEquals(2048, s.countOn(1));
        assertEquals(0, s.countOn(0));
        assertEquals(2048, r.stats().node(1).pagesMigrated(Trigger.PREFETCH));
        verified(mem);
        check(r, 0, 8 * MiB, 11);
        assertEquals(2048, r.snapshot(0, 8 * MiB).countOn(0));
        assertEquals(2048, r.stats().node(0).pagesMigrated(Trigger.FAULT));
        assertEquals(8, r.stats().node(0).faults(), "four more host faults brought the 2 MiB granules home");
        assertEquals(0, r.stats().node(1).faults(), "prefetch is not a fault");
    }

    @Test
    void migrate_fault() {
        Region r = mem.allocate(8 * MiB);
        fill(r, 0, 8 * MiB, 5);
        r.advise(0, 8 * MiB, Advice.prefetch(1));
        check(r, 0, 4 * MiB, 5);   // first half back home
        PageSnapshot s = r.snapshot(0, 8 * MiB);
        assertEquals(1024, s.countOn(0));
        assertEquals(1024, s.countOn(1));
        verified(mem);
        r.advise(0, 8 * MiB, Advice.prefetch(1));
        assertEquals(2048, r.snapshot(0, 8 * MiB).countOn(1));
        verified(mem);
        check(r, 0, 8 * MiB, 5);
    }

    @Test
    void migrate_release() {
        Region a = mem.allocate(6 * MiB);
        Region b = mem.allocate(2 * MiB);
        fill(a, 0, 6 * MiB, 1);
        fill(b, 0, 2 * MiB, 2);
        a.advise(0, 6 * MiB, Advice.prefetch(1));
        b.advise(0, 2 * MiB, Advice.prefetch(1));
        long freeBefore = mem.stats().node(1).freeBytes();
        assertEquals(64 * MiB - 8 * MiB, freeBefore);
        long moved = mem.release(1);
        assertEquals(2048, moved);
        assertEquals(64 * MiB, mem.stats().node(1).freeBytes(), "every device frame is free after release");
        assertEquals(0, a.snapshot(0, 6 * MiB).countOn(1));
        assertEquals(2048, mem.stats().node(0).pagesMigrated(Trigger.RELEASE));
        verified(mem);
        check(a, 0, 6 * MiB, 1);
        check(b, 0, 2 * MiB, 2);
    }

    @Test
    void migrate_multiple() {
        Region r = mem.allocate(4 * MiB + 3 * PAGE);
        long size = r.size();
        fill(r, 0, size, 9);
        for (int round = 0; round < 10; round++) {
            r.advise(0, size, Advice.prefetch(1));
            assertEquals(r.snapshot(0, size).pages(), r.snapshot(0, size).countOn(1), "round " + round);
            verified(mem);
            try (HostView v = r.host(0, size, Access.READ_WRITE)) {
                MemoryFixture.check(v.segment(), 0, 9 + round);
                MemoryFixture.fill(v.segment(), 0, 10 + round);
            }
        }
        check(r, 0, size, 19);
    }

    @Test
    void double_map() {
        TestDevice d1 = MemoryFixture.device(16 * MiB);
        TestDevice d2 = MemoryFixture.device(16 * MiB);
        try (UnifiedMemory m2 = MemoryFixture.memory(d1, d2)) {
            Region r = m2.allocate(2 * MiB);
            fill(r, 0, 2 * MiB, 21);
            r.advise(0, 2 * MiB, Advice.prefetch(1));
            assertEquals(512, r.snapshot(0, 2 * MiB).countOn(1));
            // device 2 reads a page held by device 1: it migrates over
            MemorySegment buf = Arena.ofAuto().allocate(PAGE * 512);
            d2.read(m2, r, 0, 512, buf);
            check(buf, 0, 21);
            PageSnapshot s = r.snapshot(0, 2 * MiB);
            assertEquals(512, s.countOn(2));
            assertEquals(0, s.countOn(1));
            assertEquals(16 * MiB, m2.stats().node(1).freeBytes(), "device 1 gave its frames back");
            verified(m2);
            // device 1 reads it back, then device 2 again: both see the data
            MemorySegment buf1 = Arena.ofAuto().allocate(PAGE * 512);
            d1.read(m2, r, 0, 512, buf1);
            check(buf1, 0, 21);
            buf.fill((byte) 0);
            d2.read(m2, r, 0, 512, buf);
            check(buf, 0, 21);
            verified(m2);
            check(r, 0, 2 * MiB, 21);
        }
    }

    @Test
    @Tag("emulated") // the kernel waits on a latch in the JVM, which only a Java kernel can
    void regionFreedWhileAKernelReadsItWaitsForTheKernel() throws Exception {
        Region r = mem.allocate(2 * MiB);
        fill(r, 0, 2 * MiB, 4);
        CountDownLatch started = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        long[] sum = new long[1];
        ExecutorService ex = Executors.newSingleThreadExecutor();
        try {
            Future<LaunchResult> kernel = ex.submit(() -> mem.launch(1, (EmulatedKernel) (a, i) -> {
                started.countDown();
                try {
                    release.await();
                } catch (InterruptedException e) {
                    throw new IllegalStateException(e);
                }
                long s = 0;
                for (long o = 0; o < 2 * MiB; o += 8) {
                    s += a.arg(0).getLong(o);
                }
                sum[0] = s;
            }, 1, KernelArg.read(r)));
            assertTrue(started.await(10, TimeUnit.SECONDS));
            Future<?> freeing = Executors.newVirtualThreadPerTaskExecutor().submit(() -> r.free());
            Thread.sleep(100);
            assertFalse(freeing.isDone(), "free waits while the kernel runs");
            release.countDown();
            kernel.get(10, TimeUnit.SECONDS);
            freeing.get(10, TimeUnit.SECONDS);
            long want = 0;
            for (long i = 0; i < 2 * MiB / 8; i++) {
                want += MemoryFixture.value(4, i);
            }
            assertEquals(want, sum[0], "the kernel read correct data");
            assertTrue(r.isFreed());
            assertThrows(IllegalStateException.class, () -> r.host(0, 8, Access.READ));
            assertThrows(IllegalStateException.class, () -> dev.read(mem, r, 0, 1, arena.allocate(PAGE)));
            assertEquals(64 * MiB, mem.stats().node(1).freeBytes(), "the freed region's frames are back");
        } finally {
            ex.shutdownNow();
        }
    }

    @Test
    void freeClosesTheCallersOwnViewsAsArenaCloseDoes() {
        Region r = mem.allocate(MiB);
        HostView v = r.host(0, PAGE, Access.READ_WRITE);
        v.segment().set(ValueLayout.JAVA_LONG, 0, 5);
        r.free();
        assertThrows(IllegalStateException.class, () -> v.segment().get(ValueLayout.JAVA_LONG, 0),
                "a view closed by free cannot reach memory");
        v.close();   // closing it again does nothing
    }

    @Test
    void snapshot() {
        Region r = mem.allocate(6 * MiB, 2 * MiB);
        fill(r, 0, 2 * MiB, 1);                          // granule 0: host rw
        dev.write(mem, r, 2 * MiB, 1, arena.allocate(PAGE));  // granule 1: device rw
        PageSnapshot s = r.snapshot(0, 6 * MiB);
        assertEquals("node 0 rw", s.describe(0));
        assertEquals("node 1 rw", s.describe(512));
        assertEquals("untouched", s.describe(1024));     // granule 2: never touched
        assertEquals(-1, s.writer(1024));
        assertEquals(0, s.offset());
        r.protect(0, PAGE, Protection.READ_ONLY);
        r.free(4 * MiB, 2 * MiB);                        // granule 2, freed: the kernel reports an error there
        PageSnapshot after = r.snapshot(0, 6 * MiB);
        assertEquals("node 0 ro", after.describe(0), "protected: read-only");
        assertEquals("node 0 rw", after.describe(1));
        assertEquals("freed", after.describe(1024));
        assertTrue(after.freed(1024) && !after.freed(1023));
    }

    @Test
    void allocationFailureInjectedMidMigrationLosesNothing() {
        Region r = mem.allocate(16 * MiB);
        fill(r, 0, 16 * MiB, 8);
        long free = mem.stats().node(1).freeBytes();
        for (int after : new int[] {0, 1, 3, 7}) {
            dev.failAllocation(after);
            assertThrows(RuntimeException.class, () -> r.advise(0, 16 * MiB, Advice.prefetch(1)), "fail after " + after);
            dev.failAllocation(-1);
            assertEquals(free, mem.stats().node(1).freeBytes(), "no frame leaked (failure after " + after + ")");
            assertEquals(4096, r.snapshot(0, 16 * MiB).countOn(0), "every page still home");
            verified(mem);
            check(r, 0, 16 * MiB, 8);
        }
    }

    @Test
    void copyFailureFromTheDeviceRestoresTheDeviceMappings() {
        Region r = mem.allocate(8 * MiB);
        fill(r, 0, 8 * MiB, 12);
        r.advise(0, 8 * MiB, Advice.prefetch(1));
        long free = mem.stats().node(1).freeBytes();
        for (int after : new int[] {0, 2, 5}) {
            dev.failCopy(after);
            assertThrows(RuntimeException.class, () -> r.host(0, 8 * MiB, Access.READ));
            dev.failCopy(-1);
            assertEquals(2048, r.snapshot(0, 8 * MiB).countOn(1));
            assertEquals(free, mem.stats().node(1).freeBytes());
            verified(mem);
        }
        // the device still reads the right data through its restored mappings
        MemorySegment buf = arena.allocate(8 * MiB);
        dev.read(mem, r, 0, 2048, buf);
        check(buf, 0, 12);
        check(r, 0, 8 * MiB, 12);
    }

    /**
     * A launch the device refuses (out of resources, injected) fails with DeviceMemoryException
     * naming it, its output untouched and its pages' state consistent; the next launch runs. On
     * OpenCL the injection came with this test (the stress program injects it there too now).
     */
    @Test
    void aLaunchTheDeviceRefusesLeavesEverythingAsItWas() {
        Region in = mem.allocate(2 * MiB);
        Region out = mem.allocate(2 * MiB);
        fill(in, 0, 2 * MiB, 14);
        fill(out, 0, 2 * MiB, 15);
        dev.failExecute(0);
        MemoryFixture.names(dev.hetmem.driver.DeviceMemoryException.class, "injected launch failure",
                () -> mem.launch(1, dev.incrementInto(), 2 * MiB / 8, KernelArg.read(in), KernelArg.write(out)));
        verified(mem);
        check(out, 0, 2 * MiB, 15);
        mem.launch(1, dev.incrementInto(), 2 * MiB / 8, KernelArg.read(in), KernelArg.write(out));
        verified(mem);
        try (HostView v = out.host(0, 2 * MiB, Access.READ)) {
            for (long i = 0; i < 2 * MiB / 8; i += 4099) {
                assertEquals(MemoryFixture.value(14, i) + 1, v.segment().getAtIndex(ValueLayout.JAVA_LONG, i), "long " + i);
            }
        }
    }
}
