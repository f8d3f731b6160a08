package dev.hetmem;

import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.device.emulated.EmulatedKernel;
import dev.hetmem.driver.DeviceFaultException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.ValueLayout;

import static dev.hetmem.MemoryFixture.MiB;
import static dev.hetmem.MemoryFixture.PAGE;
import static dev.hetmem.MemoryFixture.verified;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * An emulated kernel's accesses once its buffer's one-leaf TLB holds the page: the fast path of the
 * translation must still refuse what the full one refuses (a write through a read-only argument
 * whose page another argument of the launch may write, an access past the argument's end) and
 * leave values that cross a page to the byte-by-byte path (the pages' frames need not be next to
 * each other), and it must switch leaves correctly across 2 MiB blocks.
 */
class DeviceBufferTranslationTest {
    private UnifiedMemory mem;

    @BeforeEach
    void setUp() {
        mem = UnifiedMemory.builder().device(EmulatedDevice.builder().capacity(16 * MiB).build()).build();
    }

    @AfterEach
    void tearDown() {
        verified(mem);
        mem.close();
    }

    private static void fill(Region r) {
        try (HostView v = r.host(0, r.size(), Access.WRITE)) {
            for (long o = 0; o < r.size(); o += 8) {
                v.segment().set(ValueLayout.JAVA_LONG, o, o * 3 + 1);
            }
        }
    }

    @Test
    void aWriteThroughAReadOnlyArgumentFailsEvenWhereAnotherArgumentMadeThePageWritable() {
        Region r = mem.allocate(2 * MiB);
        fill(r);
        // argument 0 reads the page (its TLB then holds the leaf, whose entry is writable for argument 1)
        var e = assertThrows(DeviceFaultException.class, () -> mem.launch(1, (EmulatedKernel) (a, i) -> {
            long x = a.arg(0).getLong(8);
            a.arg(1).putLong(16, x);
            a.arg(0).putLong(24, 7);
        }, 1, KernelArg.of(r, 0, PAGE, Access.READ), KernelArg.of(r, 0, PAGE, Access.WRITE)));
        assertTrue(e.getMessage().contains("declared read-only"), e.getMessage());
        try (HostView v = r.host(0, PAGE, Access.READ)) {
            assertEquals(24 * 3 + 1, v.segment().get(ValueLayout.JAVA_LONG, 24), "the refused store changed nothing");
        }
    }

    @Test
    void anAccessPastTheArgumentsEndFailsAfterATlbHit() {
        Region r = mem.allocate(2 * MiB);
        fill(r);
        var e = assertThrows(DeviceFaultException.class, () -> mem.launch(1, (EmulatedKernel) (a, i) -> {
            a.arg(0).getInt(0);
            // within the page, so only the bounds check refuses it: the argument is PAGE - 4 bytes
            a.arg(0).getInt(PAGE - 6);
        }, 1, KernelArg.of(r, 0, PAGE - 4, Access.READ)));
        assertTrue(e.getMessage().contains("outside its argument"), e.getMessage());
    }

    @Test
    void aValueAcrossPagesInFramesFarApartIsReadByteByByteAfterATlbHit() {
        Region r = mem.allocate(2 * MiB, PAGE);   // 4 KiB granules: each page migrates on its own
        fill(r);
        // page 1 first, then a gap, then page 0: their frames are not consecutive in page order, so
        // reading 8 bytes from page 0's frame onwards would not reach page 1's bytes
        r.advise(PAGE, PAGE, Advice.prefetch(1));
        Region gap = mem.allocate(2 * MiB, PAGE);
        gap.advise(0, 4 * PAGE, Advice.prefetch(1));
        r.advise(0, PAGE, Advice.prefetch(1));
        long[] got = new long[1];
        mem.launch(1, (EmulatedKernel) (a, i) -> {
            a.arg(0).getLong(0);                        // the TLB now holds the block of both pages
            got[0] = a.arg(0).getLong(PAGE - 4);        // 4 bytes of page 0, 4 of page 1
        }, 1, KernelArg.of(r, 0, 2 * PAGE, Access.READ));
        try (HostView v = r.host(0, 2 * PAGE, Access.READ)) {
            assertEquals(v.segment().get(ValueLayout.JAVA_LONG_UNALIGNED, PAGE - 4), got[0]);
        }
    }

    @Test
    void valuesAcrossPagesAndBlocksReadAndWriteTheRightBytes() {
        Region r = mem.allocate(4 * MiB);
        fill(r);
        long[] sums = new long[1];
        mem.launch(1, (EmulatedKernel) (a, i) -> {
            long sum = 0;
            for (long o = 0; o < 4 * MiB; o += 8) {
                sum += a.arg(0).getLong(o);              // leaf of block 0, then of block 1
            }
            sums[0] = sum;
            long across = a.arg(0).getLong(PAGE - 4);    // 4 bytes of page 0, 4 of page 1
            a.arg(0).putLong(2 * MiB - 4, across);       // 4 bytes of block 0, 4 of block 1
        }, 1, KernelArg.of(r, 0, 4 * MiB, Access.READ_WRITE));
        long expected = 0;
        for (long o = 0; o < 4 * MiB; o += 8) {
            expected += o * 3 + 1;
        }
        assertEquals(expected, sums[0]);
        try (HostView v = r.host(0, r.size(), Access.READ)) {
            long across = v.segment().get(ValueLayout.JAVA_LONG_UNALIGNED, PAGE - 4);
            assertEquals(((PAGE - 8) * 3 + 1) >>> 32 | ((PAGE * 3 + 1) << 32), across, "read as the host lays it out");
            assertEquals(across, v.segment().get(ValueLayout.JAVA_LONG_UNALIGNED, 2 * MiB - 4));
        }
    }
}
