package dev.hetmem.limits;

import dev.hetmem.host.Libc;

import static dev.hetmem.driver.PageGeometry.BLOCK_BYTES;

/**
 * How fast this machine backs freshly touched memory: a new anonymous mapping made present by
 * several threads at once with {@code MADV_POPULATE_WRITE}, in 2 MiB pieces (huge pages where the
 * kernel gives them). A load into new host pages cannot run faster than this, whatever the disk
 * does: on machines that report free pages back to a hypervisor it is often the lower floor.
 */
public final class FreshMemory {
    private FreshMemory() {}

    /**
     * Populates {@code bytes} of a new mapping with {@code threads} threads, then unmaps it.
     *
     * @param bytes the mapping's size, positive
     * @param threads populating threads, the calling thread included; at least 1
     * @return bytes populated per nanosecond (GB/s), or 0 where the kernel lacks MADV_POPULATE_WRITE
     * @throws IllegalArgumentException if {@code bytes} is not positive or {@code threads} is below 1
     */
    public static double populateGbps(long bytes, int threads) {
        if (bytes <= 0) {
            throw new IllegalArgumentException("populate of " + bytes + " bytes: must be positive");
        }
        if (threads < 1) {
            throw new IllegalArgumentException("thread count " + threads + " must be at least 1");
        }
        long rounded = (bytes + BLOCK_BYTES - 1) & -BLOCK_BYTES;
        long ask = rounded + BLOCK_BYTES;
        long raw = Libc.mmap(0, ask, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS | Libc.MAP_NORESERVE);
        try {
            long base = (raw + BLOCK_BYTES - 1) & -BLOCK_BYTES;
            Libc.tryMadvise(base, rounded, Libc.MADV_HUGEPAGE);
            long pieces = rounded / BLOCK_BYTES;
            boolean[] refused = new boolean[threads];
            long nanos = Shares.timed(threads, t -> refused[t] = !populate(base, pieces * t / threads, pieces * (t + 1) / threads));
            for (boolean r : refused) {
                if (r) {
                    return 0;
                }
            }
            return rounded / (double) nanos;
        } finally {
            Libc.munmap(raw, ask);
        }
    }

    private static boolean populate(long base, long fromPiece, long toPiece) {
        for (long p = fromPiece; p < toPiece; p++) {
            if (Libc.tryMadvise(base + p * BLOCK_BYTES, BLOCK_BYTES, Libc.MADV_POPULATE_WRITE) != 0) {
                return false;
            }
        }
        return true;
    }
}
