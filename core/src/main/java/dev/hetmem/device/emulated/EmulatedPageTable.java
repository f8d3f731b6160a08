package dev.hetmem.device.emulated;

import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

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

    long[] leaf(long va) {
        return leaves.get(va >>> 21);
    }

    private long[] leafOrCreate(long va) {
        long[] leaf = leaves.get(va >>> 21);
        return leaf != null ? leaf : leaves.computeIfAbsent(va >>> 21, k -> new long[512]);
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
            long v = va + ((long) i << 12);
            if ((v >>> 21) != leafKey) {
                leafKey = v >>> 21;
                leaf = leafOrCreate(v);
            }
            leaf[(int) ((v >>> 12) & 511)] = (physical + ((long) i << 12)) | flags;
        }
    }

    void unmap(long va, long pages) {
        for (long i = 0; i < pages; i++) {
            long v = va + (i << 12);
            long[] leaf = leaf(v);
            if (leaf != null) {
                leaf[(int) ((v >>> 12) & 511)] = 0;
            }
        }
    }

    void protect(long va, long pages, boolean writable) {
        for (long i = 0; i < pages; i++) {
            long v = va + (i << 12);
            long[] leaf = leaf(v);
            if (leaf != null) {
                int idx = (int) ((v >>> 12) & 511);
                long e = leaf[idx];
                if ((e & PRESENT) != 0) {
                    leaf[idx] = writable ? e | WRITABLE : e & ~WRITABLE;
                }
            }
        }
    }

    long entry(long va) {
        long[] leaf = leaf(va);
        return leaf == null ? 0 : leaf[(int) ((va >>> 12) & 511)];
    }

    void invalidated() {
        invalidations.incrementAndGet();
    }

    long invalidations() {
        return invalidations.get();
    }
}
