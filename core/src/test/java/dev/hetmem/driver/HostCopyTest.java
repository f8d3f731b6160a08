package dev.hetmem.driver;

import dev.hetmem.host.StreamingCopy;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The host copy drivers and the machine limits use: memcpy, or streamed (non-temporal stores) for large batches. */
class HostCopyTest {
    /** Bytes left untouched on each side of a destination: a copy that writes past its end shows there. */
    private static final int GUARD = 256;
    private static final long PAGE = 4096;

    /** Under CI=true (CI builds with gcc) a missing library fails; elsewhere the streaming checks are skipped. */
    private static void needsStreaming() {
        String why = "the streaming copy is not available: " + HostCopy.streamingUnavailableReason();
        if ("true".equals(System.getenv("CI"))) {
            assertTrue(HostCopy.streamingAvailable(), () -> "CI must run this test: " + why);
        } else {
            Assumptions.assumeTrue(HostCopy.streamingAvailable(), why);
        }
    }

    @Test
    void theStreamingCopyIsBuiltWithTheProject() {
        needsStreaming();
        int width = StreamingCopy.storeBytes();
        assertTrue(width == 16 || width == 32, "store width " + width);
    }

    @Test
    void streamedCopiesAreExactForEverySizeAndAlignment() {
        needsStreaming();
        copiesExactly(true, false, false);
        copiesExactly(true, true, false);
    }

    /**
     * The 16-byte (SSE2) streaming loop, which a CPU with AVX2 never runs in a copy of its own:
     * forced, so that it is checked on every machine (before, only the loop the CPU picked was).
     */
    @Test
    void theSse2StreamingLoopIsExactForEverySizeAndAlignmentOnEveryMachine() {
        needsStreaming();
        copiesExactly(true, false, true);
    }

    @Test
    void memcpyCopiesAreExactForEverySizeAndAlignment() {
        copiesExactly(false, false, false);
        copiesExactly(false, true, false);
    }

    /** A copy into a segment whose arena closed fails on it, streamed or not, and writes nothing. */
    @Test
    void aCopyIntoAClosedArenaFailsInsteadOfWriting() {
        try (Arena live = Arena.ofConfined()) {
            MemorySegment src = live.allocate(4 * PAGE).fill((byte) 1);
            Arena gone = Arena.ofShared();
            MemorySegment dst = gone.allocate(4 * PAGE);
            gone.close();
            for (boolean streaming : new boolean[] {true, false}) {
                IllegalStateException e = assertThrows(IllegalStateException.class, () -> HostCopy.copy(dst, src, streaming));
                assertTrue(e.getMessage() != null && e.getMessage().contains("closed"), e.getMessage());
            }
        }
    }

    @Test
    void segmentsOfDifferentSizesAndReadOnlyDestinationsAreRefused() {
        try (Arena a = Arena.ofConfined()) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> HostCopy.copy(a.allocate(100), a.allocate(64), true));
            assertTrue(e.getMessage().contains("64") && e.getMessage().contains("100"), e.getMessage());
            MemorySegment readOnly = a.allocate(64).asReadOnly();
            IllegalArgumentException ro = assertThrows(IllegalArgumentException.class,
                    () -> HostCopy.copy(readOnly, a.allocate(64), true));
            assertTrue(ro.getMessage().contains("read-only"), ro.getMessage());
        }
    }

    /**
     * Sizes around the streaming copy's cases (shorter than a line, a head to align, whole lines, a
     * tail) at every destination alignment within a line and a few source ones: the destination
     * holds the source's bytes and nothing around it changed. {@code sse2}: by the 16-byte streaming
     * loop whatever the CPU has (addresses, not segments).
     */
    private static void copiesExactly(boolean streaming, boolean segments, boolean sse2) {
        long[] sizes = {0, 1, 31, 63, 64, 65, 127, 128, 129, 4095, 4096, 4097, 65_536 + 13, (2L << 20) + 7};
        int[] dstShifts = {0, 1, 8, 16, 31, 32, 33, 63};
        int[] srcShifts = {0, 3, 32};
        try (Arena arena = Arena.ofConfined()) {
            long max = sizes[sizes.length - 1];
            MemorySegment src = arena.allocate(max + 64, 64);
            MemorySegment dst = arena.allocate(max + 64 + 2 * GUARD, 64);
            MemorySegment untouched = arena.allocate(dst.byteSize(), 64).fill((byte) 0x5a);
            for (long i = 0; i < src.byteSize(); i++) {
                src.set(ValueLayout.JAVA_BYTE, i, (byte) (i * 131 + (i >>> 8) * 7 + 1));
            }
            for (long size : sizes) {
                for (int ds : dstShifts) {
                    for (int ss : srcShifts) {
                        dst.fill((byte) 0x5a);
                        long at = GUARD + ds;
                        if (segments) {
                            HostCopy.copy(dst.asSlice(at, size), src.asSlice(ss, size), streaming);
                        } else if (sse2) {
                            StreamingCopy.copyWithSse2Stores(dst.address() + at, src.address() + ss, size);
                        } else {
                            StreamingCopy.copy(dst.address() + at, src.address() + ss, size, streaming);
                        }
                        long mismatch = MemorySegment.mismatch(dst, at, at + size, src, ss, ss + size);
                        assertEquals(-1, mismatch, "size " + size + ", destination +" + ds + ", source +" + ss
                                + ", streaming " + streaming + (sse2 ? " (SSE2 stores)" : "") + ": first wrong byte at " + mismatch);
                        long before = MemorySegment.mismatch(dst, 0, at, untouched, 0, at);
                        long after = MemorySegment.mismatch(dst, at + size, dst.byteSize(), untouched, at + size, dst.byteSize());
                        assertTrue(before == -1 && after == -1, "size " + size + ", destination +" + ds + ", source +" + ss
                                + ", streaming " + streaming + ": written outside the copy (before its start at "
                                + before + ", after its end at " + after + ")");
                    }
                }
            }
        }
    }

    @Test
    void onlyBatchesOfAtLeastTheThresholdStream() {
        assertFalse(HostCopy.streams(0));
        assertFalse(HostCopy.streams(4096));
        assertFalse(HostCopy.streams(HostCopy.STREAMING_MIN_BYTES - 1));
        assertEquals(HostCopy.streamingAvailable(), HostCopy.streams(HostCopy.STREAMING_MIN_BYTES));
        assertEquals(HostCopy.streamingAvailable(), HostCopy.streams(1L << 40));
    }

    @Test
    void aNegativeLengthIsRefusedWithTheValue() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> StreamingCopy.copy(0, 0, -5, true));
        assertTrue(e.getMessage().contains("-5"), e.getMessage());
    }
}
