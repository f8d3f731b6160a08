package dev.hetmem;

import org.junit.jupiter.api.Test;

import static dev.hetmem.MemoryFixture.MiB;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** What a user of the API sees: readable values, regions as resources, views of no bytes. */
class ErgonomicsTest {
    /**
     * hetmem's own failures share one supertype, on every driver: a write to protected memory, a
     * device that cannot give frames, an injected copy failure, a kernel's illegal access.
     */
    @Test
    void hetmemsOwnFailuresShareOneSupertype() {
        TestDevice dev = MemoryFixture.device(8 * MiB);
        try (UnifiedMemory mem = MemoryFixture.memory(dev)) {
            Region r = mem.allocate(4 * MiB);
            MemoryFixture.fill(r, 0, 4 * MiB, 1);
            r.protect(0, MiB, Protection.READ_ONLY);
            HetmemException protection = assertThrows(HetmemException.class, () -> r.host(0, 8, Access.WRITE));
            assertTrue(protection instanceof ProtectionException, protection.toString());
            r.protect(0, MiB, Protection.READ_WRITE);
            dev.failAllocation(0);
            HetmemException room = assertThrows(HetmemException.class, () -> r.advise(0, 4 * MiB, Advice.prefetch(1)));
            dev.failAllocation(-1);
            assertTrue(room instanceof dev.hetmem.driver.DeviceMemoryException, room.toString());
            dev.failCopy(0);
            HetmemException copy = assertThrows(HetmemException.class, () -> r.advise(0, 4 * MiB, Advice.prefetch(1)));
            dev.failCopy(-1);
            assertTrue(copy.getMessage().contains("injected"), copy.getMessage());
            HetmemException fault = assertThrows(HetmemException.class,
                    () -> mem.launch(1, dev.putLong(MiB, 1), 1, KernelArg.of(r, 0, 4096, Access.WRITE)));
            assertTrue(fault instanceof dev.hetmem.driver.DeviceFaultException, fault.toString());
            MemoryFixture.check(r, 0, 4 * MiB, 1);
            MemoryFixture.verified(mem);
        }
    }

    @Test
    void snapshotsAndStatisticsPrintAsPeopleReadThem() {
        TestDevice d = MemoryFixture.device(8 * MiB);
        try (UnifiedMemory mem = MemoryFixture.memory(d)) {
            Region r = mem.allocate(4 * MiB);
            mem.launch(1, d.putLong(0, 7), 1, KernelArg.of(r, 0, 3 * 4096, Access.READ_WRITE));
            String snapshot = r.snapshot(0, 3 * 4096).toString();
            assertTrue(snapshot.contains("pages 0-2 node 1 rw"), snapshot);
            String untouched = r.snapshot(2 * MiB, 4096).toString();
            assertTrue(untouched.contains("page 0 untouched"), untouched);
            String stats = mem.stats().toString();
            assertTrue(stats.contains("evictions") && stats.contains("in:eviction") && stats.contains("resident")
                    && stats.contains("thrashing") && stats.contains("batches"), stats);
            String node = mem.stats().node(1).toString();
            assertTrue(node.startsWith("node 1 (" + d.driver().kind() + "): ") && node.contains("evictions"), node);
        }
    }

    @Test
    void aRegionIsAResourceAndClosingItTwiceDoesNothing() {
        TestDevice d = MemoryFixture.device(8 * MiB);
        try (UnifiedMemory mem = MemoryFixture.memory(d)) {
            Region kept;
            try (Region r = mem.allocate(MiB)) {
                kept = r;
                MemoryFixture.fill(r, 0, MiB, 1);
            }
            assertTrue(kept.isFreed());
            kept.close();   // again: nothing
            assertEquals(0, mem.regions().size());
            assertThrows(IllegalStateException.class, kept::free, "free() still says it was freed already");
        }
    }

    @Test
    void aViewOfNoBytesNeedsNoSpecialCase() {
        TestDevice d = MemoryFixture.device(8 * MiB);
        try (UnifiedMemory mem = MemoryFixture.memory(d)) {
            Region r = mem.allocate(MiB);
            for (long at : new long[] {0, 4096, MiB}) {
                try (HostView v = r.host(at, 0, Access.WRITE)) {
                    assertEquals(0, v.segment().byteSize());
                    assertEquals(at, v.offset());
                }
            }
            assertThrows(IndexOutOfBoundsException.class, () -> r.host(MiB + 1, 0, Access.READ));
            assertThrows(IndexOutOfBoundsException.class, () -> r.host(-1, 0, Access.READ));
            assertTrue(r.snapshot(0, 4096).untouched(0), "a view of nothing touched nothing");
            PageSnapshot none = r.snapshot(MiB, 0);   // a snapshot of nothing, as of a tensor of size 0
            assertEquals(0, none.pages());
            assertEquals(MiB, none.offset());
            assertEquals(4096, r.snapshot(4096 + 100, 0).offset(), "page-aligned, as every snapshot's offset");
            assertThrows(IndexOutOfBoundsException.class, () -> r.snapshot(MiB + 1, 0));
            r.free();   // no view of nothing holds it open
            assertThrows(IllegalStateException.class, () -> r.host(0, 0, Access.READ));
            MemoryFixture.verified(mem);
        }
    }
}
