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
}
