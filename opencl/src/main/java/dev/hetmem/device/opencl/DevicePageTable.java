package dev.hetmem.device.opencl;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.ConcurrentHashMap;

import static dev.hetmem.driver.PageGeometry.PAGE_SHIFT;
import static dev.hetmem.driver.PageGeometry.BLOCK_SHIFT;
import static dev.hetmem.driver.PageGeometry.BLOCK_PAGES;

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

    /** The index of {@code va}'s page in its 2 MiB leaf. */
    private static int slot(long va) {
        return (int) ((va >>> PAGE_SHIFT) & (BLOCK_PAGES - 1));
    }

    private int[] leaf(long va) {
        return leaves.get(va >>> BLOCK_SHIFT);
    }

    private int[] leafOrCreate(long va) {
        int[] leaf = leaves.get(va >>> BLOCK_SHIFT);
        return leaf != null ? leaf : leaves.computeIfAbsent(va >>> BLOCK_SHIFT, k -> new int[BLOCK_PAGES]);
    }

    /** Enters entries for pages [va, va + pages*4K), the i-th page getting {@code firstEntry + (i << 4)}. */
    void map(long va, int firstEntry, int pages) {
        int[] leaf = null;
        long key = -1;
        for (int i = 0; i < pages; i++) {
            long v = va + ((long) i << PAGE_SHIFT);
            if ((v >>> BLOCK_SHIFT) != key) {
                key = v >>> BLOCK_SHIFT;
                leaf = leafOrCreate(v);
            }
            leaf[slot(v)] = firstEntry + (i << 4);
        }
    }

    void unmap(long va, long pages) {
        // one leaf lookup per 2 MiB block, not one per page (each a boxed key and a hash lookup): here, in
        // protect and in window alike
        for (long i = 0; i < pages; ) {
            long v = va + (i << PAGE_SHIFT);
            int idx = slot(v);
            int n = (int) Math.min(pages - i, BLOCK_PAGES - idx);
            int[] leaf = leaf(v);
            if (leaf != null) {
                java.util.Arrays.fill(leaf, idx, idx + n, 0);
            }
            i += n;
        }
    }

    void protect(long va, long pages, boolean writable) {
        for (long i = 0; i < pages; ) {
            long v = va + (i << PAGE_SHIFT);
            int idx = slot(v);
            int n = (int) Math.min(pages - i, BLOCK_PAGES - idx);
            int[] leaf = leaf(v);
            if (leaf != null) {
                for (int j = idx; j < idx + n; j++) {
                    int e = leaf[j];
                    if ((e & PRESENT) != 0) {
                        leaf[j] = writable ? e | WRITABLE : e & ~WRITABLE;
                    }
                }
            }
            i += n;
        }
    }

    int entry(long va) {
        int[] leaf = leaf(va);
        return leaf == null ? 0 : leaf[slot(va)];
    }

    /**
     * Writes the entries of {@code pages} pages from page-aligned {@code va} into {@code out} from
     * index {@code at}; without {@code writable} the write bit is dropped, so that a kernel can
     * write only what its launch declared it writes.
     */
    void window(long va, long pages, boolean writable, MemorySegment out, long at) {
        int mask = writable ? ~0 : ~WRITABLE;
        for (long i = 0; i < pages; ) {
            long v = va + (i << PAGE_SHIFT);
            int idx = slot(v);
            int n = (int) Math.min(pages - i, BLOCK_PAGES - idx);
            int[] leaf = leaf(v);
            for (int j = 0; j < n; j++) {
                out.setAtIndex(ValueLayout.JAVA_INT, at + i + j, leaf == null ? 0 : leaf[idx + j] & mask);
            }
            i += n;
        }
    }
}
