package dev.hetmem;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static dev.hetmem.MemoryFixture.MiB;
import static dev.hetmem.MemoryFixture.PAGE;
import static dev.hetmem.MemoryFixture.check;
import static dev.hetmem.MemoryFixture.fill;
import static dev.hetmem.MemoryFixture.verified;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** KFD partial migration: a fault moves the granule around the address, not the range; regions hold mixed pages. */
class PartialMigrationTest {
    TestDevice dev;
    UnifiedMemory mem;

    @BeforeEach
    void setUp() {
        dev = MemoryFixture.device(64 * MiB);
        mem = MemoryFixture.memory(dev);
    }

    @AfterEach
    void tearDown() {
        verified(mem);
        mem.close();
    }

    @Test
    void aDeviceTouchOfOneAddressMigratesExactlyItsGranule() {
        Region r = mem.allocate(64 * MiB);
        fill(r, 0, 64 * MiB, 1);
        long addr = 37 * MiB + 12345;
        MemorySegment buf = Arena.ofAuto().allocate(PAGE);
        dev.read(mem, r, addr & ~(PAGE - 1), 1, buf);
        PageSnapshot s = r.snapshot(0, 64 * MiB);
        assertEquals(512, s.countOn(1), "exactly one 2 MiB granule moved");
        long granule = (addr / (2 * MiB)) * 512;
        for (int p = 0; p < s.pages(); p++) {
            boolean inGranule = p >= granule && p < granule + 512;
            assertEquals(inGranule ? 1 : 0, s.writer(p), "page " + p);
        }
        assertEquals(512 * PAGE, r.stats().node(1).bytesMigrated(Trigger.FAULT));
        check(r, 0, 64 * MiB, 1);
    }

    @Test
    void granularityIsSettablePerRegionAndPerRange() {
        Region r = mem.allocate(8 * MiB, 64 * 1024);
        assertEquals(64 * 1024, r.granularity(0));
        fill(r, 0, 8 * MiB, 2);
        MemorySegment buf = Arena.ofAuto().allocate(PAGE);
        dev.read(mem, r, 100 * PAGE, 1, buf);
        assertEquals(16, r.snapshot(0, 8 * MiB).countOn(1), "a 64 KiB granule is 16 pages");

        r.advise(4 * MiB, 2 * MiB, Advice.granularity(PAGE));
        assertEquals(PAGE, r.granularity(5 * MiB));
        assertEquals(64 * 1024, r.granularity(6 * MiB), "the attribute covers exactly the range given");
        dev.read(mem, r, 5 * MiB, 1, buf);
        assertEquals(17, r.snapshot(0, 8 * MiB).countOn(1), "a 4 KiB granule is one page");
        check(r, 0, 8 * MiB, 2);
    }

    @Test
    void aHostViewOfADevicePageBringsBackOnlyItsGranules() {
        Region r = mem.allocate(16 * MiB, 256 * 1024);
        fill(r, 0, 16 * MiB, 3);
        r.advise(0, 16 * MiB, Advice.prefetch(1));
        assertEquals(4096, r.snapshot(0, 16 * MiB).countOn(1));
        // a view crossing one granule boundary brings back two granules (128 pages)
        try (HostView v = r.host(256 * 1024 - 8, 16, Access.READ)) {
            MemoryFixture.check(v.segment(), 256 * 1024 - 8, 3);
        }
        PageSnapshot s = r.snapshot(0, 16 * MiB);
        assertEquals(128, s.countOn(0));
        assertEquals(4096 - 128, s.countOn(1));
        assertEquals(2, r.stats().node(0).faults() - 64, "two host faults after the 64 first-touch faults");
        verified(mem);
        check(r, 0, 16 * MiB, 3);
    }

    @Test
    void residentCountsAreKeptIncrementally() {
        Region r = mem.allocate(10 * MiB);
        fill(r, 0, 10 * MiB, 4);
        r.advise(2 * MiB, 4 * MiB, Advice.prefetch(1));
        Stats st = r.stats();
        assertEquals(6 * MiB, st.node(0).residentBytes());
        assertEquals(4 * MiB, st.node(1).residentBytes());
        assertEquals(10 * MiB, st.touchedBytes());
        assertTrue(st.metadataBytes() > 0);
    }

    @Test
    void pagesOfOneGranuleHeldByAViewStayWhileTheRestMoves() {
        Region r = mem.allocate(2 * MiB);
        fill(r, 0, 2 * MiB, 5);
        try (HostView v = r.host(0, PAGE, Access.READ_WRITE)) {
            MemorySegment buf = Arena.ofAuto().allocate(PAGE);
            dev.read(mem, r, PAGE, 1, buf);   // same granule as the open view
            MemoryFixture.check(buf, PAGE, 5);
            PageSnapshot s = r.snapshot(0, 2 * MiB);
            assertEquals("node 0 rw", s.describe(0), "the viewed page stayed home");
            assertEquals(511, s.countOn(1), "the rest of the granule moved");
            MemoryFixture.check(v.segment(), 0, 5);
        }
        check(r, 0, 2 * MiB, 5);
    }
}
