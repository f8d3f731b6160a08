package dev.hetmem.limits;

import dev.hetmem.driver.HostCopy;
import dev.hetmem.host.Libc;
import dev.hetmem.host.StreamingCopy;

/**
 * Anonymous memory outside any region, filled once so every page is backed: the two ends of a
 * plain copy that a benchmark measures hetmem's copies against. Backed by transparent huge pages
 * where asked, like regions and device pools.
 */
public final class NativeBuffer implements AutoCloseable {
    private final long address;
    private final long bytes;
    private boolean closed;

    private NativeBuffer(long address, long bytes) {
        this.address = address;
        this.bytes = bytes;
    }

    /**
     * Maps {@code bytes} of anonymous memory and writes {@code fill} into every byte.
     *
     * @param bytes the buffer's size in bytes; positive
     * @param hugePages whether to ask the kernel for transparent huge pages (2 MiB) first
     *        ({@code madvise(MADV_HUGEPAGE)}; a refusal is ignored)
     * @param fill the byte value written everywhere (its low 8 bits, as {@code memset} takes it)
     * @return a new buffer whose every page is backed; close it to unmap it
     * @throws IllegalArgumentException if {@code bytes} is not positive
     * @throws dev.hetmem.HetmemException if the kernel refuses the mapping
     */
    public static NativeBuffer allocate(long bytes, boolean hugePages, int fill) {
        if (bytes <= 0) {
            throw new IllegalArgumentException("buffer size " + bytes + " must be positive");
        }
        long a = Libc.mmap(0, bytes, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS);
        if (hugePages) {
            Libc.tryMadvise(a, bytes, Libc.MADV_HUGEPAGE);
        }
        Libc.memset(a, fill, bytes);
        return new NativeBuffer(a, bytes);
    }

    /**
     * Maps {@code bytes} of anonymous memory and touches none of it: memory a program writes first
     * (an output), whose pages the kernel backs and zeroes on their first touch, as it does for a
     * large {@code malloc} or a region's host memory that was never written.
     *
     * @param bytes the buffer's size in bytes; positive
     * @param hugePages whether to ask the kernel for transparent huge pages (2 MiB) first
     *        ({@code madvise(MADV_HUGEPAGE)}; a refusal is ignored)
     * @return a new buffer with no page backed yet; close it to unmap it
     * @throws IllegalArgumentException if {@code bytes} is not positive
     * @throws dev.hetmem.HetmemException if the kernel refuses the mapping
     */
    public static NativeBuffer untouched(long bytes, boolean hugePages) {
        if (bytes <= 0) {
            throw new IllegalArgumentException("buffer size " + bytes + " must be positive");
        }
        long a = Libc.mmap(0, bytes, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS);
        if (hugePages) {
            Libc.tryMadvise(a, bytes, Libc.MADV_HUGEPAGE);
        }
        return new NativeBuffer(a, bytes);
    }

    /**
     * Returns the buffer as a memory segment, valid until {@link #close()} (using it after that
     * may crash the JVM: the segment does not know the buffer was closed).
     *
     * @return a segment over the whole buffer
     */
    public java.lang.foreign.MemorySegment segment() {
        return java.lang.foreign.MemorySegment.ofAddress(address).reinterpret(bytes);
    }

    /**
     * Returns the native address of the buffer's first byte, valid until {@link #close()}.
     *
     * @return the buffer's start address
     */
    public long address() {
        return address;
    }

    /**
     * Returns the buffer's size in bytes, as it was allocated.
     *
     * @return the size in bytes
     */
    public long byteSize() {
        return bytes;
    }

    /**
     * Copies {@code length} bytes from {@code src + srcOffset} to {@code dst + dstOffset}, in 2 MiB
     * pieces (the size hetmem's copies use), with the C library's memcpy. The ranges must not
     * overlap.
     *
     * @param src the buffer to copy from
     * @param srcOffset where to start reading, in bytes from the start of {@code src}
     * @param dst the buffer to copy to
     * @param dstOffset where to start writing, in bytes from the start of {@code dst}
     * @param length how many bytes to copy
     * @throws IndexOutOfBoundsException if either range is negative or reaches past its buffer
     */
    public static void copy(NativeBuffer src, long srcOffset, NativeBuffer dst, long dstOffset, long length) {
        copy(src, srcOffset, dst, dstOffset, length, false);
    }

    /**
     * As {@link #copy(NativeBuffer, long, NativeBuffer, long, long)}, streamed ({@link HostCopy}) where
     * {@code streaming} and the streaming copy is available, else with memcpy.
     *
     * @param src the buffer to copy from
     * @param srcOffset where to start reading, in bytes from the start of {@code src}
     * @param dst the buffer to copy to
     * @param dstOffset where to start writing, in bytes from the start of {@code dst}
     * @param length how many bytes to copy
     * @param streaming whether to copy with streaming (non-temporal) stores where they are available
     * @throws IndexOutOfBoundsException if either range is negative or reaches past its buffer
     */
    public static void copy(NativeBuffer src, long srcOffset, NativeBuffer dst, long dstOffset, long length,
                            boolean streaming) {
        java.util.Objects.checkFromIndexSize(srcOffset, length, src.bytes);
        java.util.Objects.checkFromIndexSize(dstOffset, length, dst.bytes);
        long piece = 2L << 20;
        for (long o = 0; o < length; o += piece) {
            StreamingCopy.copy(dst.address + dstOffset + o, src.address + srcOffset + o, Math.min(piece, length - o), streaming);
        }
    }

