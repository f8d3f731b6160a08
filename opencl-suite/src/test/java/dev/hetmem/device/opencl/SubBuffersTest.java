package dev.hetmem.device.opencl;

import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The kept sub-buffers of plain arguments: none is released while the launch that asks for them
 * binds its arguments, however many it has; once it ends, the least recently used beyond the
 * capacity go. No OpenCL needed: the release call is watched.
 */
class SubBuffersTest {
    @Test
    void aLaunchWithMoreArgumentsThanTheCapacityReleasesNoneOfThemUntilItEnds() {
        List<Long> released = new ArrayList<>();
        SubBuffers kept = new SubBuffers(m -> released.add(m.address()));
        int count = SubBuffers.CAPACITY + 6;
        // one launch binds count arguments, each its own sub-buffer
        List<MemorySegment> bound = new ArrayList<>();
        for (int j = 0; j < count; j++) {
            long id = 1000 + j;
            bound.add(kept.get(0, 4096L * j, 4096, 0, () -> MemorySegment.ofAddress(id)));
        }
        assertEquals(List.of(), released, "released while the launch still bound its arguments");
        kept.trim();   // the launch ended
        List<Long> eldest = new ArrayList<>();
        for (int j = 0; j < 6; j++) {
            eldest.add(1000L + j);
        }
        assertEquals(eldest, released, "the least recently used beyond the capacity, once the launch ended");
        assertEquals(SubBuffers.CAPACITY, kept.size());
        // the next launch finds the recent ones kept, and a sub-buffer it asks for again is not made anew
        MemorySegment again = kept.get(0, 4096L * (count - 1), 4096, 0, () -> {
            throw new AssertionError("made again");
        });
        assertSame(bound.getLast(), again);
        // a launch that uses an old one moves it to the recent end: the trim spares it
        kept.get(0, 4096L * 6, 4096, 0, () -> {
            throw new AssertionError("made again");
        });
        kept.get(1, 0, 4096, 0, () -> MemorySegment.ofAddress(5000));
        kept.trim();
        assertEquals(1007L, released.getLast(), "the least recently used of the kept ones, not the one just used");
        kept.releaseAll();
        assertEquals(6 + 1 + SubBuffers.CAPACITY, released.size());
        assertTrue(released.contains(5000L));
    }
}
