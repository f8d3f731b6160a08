package dev.hetmem;

import dev.hetmem.driver.CopyBatch;
import dev.hetmem.driver.HostCopy;
import org.junit.jupiter.api.Test;

import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Which copy batches the engine marks for streaming ({@link CopyBatch#streaming}): those of 1 MiB or
 * more, and of 4 MiB or more where a fault asked for them (its pages are read right after, and a few
 * are read faster from the caches ordinary stores fill).
 */
class StreamingCopyDecisionTest {
    private static final long MiB = 1L << 20;

    /** A batch a driver was handed: its bytes copied and the engine's decision. */
    private record Seen(long copied, boolean streaming) {}

    /** An emulated device that records each batch it copies. */
    private static final class Recording extends WrappedDevice {
        final List<Seen> seen = new CopyOnWriteArrayList<>();

        Recording(long capacity) {
            super("recording", capacity);
        }

        @Override
        public void copy(CopyBatch b, int from, int to) {
            seen.add(new Seen(b.copiedBytes(), b.streaming()));
            super.copy(b, from, to);
        }
    }

    /** Host code reads [from, from+length) of {@code r} through a view: the values the region was filled with. */
    private static void readBack(Region r, long from, long length) {
        try (HostView v = r.host(from, length, Access.READ)) {
            for (long o = 0; o < length; o += 4096) {
                assertEquals((from + o) * 7 + 3, v.segment().get(ValueLayout.JAVA_LONG, o), "offset " + (from + o));
            }
        }
    }

    @Test
    void largeBatchesStreamAndSmallFaultsDoNot() {
        Recording dev = new Recording(32 * MiB);
        try (UnifiedMemory mem = UnifiedMemory.builder().device(dev).copyThreads(1).build()) {
            Region r = mem.allocate(8 * MiB);
            try (HostView v = r.host(0, r.size(), Access.WRITE)) {
                for (long o = 0; o < r.size(); o += 8) {
                    v.segment().set(ValueLayout.JAVA_LONG, o, o * 7 + 3);
                }
            }
            // a prefetch of 4 MiB: one batch, streamed where the library is there
            dev.seen.clear();
            mem.prefetch(r, new long[] {0}, 4 * MiB, 1);
            assertFalse(dev.seen.isEmpty(), "the prefetch copied nothing");
            for (Seen s : dev.seen) {
                assertEquals(HostCopy.streamingAvailable() && s.copied >= HostCopy.STREAMING_MIN_BYTES, s.streaming,
                        () -> "prefetch batch of " + s.copied + " bytes: " + dev.seen);
            }
            assertTrue(dev.seen.stream().anyMatch(s -> s.copied >= HostCopy.STREAMING_MIN_BYTES), dev.seen::toString);
            // a prefetch of 64 KiB with a 4 KiB granule: below the threshold
            Region small = mem.allocate(MiB, 4096);
            dev.seen.clear();
            mem.prefetch(small, new long[] {0}, 64 * 1024, 1);
            assertFalse(dev.seen.isEmpty(), "the small prefetch copied nothing");
            assertTrue(dev.seen.stream().noneMatch(Seen::streaming), dev.seen::toString);
            // host code reading pages the device holds: a fault brings their 2 MiB granule home, not streamed
            dev.seen.clear();
            readBack(r, 0, 2 * MiB);
            assertEquals(List.of(new Seen(2 * MiB, false)), dev.seen, "one 2 MiB fault, not streamed");
            // the rest of the prefetched pages, 2 MiB: not streamed either
            dev.seen.clear();
            readBack(r, 2 * MiB, 4 * MiB);
            assertEquals(List.of(new Seen(2 * MiB, false)), dev.seen, "the rest of the prefetched pages, 2 MiB");
            // a fault of a larger range (a launch's arguments, a wide view): streamed from 4 MiB
            mem.prefetch(r, new long[] {0}, 8 * MiB, 1);
            dev.seen.clear();
            readBack(r, 0, 8 * MiB);
            assertEquals(List.of(new Seen(8 * MiB, HostCopy.streamingAvailable())), dev.seen, "an 8 MiB fault");
            MemoryFixture.verified(mem);
        }
    }
}
