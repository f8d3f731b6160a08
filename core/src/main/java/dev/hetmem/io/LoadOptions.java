package dev.hetmem.io;

import java.util.Objects;

import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;

/** Options of {@link dev.hetmem.UnifiedMemory#load}. Immutable; each setter returns a copy. */
public record LoadOptions(LoadScheme scheme, int threads, long chunkBytes, long ringBytes, LoadProgress progress) {
    public static final long DEFAULT_RING_BYTES = 256L << 20;

    public LoadOptions {
        Objects.requireNonNull(scheme, "scheme");
        if (threads < 1 || threads > 64) {
            throw new IllegalArgumentException("loader threads " + threads + " outside [1, 64]");
        }
        if (chunkBytes < PAGE_BYTES || chunkBytes > (1L << 30) || (chunkBytes & (PAGE_BYTES - 1)) != 0) {
            throw new IllegalArgumentException("chunk size " + chunkBytes + " must be a multiple of 4096 in [4096, 2^30]");
        }
        if (ringBytes < chunkBytes || ringBytes > (16L << 30)) {
            throw new IllegalArgumentException("ring of " + ringBytes + " bytes must hold at least one chunk of "
                    + chunkBytes + " and be at most 16 GiB");
        }
    }

    /** Overlapped, 4 streams of 4 MiB reads (the direct-I/O loading thread's fio setting), a 256 MiB device ring, no progress. */
    public static LoadOptions defaults() {
        return new LoadOptions(LoadScheme.OVERLAPPED, 4, 4L << 20, DEFAULT_RING_BYTES, null);
    }

    public LoadOptions withScheme(LoadScheme s) {
        return new LoadOptions(s, threads, chunkBytes, ringBytes, progress);
    }

    public LoadOptions withThreads(int n) {
        return new LoadOptions(scheme, n, chunkBytes, ringBytes, progress);
    }

    public LoadOptions withChunkBytes(long b) {
        return new LoadOptions(scheme, threads, b, Math.max(ringBytes, b), progress);
    }

    /** Total size of the device target's bounce buffers: the most host memory a device load takes. */
    public LoadOptions withRingBytes(long b) {
        return new LoadOptions(scheme, threads, chunkBytes, b, progress);
    }

    public LoadOptions withProgress(LoadProgress p) {
        return new LoadOptions(scheme, threads, chunkBytes, ringBytes, p);
    }
}
