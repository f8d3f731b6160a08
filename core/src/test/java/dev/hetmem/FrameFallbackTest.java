package dev.hetmem;

import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.device.emulated.EmulatedKernel;
import dev.hetmem.driver.DeviceMemoryException;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import static dev.hetmem.MemoryFixture.MiB;
import static dev.hetmem.MemoryFixture.check;
import static dev.hetmem.MemoryFixture.fill;
import static dev.hetmem.MemoryFixture.verified;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * HMM's migrate_anon_huge_err: when the device cannot back a large run of frames, the batch goes on
 * with smaller runs, down to single frames, instead of failing while small frames are free.
 */
@Tag("emulated") // the injection is the emulated device's
class FrameFallbackTest {
    @Test
    void aDeviceThatRefusesLargeRunsGetsSmallerOnes() {
        EmulatedDevice dev = EmulatedDevice.builder().capacity(8 * MiB).computeThreads(2).build();
        try (UnifiedMemory mem = MemoryFixture.memoryOf(dev)) {
            Region r = mem.allocate(4 * MiB);
            fill(r, 0, 4 * MiB, 3);
            dev.failRunsOfAtLeast(16);   // no run of 16 frames (64 KiB) or more: 2 MiB blocks and 64 KiB pieces refused
            long moved = mem.prefetch(r, new long[] {0}, 4 * MiB, 1);
            assertEquals(4 * MiB / 4096, moved, "every page moved, in runs of at most 8 frames");
            assertEquals(4 * MiB, mem.stats().node(1).residentBytes());
            // a kernel on them, then home again (device to host needs no device frame)
            mem.launch(1, (EmulatedKernel) (a, i) -> a.arg(0).putLong(8 * i, a.arg(0).getLong(8 * i)), 4 * MiB / 8,
                    KernelArg.readWrite(r));
            check(r, 0, 4 * MiB, 3);
            verified(mem);
            dev.failRunsOfAtLeast(0);
        }
    }

    @Test
    void aDeviceThatRefusesEveryRunFailsTheBatchAndLosesNothing() {
        EmulatedDevice dev = EmulatedDevice.builder().capacity(8 * MiB).computeThreads(2).build();
        try (UnifiedMemory mem = MemoryFixture.memoryOf(dev)) {
            Region r = mem.allocate(2 * MiB);
            fill(r, 0, 2 * MiB, 5);
            dev.failRunsOfAtLeast(1);
            var e = assertThrows(DeviceMemoryException.class, () -> mem.prefetch(r, new long[] {0}, 2 * MiB, 1));
            assertTrue(e.getMessage().contains("cannot back a run of 1 frames"), e.getMessage());
            assertEquals(8 * MiB, mem.stats().node(1).freeBytes(), "every frame back in the allocator");
            dev.failRunsOfAtLeast(0);
            check(r, 0, 2 * MiB, 5);
            verified(mem);
        }
    }

    /** Device 1 holds no page and every frame of its {@code capacity} is back in its allocator. */
    private static void allFramesFree(UnifiedMemory mem, long capacity) {
        assertEquals(0, mem.stats().node(1).residentBytes(), "no page on the device");
        assertEquals(capacity, mem.stats().node(1).freeBytes(), "every frame back in the allocator");
    }

    /** Every other 4 KiB page of [0, bytes): a list of thousands of single-page ranges. */
    private static long[] everyOtherPage(long bytes) {
        long[] offsets = new long[(int) (bytes / (2 * MemoryFixture.PAGE))];
        for (int i = 0; i < offsets.length; i++) {
            offsets[i] = 2L * i * MemoryFixture.PAGE;
        }
        return offsets;
    }

    @Test
    void scatteredPagesOnADeviceThatRefusesLargeRunsTakeSmallerPieces() {
        // single pages take their frames from pieces allocated for many of them at once: a piece the
        // device cannot back is asked for again smaller, as a large run is
        EmulatedDevice dev = EmulatedDevice.builder().capacity(8 * MiB).computeThreads(2).build();
        try (UnifiedMemory mem = MemoryFixture.memoryOf(dev)) {
            Region r = mem.allocate(4 * MiB, MemoryFixture.PAGE);
            fill(r, 0, 4 * MiB, 9);
            dev.failRunsOfAtLeast(4);   // pieces of 4 frames or more refused
            long[] offsets = everyOtherPage(4 * MiB);
            long moved = mem.prefetch(r, offsets, MemoryFixture.PAGE, 1);
            assertEquals(offsets.length, moved, "every page asked for moved");
            assertEquals(2 * MiB, mem.stats().node(1).residentBytes());
            assertEquals(6 * MiB, mem.stats().node(1).freeBytes(), "no frame left over from a piece");
            dev.failRunsOfAtLeast(0);
            check(r, 0, 4 * MiB, 9);
            verified(mem);
        }
    }

