package dev.hetmem;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.ValueLayout;


import static dev.hetmem.MemoryFixture.MiB;
import static dev.hetmem.MemoryFixture.PAGE;
import static dev.hetmem.MemoryFixture.verified;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Kernels on the device under test, through its page table. */
class KernelTest {
    TestDevice dev;
    UnifiedMemory mem;

    @BeforeEach
    void setUp() {
        dev = MemoryFixture.device(32 * MiB);
        mem = MemoryFixture.memory(dev);
    }

    @AfterEach
    void tearDown() {
        verified(mem);
        mem.close();
    }

    @Test
    void vectorAddAcrossWorkItemsWithNoCopyWrittenByTheUser() {
        int n = 1 << 20;
        Region a = mem.allocate(4L * n);
        Region b = mem.allocate(4L * n);
        Region c = mem.allocate(4L * n);
        try (HostView va = a.host(0, a.size(), Access.WRITE); HostView vb = b.host(0, b.size(), Access.WRITE)) {
            for (int i = 0; i < n; i++) {
                va.segment().setAtIndex(ValueLayout.JAVA_FLOAT, i, i);
                vb.segment().setAtIndex(ValueLayout.JAVA_FLOAT, i, 2f * i);
            }
        }
        LaunchResult res = mem.launch(1, dev.addFloats(), n, KernelArg.read(a), KernelArg.read(b), KernelArg.write(c));
        assertEquals(3L * n / 1024, res.pagesTouched());
        assertEquals(6, res.faults(), "two granules per 4 MiB argument");
        assertEquals(2L * n / 1024, res.pagesMigrated(), "a and b moved; c was populated on the device");
        try (HostView vc = c.host(0, c.size(), Access.READ)) {
            for (int i = 0; i < n; i++) {
                assertEquals(3f * i, vc.segment().getAtIndex(ValueLayout.JAVA_FLOAT, i), "element " + i);
            }
        }
        assertEquals(6, mem.stats().node(1).faults());
    }

    /**
     * A launch over several regions counts each region's faults in that region's statistics (and
     * the sum in the memory's): they were all credited to the first argument's region, the others
     * reading none (from a review).
     */
    @Test
    void eachRegionOfALaunchCountsItsOwnFaults() {
        int n = 1 << 20;
        Region a = mem.allocate(4L * n);
        Region b = mem.allocate(4L * n);
        Region c = mem.allocate(4L * n);
        mem.launch(1, dev.addFloats(), n, KernelArg.read(a), KernelArg.read(b), KernelArg.write(c));
        for (Region r : new Region[] {a, b, c}) {
            assertEquals(2, r.stats().node(1).faults(), "two granules of " + r);
            assertEquals(1, r.stats().node(1).faultBatches(), "one batch brought in " + r);
        }
        assertEquals(6, mem.stats().node(1).faults());
        assertEquals(1, mem.stats().node(1).faultBatches(), "one batch in all");
    }

    @Test
    void aKernelTouchingOutsideItsArgumentGetsADeviceFaultAndChangesNothing() {
        Region r = mem.allocate(4 * MiB);
        MemoryFixture.fill(r, 0, 4 * MiB, 6);
        // the same type on every driver, naming the argument
        var e = assertThrows(dev.hetmem.driver.DeviceFaultException.class, () -> mem.launch(1,
                dev.putLong(PAGE, 1), 1, KernelArg.of(r, 0, PAGE, Access.WRITE)));
        assertTrue(e.getMessage().contains("outside its argument"), e.getMessage());
        MemoryFixture.check(r, 0, 4 * MiB, 6);
    }

    @Test
    void aLaunchOnPagesThisThreadHoldsInAViewFailsInsteadOfDeadlocking() {
        Region r = mem.allocate(2 * MiB);
        try (HostView v = r.host(0, PAGE, Access.READ)) {
            assertThrows(PinnedByCallerException.class, () -> mem.launch(1,
                    dev.noop(), 1, KernelArg.of(r, 0, PAGE, Access.READ)));
        }
        mem.launch(1, dev.noop(), 1, KernelArg.of(r, 0, PAGE, Access.READ));
    }

