package dev.hetmem;

import org.junit.jupiter.api.Test;

import static dev.hetmem.MemoryFixture.MiB;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** A snapshot agrees with protection: a read-only page has no writer, on the host or on a device. */
class SnapshotProtectionTest {
    @Test
    void protectedPagesAreReportedReadOnly() {
        try (UnifiedMemory mem = MemoryFixture.memory(MemoryFixture.device(8 * MiB))) {
            Region r = mem.allocate(2 * MiB);
            try (HostView v = r.host(0, r.size(), Access.WRITE)) {
                v.segment().fill((byte) 1);
            }
            assertEquals("node 0 rw", r.snapshot(0, 4096).describe(0));
            r.protect(0, MiB, Protection.READ_ONLY);
            assertEquals("node 0 ro", r.snapshot(0, 4096).describe(0));
            assertEquals(-1, r.snapshot(0, 4096).writer(0));
            assertEquals("node 0 rw", r.snapshot(MiB, 4096).describe(0));
            r.advise(0, r.size(), Advice.prefetch(1));
            assertEquals("node 1 ro", r.snapshot(0, 4096).describe(0));
            r.protect(0, MiB, Protection.READ_WRITE);
            assertEquals("node 1 rw", r.snapshot(0, 4096).describe(0));
        }
    }
}
