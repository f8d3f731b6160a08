package dev.hetmem.io;

import java.util.Objects;

import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;

/**
 * Options of {@link dev.hetmem.UnifiedMemory#load}. Immutable; each setter returns a copy, checked
 * as the constructor checks it. Start from {@link #defaults()}.
 *
 * @param scheme how the file is read; {@link LoadScheme#OVERLAPPED} is the loader's own, the others
 *        exist to measure against
 * @param threads the number of concurrent read streams of the overlapped scheme, 1 to 64 (the
 *        other schemes read with one stream)
 * @param chunkBytes the size of one read in bytes: a multiple of 4096 from 4 KiB to 1 GiB
 * @param ringBytes bytes of host bounce buffers a device load may use, at least {@code chunkBytes}
 *        and at most 16 GiB; the ring never holds more buffers than twice {@code threads}
 * @param progress told how many bytes are done as the load goes, or {@code null} for no reports
 */
public record LoadOptions(LoadScheme scheme, int threads, long chunkBytes, long ringBytes, LoadProgress progress) {
    /** The default {@link #ringBytes()}: 256 MiB of bounce buffers. */
    public static final long DEFAULT_RING_BYTES = 256L << 20;
    /** The largest {@link #ringBytes()}: 16 GiB. */
    public static final long MAX_RING_BYTES = 16L << 30;

    /**
     * Checks the options.
     *
     * @param scheme how the file is read
     * @param threads the number of read streams, 1 to 64
     * @param chunkBytes the size of one read: a multiple of 4096 in [4096, 2^30]
     * @param ringBytes the device ring's size in bytes: at least {@code chunkBytes}, at most 16 GiB
     * @param progress the progress listener, or {@code null} for none
     * @throws NullPointerException if {@code scheme} is null
     * @throws IllegalArgumentException if {@code threads}, {@code chunkBytes} or {@code ringBytes}
     *         is out of its range
     */
    public LoadOptions {
        Objects.requireNonNull(scheme, "scheme");
        if (threads < 1 || threads > 64) {
            throw new IllegalArgumentException("loader threads " + threads + " outside [1, 64]");
        }
        if (chunkBytes < PAGE_BYTES || chunkBytes > (1L << 30) || (chunkBytes & (PAGE_BYTES - 1)) != 0) {
            throw new IllegalArgumentException("chunk size " + chunkBytes + " must be a multiple of 4096 in [4096, 2^30]");
        }
        if (ringBytes < chunkBytes || ringBytes > MAX_RING_BYTES) {
            throw new IllegalArgumentException("ring of " + ringBytes + " bytes must hold at least one chunk of "
                    + chunkBytes + " and be at most 16 GiB");
        }
    }

    /**
     * Overlapped, 4 streams of 4 MiB reads (the direct-I/O loading thread's fio setting), a 256 MiB device ring, no progress.
     *
     * @return the default options
     */
    public static LoadOptions defaults() {
        return new LoadOptions(LoadScheme.OVERLAPPED, 4, 4L << 20, DEFAULT_RING_BYTES, null);
    }

    /**
     * Returns these options with another read scheme.
     *
     * @param s the scheme
     * @return a copy of these options that reads with {@code s}
     * @throws NullPointerException if {@code s} is null
     */
    public LoadOptions withScheme(LoadScheme s) {
        return new LoadOptions(s, threads, chunkBytes, ringBytes, progress);
    }

    /**
     * Returns these options with another number of read streams (used by the overlapped scheme).
     *
     * @param n the number of concurrent reads, 1 to 64
     * @return a copy of these options with {@code n} streams
     * @throws IllegalArgumentException if {@code n} is outside [1, 64]
     */
    public LoadOptions withThreads(int n) {
        return new LoadOptions(scheme, n, chunkBytes, ringBytes, progress);
    }

    /**
     * Returns these options with another read size. The ring grows to hold at least one chunk
     * of {@code b} bytes if it is smaller.
     *
     * @param b the bytes of one read: a multiple of 4096 from 4 KiB to 1 GiB
     * @return a copy of these options reading {@code b} bytes at a time
     * @throws IllegalArgumentException if {@code b} is not a multiple of 4096 in [4096, 2^30]
     */
    public LoadOptions withChunkBytes(long b) {
        return new LoadOptions(scheme, threads, b, Math.max(ringBytes, b), progress);
    }

    /**
     * Total size of the device target's bounce buffers: the most host memory a device load takes.
     *
     * @param b the ring's size in bytes: at least {@link #chunkBytes()}, at most 16 GiB
     * @return a copy of these options with a ring of {@code b} bytes
     * @throws IllegalArgumentException if {@code b} is below the chunk size or above 16 GiB
     */
    public LoadOptions withRingBytes(long b) {
        return new LoadOptions(scheme, threads, chunkBytes, b, progress);
    }

    /**
     * Returns these options with another progress listener.
     *
     * @param p told how far the load is, from the loader's threads; {@code null} for no reports
     * @return a copy of these options reporting to {@code p}
     */
    public LoadOptions withProgress(LoadProgress p) {
        return new LoadOptions(scheme, threads, chunkBytes, ringBytes, p);
    }
}