    @Test
    void aBatchIsInvalidatedOnceOnTheDevice() {
        Region r = mem.allocate(16 * MiB);
        r.advise(0, 16 * MiB, Advice.prefetch(1));
        long before = dev.invalidations();
        try (HostView v = r.host(0, 16 * MiB, Access.READ)) {
            assertEquals(16 * MiB, v.length());
        }
        assertEquals(before + 1, dev.invalidations(), "one coalesced TLB invalidation for 4096 pages");
    }

    @Test
    void aliasedArgumentsOfOneRegionArePlannedOnce() {
        Region r = mem.allocate(2 * MiB);
        MemoryFixture.fill(r, 0, 2 * MiB, 8);
        LaunchResult res = mem.launch(1, dev.incrementInto(),
                (2 * MiB) / 8, KernelArg.of(r, 0, 2 * MiB, Access.READ), KernelArg.of(r, 0, 2 * MiB, Access.WRITE));
        assertEquals(512, res.pagesMigrated());
        try (HostView v = r.host(0, 2 * MiB, Access.READ)) {
            for (long i = 0; i < 2 * MiB / 8; i++) {
                assertEquals(MemoryFixture.value(8, i) + 1, v.segment().getAtIndex(ValueLayout.JAVA_LONG, i));
            }
        }
    }

    @Test
    void overlappingReadAndWriteArgumentsGetWriteAccessWhereAnyWrites() {
        Region r = mem.allocate(4 * MiB, PAGE);   // 4 KiB granules: every page planned on its own
        MemoryFixture.fill(r, 0, 4 * MiB, 9);
        // arg 0 reads pages [0, 6), arg 1 writes [2, 4), arg 2 reads [3, 9): writes must reach pages 2 and 3
        LaunchResult res = mem.launch(1, dev.threeArguments(), 1, KernelArg.of(r, 0, 6 * PAGE, Access.READ), KernelArg.of(r, 2 * PAGE, 2 * PAGE, Access.WRITE),
                KernelArg.of(r, 3 * PAGE, 6 * PAGE, Access.READ));
        assertEquals(9, res.pagesMigrated(), "pages 0..8 moved once each");
        assertEquals(6 + 2 + 6, res.pagesTouched());
        PageSnapshot s = r.snapshot(0, 10 * PAGE);
        for (int p = 0; p < 9; p++) {
            assertEquals("node 1 rw", s.describe(p), "page " + p);
        }
        assertEquals("node 0 rw", s.describe(9));
        try (HostView v = r.host(0, 10 * PAGE, Access.READ)) {
            assertEquals(MemoryFixture.value(9, 2 * PAGE / 8) + 1, v.segment().get(ValueLayout.JAVA_LONG, 2 * PAGE));
            assertEquals(MemoryFixture.value(9, 3 * PAGE / 8) + 2, v.segment().get(ValueLayout.JAVA_LONG, 3 * PAGE));
            assertEquals(MemoryFixture.value(9, 5 * PAGE / 8), v.segment().get(ValueLayout.JAVA_LONG, 5 * PAGE));
        }
    }

    @Test
    void aScatterPrefetchMovesExactlyTheListedPagesInOneBatch() {
        Region r = mem.allocate(8 * MiB, PAGE);
        MemoryFixture.fill(r, 0, 8 * MiB, 10);
        long[] offsets = new long[512];
        for (int i = 0; i < offsets.length; i++) {
            offsets[i] = 2L * i * PAGE;    // every other page: nothing merges
        }
        long before = dev.invalidations();
        assertEquals(512, mem.prefetch(r, offsets, PAGE, 1));
        PageSnapshot s = r.snapshot(0, 8 * MiB);
        for (int p = 0; p < 1024; p++) {
            assertEquals(p % 2 == 0 ? 1 : 0, s.writer(p), "page " + p);
        }
        assertEquals(512, mem.prefetch(r, offsets, PAGE, 0));
        assertEquals(before + 1, dev.invalidations(), "the way back invalidated the device TLB once for 512 pages");
        MemoryFixture.check(r, 0, 8 * MiB, 10);
    }
}
