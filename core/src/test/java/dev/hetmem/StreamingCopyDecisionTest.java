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
 * Which copy batches the engine marks for streaming ({@link CopyBatch#streaming}): large ones that
 * no fault asked for. A fault's pages are read right after, from the caches ordinary stores fill.
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

    @Test
    void largePrefetchesStreamSmallOnesAndFaultsDoNot() {
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
            try (HostView v = r.host(0, 4 * MiB, Access.READ)) {
                for (long o = 0; o < 4 * MiB; o += 4096) {
                    assertEquals(o * 7 + 3, v.segment().get(ValueLayout.JAVA_LONG, o), "offset " + o);
                }
            }
            assertTrue(dev.seen.stream().anyMatch(s -> s.copied >= HostCopy.STREAMING_MIN_BYTES),
                    () -> "the fault copied no batch of a granule: " + dev.seen);
            assertTrue(dev.seen.stream().noneMatch(Seen::streaming), () -> "a fault's batch streamed: " + dev.seen);
            MemoryFixture.verified(mem);
        }
    }
}