    @Test
    void aRefusedSingleFrameFailsABatchOfScatteredPagesAndLosesNothing() {
        EmulatedDevice dev = EmulatedDevice.builder().capacity(8 * MiB).computeThreads(2).build();
        try (UnifiedMemory mem = MemoryFixture.memoryOf(dev)) {
            Region r = mem.allocate(2 * MiB, MemoryFixture.PAGE);
            fill(r, 0, 2 * MiB, 4);
            dev.failRunsOfAtLeast(1);
            var e = assertThrows(DeviceMemoryException.class,
                    () -> mem.prefetch(r, everyOtherPage(2 * MiB), MemoryFixture.PAGE, 1));
            assertTrue(e.getMessage().contains("cannot back a run of 1 frames"), e.getMessage());
            allFramesFree(mem, 8 * MiB);
            dev.failRunsOfAtLeast(0);
            check(r, 0, 2 * MiB, 4);
            verified(mem);
        }
    }

    @Test
    void anAllocationFailingAfterPiecesWereTakenGivesEveryFrameBack() {
        // pieces of at most 32 frames (larger ones refused), and the third piece fails: the frames
        // of the first two, handed to runs or still kept for runs to come, go back; the pages stay
        // home, and move on a second try
        EmulatedDevice dev = EmulatedDevice.builder().capacity(8 * MiB).computeThreads(2).build();
        try (UnifiedMemory mem = UnifiedMemory.builder().device(dev).copyThreads(1).build()) {   // one batch
            Region r = mem.allocate(4 * MiB, MemoryFixture.PAGE);
            fill(r, 0, 4 * MiB, 6);
            long[] offsets = everyOtherPage(4 * MiB);
            dev.failRunsOfAtLeast(64);
            // preparations: orders 9 to 6 refused, then 5 (the first piece), 5 (the second), then the failure
            dev.failAllocation(6);
            var e = assertThrows(DeviceMemoryException.class, () -> mem.prefetch(r, offsets, MemoryFixture.PAGE, 1));
            assertTrue(e.getMessage().contains("injected allocation failure"), e.getMessage());
            allFramesFree(mem, 8 * MiB);
            verified(mem);
            assertEquals(offsets.length, mem.prefetch(r, offsets, MemoryFixture.PAGE, 1));
            dev.failRunsOfAtLeast(0);
            check(r, 0, 4 * MiB, 6);
            verified(mem);
        }
    }

    @Test
    void aLargeRunFailingWhileAPieceHoldsFramesGivesThemBack() {
        // runs of 1, 1, 41 and 5 pages (pages 1, 3 and 45 are on the device already): the small ones'
        // piece of 4 frames is taken first, two of its frames are still kept for the run of 5 when the
        // large run's allocation fails; they go back with the rest
        EmulatedDevice dev = EmulatedDevice.builder().capacity(8 * MiB).computeThreads(2).build();
        long page = MemoryFixture.PAGE;
        try (UnifiedMemory mem = UnifiedMemory.builder().device(dev).copyThreads(1).build()) {
            Region r = mem.allocate(2 * MiB, page);
            fill(r, 0, 2 * MiB, 8);
            mem.prefetch(r, new long[] {page, 3 * page, 45 * page}, page, 1);
            dev.failAllocation(1);   // the piece is prepared, the large run's first frames are not
            assertThrows(DeviceMemoryException.class, () -> mem.prefetch(r, new long[] {0}, 51 * page, 1));
            assertEquals(8 * MiB - 3 * page, mem.stats().node(1).freeBytes(),
                    "every frame but the three pages' back in the allocator");
            assertEquals(3 * page, mem.stats().node(1).residentBytes());
            verified(mem);
            assertEquals(48, mem.prefetch(r, new long[] {0}, 51 * page, 1));
            check(r, 0, 2 * MiB, 8);
            verified(mem);
        }
    }

    @Test
    void smallAndLargeRunsOnANearlyFullDeviceEvictAndLoseNothing() {
        // pages 1, 3 and 45 on the device already, so one range [0, 51 pages) plans runs of 1, 1, 41
        // and 5 pages: a piece for the small ones, of which some frames are still kept when the
        // large run finds the device full and evicts (they go back first)
        EmulatedDevice dev = EmulatedDevice.builder().capacity(4 * MiB).computeThreads(2).build();
        long page = MemoryFixture.PAGE;
        try (UnifiedMemory mem = MemoryFixture.memoryOf(dev)) {
            Region full = mem.allocate(4 * MiB - 16 * page, page);
            fill(full, 0, full.size(), 1);
            mem.prefetch(full, new long[] {0}, full.size(), 1);   // 16 frames left free
            Region r = mem.allocate(2 * MiB, page);
            fill(r, 0, 2 * MiB, 2);
            mem.prefetch(r, new long[] {page, 3 * page, 45 * page}, page, 1);
            long moved = mem.prefetch(r, new long[] {0}, 51 * page, 1);
            assertEquals(48, moved, "the 48 pages not on the device yet");
            assertEquals(4 * MiB, mem.stats().node(1).residentBytes() + mem.stats().node(1).freeBytes(),
                    "every frame resident or free: none left in flight");
            check(r, 0, 2 * MiB, 2);
            check(full, 0, full.size(), 1);
            verified(mem);
        }
    }
}