    /**
     * The machine's plain-copy limit: {@code threads} threads each copy their share of {@code src}
     * into {@code dst} (same size) in 2 MiB pieces, started together; returns bytes per nanosecond
     * (GB/s) of the whole copy.
     *
     * @param dst the buffer to copy to
     * @param src the buffer to copy from, of the same size as {@code dst}
     * @param threads how many threads share the copy, the calling thread included; at least 1
     * @return the copy's throughput in bytes per nanosecond (GB/s), from the start until every
     *         thread has finished
     * @throws IllegalArgumentException if the buffers differ in size or {@code threads} is below 1
     * @throws IllegalStateException if the calling thread is interrupted while it waits for the others
     */
    public static double plainCopyGbps(NativeBuffer dst, NativeBuffer src, int threads) {
        return copyGbps(dst, src, threads, false);
    }

    /**
     * As {@link #plainCopyGbps}, with the streaming copy hetmem's batches use ({@link HostCopy}:
     * non-temporal stores), which on some machines moves far more than memcpy: the faster of the
     * two is the machine's copy limit. Where the streaming copy is not available this measures
     * memcpy again ({@link HostCopy#streamingAvailable} says which).
     *
     * @param dst the buffer to copy to
     * @param src the buffer to copy from, of the same size as {@code dst}
     * @param threads how many threads share the copy, the calling thread included; at least 1
     * @return the copy's throughput in bytes per nanosecond (GB/s), from the start until every
     *         thread has finished
     * @throws IllegalArgumentException if the buffers differ in size or {@code threads} is below 1
     * @throws IllegalStateException if the calling thread is interrupted while it waits for the others
     */
    public static double streamingCopyGbps(NativeBuffer dst, NativeBuffer src, int threads) {
        return copyGbps(dst, src, threads, true);
    }

    private static double copyGbps(NativeBuffer dst, NativeBuffer src, int threads, boolean streaming) {
        if (dst.bytes != src.bytes) {
            throw new IllegalArgumentException("buffers of " + src.bytes + " and " + dst.bytes + " bytes differ in size");
        }
        if (threads < 1) {
            throw new IllegalArgumentException("thread count " + threads + " must be at least 1");
        }
        long total = src.bytes;
        long share = total / threads;
        long nanos = Shares.timed(threads, t -> {
            long base = t * share;
            copy(src, base, dst, base, t == threads - 1 ? total - base : share, streaming);
        });
        return total / (double) nanos;
    }

    /**
     * The best of {@code tries} plain copies of {@code bytes} between two fresh buffers, with as
     * many threads as there are processors: the copy limit a benchmark row is compared with. The
     * buffers are freed before this returns.
     *
     * @param bytes the size of each buffer in bytes; positive
     * @param hugePages whether to back the buffers with transparent huge pages where the kernel allows
     * @param tries how many copies to time
     * @return the best throughput in bytes per nanosecond (GB/s), or 0 if {@code tries} is not positive
     * @throws IllegalArgumentException if {@code bytes} is not positive
     * @throws dev.hetmem.HetmemException if the kernel refuses a mapping
     */
    public static double bestPlainCopyGbps(long bytes, boolean hugePages, int tries) {
        return bestCopyGbps(bytes, hugePages, tries, false);
    }

    /**
     * As {@link #bestPlainCopyGbps}, with the streaming copy ({@link #streamingCopyGbps}).
     *
     * @param bytes the size of each buffer in bytes; positive
     * @param hugePages whether to back the buffers with transparent huge pages where the kernel allows
     * @param tries how many copies to time
     * @return the best throughput in bytes per nanosecond (GB/s), or 0 if {@code tries} is not positive
     * @throws IllegalArgumentException if {@code bytes} is not positive
     * @throws dev.hetmem.HetmemException if the kernel refuses a mapping
     */
    public static double bestStreamingCopyGbps(long bytes, boolean hugePages, int tries) {
        return bestCopyGbps(bytes, hugePages, tries, true);
    }

    private static double bestCopyGbps(long bytes, boolean hugePages, int tries, boolean streaming) {
        try (NativeBuffer src = allocate(bytes, hugePages, 1); NativeBuffer dst = allocate(bytes, hugePages, 2)) {
            double best = 0;
            for (int i = 0; i < tries; i++) {
                best = Math.max(best, copyGbps(dst, src, Runtime.getRuntime().availableProcessors(), streaming));
            }
            return best;
        }
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            Libc.munmap(address, bytes);
        }
    }
}
