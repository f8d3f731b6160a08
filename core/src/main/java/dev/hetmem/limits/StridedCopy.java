package dev.hetmem.limits;

import dev.hetmem.driver.HostCopy;
import dev.hetmem.host.Libc;
import dev.hetmem.host.StreamingCopy;

import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;

/**
 * The floors under a migration of scattered 4 KiB pages, with no memory manager around them: every
 * other 4 KiB page of a huge-page-backed source copied into a pool by several threads (what the copy
 * phase must do at least), and the same copy with each source page handed back to the kernel as it
 * goes ({@code MADV_FREE} of 1024 ranges a call, through {@code process_madvise} where the kernel
 * has it: what releasing host frames page by page costs at least). Both use the same calls the
 * migration engine uses: a copy per page, streamed as a batch of this size is
 * ({@link HostCopy#streams}), and {@link Libc#madviseAll}.
 */
public final class StridedCopy {
    /** Ranges handed to one release call, as the engine's batched release does. */
    private static final int RANGES_PER_CALL = 1024;

    private StridedCopy() {}

    /**
     * Copies {@code bytes} of every other 4 KiB page from a fresh {@code 2·bytes} source into a
     * {@code bytes} pool with {@code threads} threads; with {@code release}, each thread also
     * releases the source pages it copied, 1024 at a time. Fresh buffers each call (allocated and
     * filled before the clock starts), so the source is backed by huge pages where the kernel
     * gives them, as a region's host copy is.
     *
     * @param bytes bytes copied, a positive multiple of 4096
     * @param threads copying threads, the calling thread included; at least 1
     * @param release whether source pages are released as they are copied
     * @return bytes copied per nanosecond (GB/s) from the start until every thread has finished
     * @throws IllegalArgumentException if {@code bytes} is not a positive multiple of 4096 or {@code threads} is below 1
     */
    public static double gbps(long bytes, int threads, boolean release) {
        if (bytes <= 0 || bytes % PAGE_BYTES != 0) {
            throw new IllegalArgumentException("strided copy of " + bytes + " bytes: must be a positive multiple of " + PAGE_BYTES);
        }
        if (threads < 1) {
            throw new IllegalArgumentException("thread count " + threads + " must be at least 1");
        }
        try (NativeBuffer src = NativeBuffer.allocate(2 * bytes, true, 1);
             NativeBuffer pool = NativeBuffer.allocate(bytes, true, 2)) {
            long pages = bytes / PAGE_BYTES;
            boolean streaming = HostCopy.streams(bytes);
            long nanos = Shares.timed(threads, t -> copy(src, pool, pages * t / threads, pages * (t + 1) / threads, release,
                    streaming));
            return bytes / (double) nanos;
        }
    }

    private static void copy(NativeBuffer src, NativeBuffer pool, long from, long to, boolean release, boolean streaming) {
        long[] ranges = new long[2 * RANGES_PER_CALL];
        int n = 0;
        for (long p = from; p < to; p++) {
            long s = src.address() + 2 * p * PAGE_BYTES;
            StreamingCopy.copy(pool.address() + p * PAGE_BYTES, s, PAGE_BYTES, streaming);
            if (release) {
                ranges[2 * n] = s;
                ranges[2 * n + 1] = PAGE_BYTES;
                if (++n == RANGES_PER_CALL) {
                    Libc.madviseAll(ranges, n, Libc.MADV_FREE);
                    n = 0;
                }
            }
        }
        if (n > 0) {
            Libc.madviseAll(ranges, n, Libc.MADV_FREE);
        }
    }
}
