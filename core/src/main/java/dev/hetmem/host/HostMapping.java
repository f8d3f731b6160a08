package dev.hetmem.host;

import dev.hetmem.HostReleasePolicy;

import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;
import static dev.hetmem.driver.PageGeometry.BLOCK_BYTES;

/**
 * A region's host side: a reserved range of anonymous virtual memory, 2 MiB aligned so that
 * every page-table block starts a transparent huge page. Reserved with MAP_NORESERVE, so a
 * terabyte costs no memory and no commit charge until pages are touched.
 */
/* Its monitor is lock L19 (mapping): docs/design.md, lock table, L19. */
public final class HostMapping implements AutoCloseable {
    public static final long ALIGN = BLOCK_BYTES;

    private final long base;
    private final long length;
    private final long mappedStart;
    private final long mappedLength;
    private final HostReleasePolicy releasePolicy;
    private boolean closed;

    private HostMapping(long base, long length, long mappedStart, long mappedLength, HostReleasePolicy policy) {
        this.base = base;
        this.length = length;
        this.mappedStart = mappedStart;
        this.mappedLength = mappedLength;
        this.releasePolicy = policy;
    }

    /** Reserves {@code length} bytes (rounded up to whole pages), aligned to 2 MiB. */
    public static HostMapping reserve(long length, HostReleasePolicy policy) {
        long pages = Math.ceilDiv(length, PAGE_BYTES);
        long rounded = pages * PAGE_BYTES;
        long ask = rounded + ALIGN;
        long raw = Libc.mmap(0, ask, Libc.PROT_READ | Libc.PROT_WRITE,
                Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS | Libc.MAP_NORESERVE);
        long aligned = (raw + ALIGN - 1) & -ALIGN;
        // Trim the slack on both sides so only the aligned range stays reserved.
        if (aligned > raw) {
            Libc.munmap(raw, aligned - raw);
        }
        long tail = (raw + ask) - (aligned + rounded);
        if (tail > 0) {
            Libc.munmap(aligned + rounded, tail);
        }
        // Huge pages only help where a whole 2 MiB block lives on the host; the kernel splits them
        // when a part leaves, so this is advice, and failure to take it is harmless.
        Libc.tryMadvise(aligned, rounded, Libc.MADV_HUGEPAGE);
        return new HostMapping(aligned, length, aligned, rounded, policy);
    }

    /**
     * A mapping someone else made and will unmap (the view of a userfaultfd region, which the
     * native fault service owns). Pages leave it through the service, not by release or discard.
     */
    public static HostMapping adopt(long base, long length) {
        return new HostMapping(base, length, base, 0, HostReleasePolicy.DONTNEED);
    }

    public long base() {
        return base;
    }

    public long length() {
        return length;
    }

    /**
     * Hands the host frames of [offset, offset+bytes) back to the kernel after their pages moved away.
     * Under FREE a later read may still see the old bytes: callers overwrite a page before it is
     * host-resident again, or zero it with {@link #discard}.
     */
    public void release(long offset, long bytes) {
        Libc.madvise(base + offset, bytes, adviceOf(releasePolicy));
    }

    /**
     * {@link #release} of many ranges in one call: {@code ranges} holds (offset, length) pairs in
     * [0, 2*count); the kernel flushes the TLB once for all of them where it can.
     */
    public void releaseAll(long[] ranges, int count) {
        long[] absolute = new long[2 * count];
        for (int i = 0; i < count; i++) {
            absolute[2 * i] = base + ranges[2 * i];
            absolute[2 * i + 1] = ranges[2 * i + 1];
        }
        Libc.madviseAll(absolute, count, adviceOf(releasePolicy));
    }

    /** Drops the frames so the next touch reads zeros: used when contents are discarded. */
    public void discard(long offset, long bytes) {
        Libc.madvise(base + offset, bytes, Libc.MADV_DONTNEED);
    }

    public HostReleasePolicy releasePolicy() {
        return releasePolicy;
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            if (mappedLength > 0) {
                Libc.munmap(mappedStart, mappedLength);
            }
        }
    }

    private static int adviceOf(HostReleasePolicy policy) {
        return switch (policy) {
            case FREE -> Libc.MADV_FREE;
            case DONTNEED -> Libc.MADV_DONTNEED;
        };
    }
}
