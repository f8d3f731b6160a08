package dev.hetmem.device.emulated;

import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

import static dev.hetmem.driver.PageGeometry.PAGE_SHIFT;
import static dev.hetmem.driver.PageGeometry.BLOCK_SHIFT;
import static dev.hetmem.driver.PageGeometry.BLOCK_PAGES;

/**
 * The emulated device's own page table, a mirror of the logical page table (HMM's device page
 * table): per 2 MiB of virtual space, 512 entries holding the physical address of the frame with
 * flag bits in the low 12 bits. Leaves are never removed, so a kernel thread may keep a reference
 * to one as its TLB and re-read entries on every access.
 */
final class EmulatedPageTable {
    static final long PRESENT = 1;
    static final long WRITABLE = 2;
    static final long REMOTE = 4;
    static final long FLAGS = 0xFFF;

    private final ConcurrentHashMap<Long, long[]> leaves = new ConcurrentHashMap<>();
    private final AtomicLong invalidations = new AtomicLong();

    /** The leaf last found, valid for good (leaves are never removed). */
    private record LastLeaf(long key, long[] leaf) {}

    /**
     * The last leaf the core's map, unmap and protect calls looked up: a migration of scattered
     * 4 KiB pages maps or unmaps one page a call, hundreds of calls in one 2 MiB leaf in a row, and
     * the map's lookup boxes its key each time. Kernels' translations ({@link #leaf}) do not use it:
     * compute threads on different leaves would write it on every miss, from several cores.
     */
    private volatile LastLeaf last = new LastLeaf(-1, null);

    long[] leaf(long va) {
        return leaves.get(va >>> BLOCK_SHIFT);
    }

    private long[] cachedLeaf(long va) {
        long key = va >>> BLOCK_SHIFT;
        LastLeaf l = last;
        if (l.key == key) {
            return l.leaf;
        }
        long[] leaf = leaves.get(key);
        if (leaf != null) {
            last = new LastLeaf(key, leaf);
        }
        return leaf;
    }

    private long[] leafOrCreate(long va) {
        long[] leaf = cachedLeaf(va);
        return leaf != null ? leaf : leaves.computeIfAbsent(va >>> BLOCK_SHIFT, k -> new long[BLOCK_PAGES]);
    }

    void map(long va, long physical, int pages, boolean writable) {
        map(va, physical, pages, PRESENT | (writable ? WRITABLE : 0));
    }

    void mapRemote(long va, long hostAddress, int pages, boolean writable) {
        map(va, hostAddress, pages, PRESENT | REMOTE | (writable ? WRITABLE : 0));
    }

    private void map(long va, long physical, int pages, long flags) {
        long[] leaf = null;
        long leafKey = -1;
        for (int i = 0; i < pages; i++) {
            long v = va + ((long) i << PAGE_SHIFT);
            if ((v >>> BLOCK_SHIFT) != leafKey) {
                leafKey = v >>> BLOCK_SHIFT;
                leaf = leafOrCreate(v);
            }
            leaf[(int) ((v >>> PAGE_SHIFT) & (BLOCK_PAGES - 1))] = (physical + ((long) i << PAGE_SHIFT)) | flags;
        }
    }

    void unmap(long va, long pages) {
        long[] leaf = null;
        long leafKey = -1;   // one leaf lookup per 2 MiB, as map does
        for (long i = 0; i < pages; i++) {
            long v = va + (i << PAGE_SHIFT);
            if ((v >>> BLOCK_SHIFT) != leafKey) {
                leafKey = v >>> BLOCK_SHIFT;
                leaf = cachedLeaf(v);
            }
            if (leaf != null) {
                leaf[(int) ((v >>> PAGE_SHIFT) & (BLOCK_PAGES - 1))] = 0;
            }
        }
    }

    void protect(long va, long pages, boolean writable) {
        long[] leaf = null;
        long leafKey = -1;
        for (long i = 0; i < pages; i++) {
            long v = va + (i << PAGE_SHIFT);
            if ((v >>> BLOCK_SHIFT) != leafKey) {
                leafKey = v >>> BLOCK_SHIFT;
                leaf = cachedLeaf(v);
            }
            if (leaf != null) {
                int idx = (int) ((v >>> PAGE_SHIFT) & (BLOCK_PAGES - 1));
                long e = leaf[idx];
                if ((e & PRESENT) != 0) {
                    leaf[idx] = writable ? e | WRITABLE : e & ~WRITABLE;
                }
            }
        }
    }

    /**
     * The host address of [va, va + length) when its pages are present (writable if {@code write})
     * in consecutive frames, as the core places a plain argument; throws otherwise, since a plain
     * pointer would then reach other pages' memory.
     */
    long contiguousAddress(long va, long length, boolean write) {
        long first = va & -(1L << PAGE_SHIFT);
        long base = 0;
        for (long v = first; v < va + length; v += 1L << PAGE_SHIFT) {
            long e = entry(v);
            if ((e & PRESENT) == 0 || (write && (e & WRITABLE) == 0)) {
                throw new IllegalStateException("plain argument page at 0x" + Long.toHexString(v) + " is not mapped"
                        + (write ? " writable" : "") + " on the device");
            }
            long phys = e & ~FLAGS;
            if (v == first) {
                base = phys;
            } else if (phys != base + (v - first)) {
                throw new IllegalStateException("plain argument page at 0x" + Long.toHexString(v) + " is not in the frame "
                        + "after the previous page's: the core did not place the argument in consecutive frames");
            }
        }
        return base + (va - first);
    }

    long entry(long va) {
        long[] leaf = leaf(va);
        return leaf == null ? 0 : leaf[(int) ((va >>> PAGE_SHIFT) & (BLOCK_PAGES - 1))];
    }

    void invalidated() {
        invalidations.incrementAndGet();
    }

    long invalidations() {
        return invalidations.get();
    }
}
