package dev.hetmem.device.opencl;

import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;

import static dev.hetmem.driver.PageGeometry.BLOCK_PAGES;
import static dev.hetmem.driver.PageGeometry.PAGE_SHIFT;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The host side of the OpenCL device's page table against a plain array of entries, one per page:
 * ranges that start and end inside 2 MiB blocks and cross several, over blocks with a leaf and
 * without one (unmap, protect and window walk a block at a time).
 */
class DevicePageTableTest {
    private static final long BASE = 0x7f00_0000_0000L;   // a block boundary
    private static final int PAGES = 5 * BLOCK_PAGES;

    @Test
    void everyOperationOverRangesAcrossBlocksMatchesAnEntryPerPage() {
        SplittableRandom rnd = new SplittableRandom(31);
        DevicePageTable table = new DevicePageTable();
        int[] want = new int[PAGES];
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(4L * PAGES + 8, 4);
            for (int round = 0; round < 2000; round++) {
                // the last block stays without a leaf in the first rounds: ranges reach it anyway
                int limit = round < 200 ? 4 * BLOCK_PAGES : PAGES;
                int from = rnd.nextInt(PAGES);
                int n = 1 + rnd.nextInt(Math.min(3 * BLOCK_PAGES, PAGES - from));
                long va = BASE + ((long) from << PAGE_SHIFT);
                switch (rnd.nextInt(4)) {
                    case 0 -> {
                        if (from + n <= limit) {
                            int entry = (rnd.nextInt(1 << 20) << 4) | DevicePageTable.PRESENT
                                    | (rnd.nextBoolean() ? DevicePageTable.WRITABLE : 0);
                            table.map(va, entry, n);
                            for (int i = 0; i < n; i++) {
                                want[from + i] = entry + (i << 4);
                            }
                        }
                    }
                    case 1 -> {
                        table.unmap(va, n);
                        java.util.Arrays.fill(want, from, from + n, 0);
                    }
                    case 2 -> {
                        boolean writable = rnd.nextBoolean();
                        table.protect(va, n, writable);
                        for (int i = from; i < from + n; i++) {
                            if ((want[i] & DevicePageTable.PRESENT) != 0) {
                                want[i] = writable ? want[i] | DevicePageTable.WRITABLE : want[i] & ~DevicePageTable.WRITABLE;
                            }
                        }
                    }
                    default -> {
                        boolean writable = rnd.nextBoolean();
                        out.fill((byte) 0x5a);
                        table.window(va, n, writable, out, 2);
                        assertEquals(0x5a5a5a5a, out.getAtIndex(ValueLayout.JAVA_INT, 1), "nothing written before index 2");
                        for (int i = 0; i < n; i++) {
                            int e = want[from + i] & (writable ? ~0 : ~DevicePageTable.WRITABLE);
                            assertEquals(e, out.getAtIndex(ValueLayout.JAVA_INT, 2 + i), "round " + round + ", page " + (from + i));
                        }
                        if (2L + n < PAGES + 2) {
                            assertEquals(0x5a5a5a5a, out.getAtIndex(ValueLayout.JAVA_INT, 2 + n), "nothing written past the window");
                        }
                    }
                }
                int probe = rnd.nextInt(PAGES);
                assertEquals(want[probe], table.entry(BASE + ((long) probe << PAGE_SHIFT)), "round " + round + ", page " + probe);
            }
        }
        for (int p = 0; p < PAGES; p++) {
            assertEquals(want[p], table.entry(BASE + ((long) p << PAGE_SHIFT)), "page " + p);
        }
    }
}
