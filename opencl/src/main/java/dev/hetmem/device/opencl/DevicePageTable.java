package dev.hetmem.device.opencl;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The OpenCL device's page table on the host side: a mirror of the logical page table, per 2 MiB of
 * virtual space 512 entries in the format hetmem.h reads (bit 0 present, bit 1 writable, bits 2-3
 * pool, bits 4-31 frame within the pool). Before a kernel runs, the driver copies the entries of
 * the pages its arguments cover into the device-side table ({@link #window}), so the kernel sees
 * exactly the mappings the core entered.
 *
 * <p>Threading: the core writes entries of disjoint pages from several threads, each under the
 * page-table lock of its block; a launch reads them after the core's fault phase, which took and
 * released those locks, so the writes are visible to it.
 */
final class DevicePageTable {
    static final int PRESENT = 1;
    static final int WRITABLE = 2;

    private final ConcurrentHashMap<Long, int[]> leaves = new ConcurrentHashMap<>();

    private int[] leaf(long va) {
        return leaves.get(va >>> 21);
    }

    private int[] leafOrCreate(long va) {
        int[] leaf = leaves.get(va >>> 21);
        return leaf != null ? leaf : leaves.computeIfAbsent(va >>> 21, k -> new int[512]);
    }

    /** Enters entries for pages [va, va + pages*4K), the i-th page getting {@code firstEntry + (i << 4)}. */
    void map(long va, int firstEntry, int pages) {
        int[] leaf = null;
        long key = -1;
        for (int i = 0; i < pages; i++) {
            long v = va + ((long) i << 12);
            if ((v >>> 21) != key) {
                key = v >>> 21;
                leaf = leafOrCreate(v);
            }
            leaf[(int) ((v >>> 12) & 511)] = firstEntry + (i << 4);
        }
    }

    void unmap(long va, long pages) {
        for (long i = 0; i < pages; i++) {
            long v = va + (i << 12);
            int[] leaf = leaf(v);
            if (leaf != null) {
                leaf[(int) ((v >>> 12) & 511)] = 0;
            }
        }
    }

    void protect(long va, long pages, boolean writable) {
        for (long i = 0; i < pages; i++) {
            long v = va + (i << 12);
            int[] leaf = leaf(v);
            if (leaf != null) {
                int idx = (int) ((v >>> 12) & 511);
                int e = leaf[idx];
                if ((e & PRESENT) != 0) {
                    leaf[idx] = writable ? e | WRITABLE : e & ~WRITABLE;
                }
            }
        }
    }

    int entry(long va) {
        int[] leaf = leaf(va);
        return leaf == null ? 0 : leaf[(int) ((va >>> 12) & 511)];
    }

    /**
     * Writes the entries of {@code pages} pages from page-aligned {@code va} into {@code out} from
     * index {@code at}; without {@code writable} the write bit is dropped, so that a kernel can
     * write only what its launch declared it writes.
     */
    void window(long va, long pages, boolean writable, MemorySegment out, long at) {
        int mask = writable ? ~0 : ~WRITABLE;
        for (long i = 0; i < pages; i++) {
            out.setAtIndex(ValueLayout.JAVA_INT, at + i, entry(va + (i << 12)) & mask);
        }
    }
}
