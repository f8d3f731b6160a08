package dev.hetmem;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.lang.foreign.ValueLayout;

import static dev.hetmem.MemoryFixture.MiB;
import static dev.hetmem.MemoryFixture.verified;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A block that bounces between the host and a device is held home; the device then reaches it in place. */
class ThrashingTest {

    /** Host and device take turns incrementing the first long of a 2 MiB block; returns pages migrated. */
    private static long pingPong(UnifiedMemory mem, TestDevice dev, Region r, int rounds) {
        long before = mem.stats().node(0).pagesMigrated() + mem.stats().node(1).pagesMigrated();
        for (int i = 0; i < rounds; i++) {
            try (HostView v = r.host(0, 8, Access.READ_WRITE)) {
                v.segment().set(ValueLayout.JAVA_LONG, 0, v.segment().get(ValueLayout.JAVA_LONG, 0) + 1);
            }
            mem.launch(1, dev.addLongs(1), 1,
                    KernelArg.of(r, 0, 8, Access.READ_WRITE));
        }
        return mem.stats().node(0).pagesMigrated() + mem.stats().node(1).pagesMigrated() - before;
    }

    @Test
    @Tag("emulated") // the held block is reached remotely by the device (canMapHost)
    void aPingPongingBlockIsDetectedAndStopsMoving() {
        EmulatedTestDevice dev = new EmulatedTestDevice(8 * MiB);
        try (UnifiedMemory mem = UnifiedMemory.builder().device(dev.driver()).copyThreads(2)
                .thrashHold(java.time.Duration.ofSeconds(10)).build()) {
            Region r = mem.allocate(2 * MiB);
            long moved = pingPong(mem, dev, r, 10);
            assertTrue(mem.stats().node(0).thrashingEvents() + mem.stats().node(1).thrashingEvents() >= 1,
                    "thrashing detected");
            // after detection the block stays home: 20 more accesses move nothing
            long later = pingPong(mem, dev, r, 10);
            assertEquals(0, later, "a held block does not move");
            assertTrue(moved < 10 * 2 * 512, "fewer pages moved than twenty full bounces: " + moved);
            try (HostView v = r.host(0, 8, Access.READ)) {
                assertEquals(40, v.segment().get(ValueLayout.JAVA_LONG, 0), "every increment landed");
            }
            verified(mem);
        }
    }

    @Test
    void withoutThrashControlTheBlockKeepsBouncing() {
        TestDevice dev = MemoryFixture.device(8 * MiB);
        try (UnifiedMemory mem = UnifiedMemory.builder().device(dev.driver()).copyThreads(2)
                .thrashControl(false).build()) {
            Region r = mem.allocate(2 * MiB);
            long moved = pingPong(mem, dev, r, 10);
            assertEquals(0, mem.stats().node(1).thrashingEvents());
            assertTrue(moved >= 19 * 512, "every access moved the block: " + moved);
            verified(mem);
        }
    }
}
