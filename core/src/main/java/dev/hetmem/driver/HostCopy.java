package dev.hetmem.driver;

import dev.hetmem.host.StreamingCopy;

import java.lang.foreign.MemorySegment;

/**
 * The host copy for drivers whose device memory the CPU reaches (the emulated device's pools, an
 * OpenCL device's shared pools): {@code memcpy}, or a streaming copy (non-temporal stores, the
 * project's {@code hetmem_copy.c}) where the engine marks a batch {@link CopyBatch#streaming}.
 *
 * <p>Why a batch streams: a migration writes each destination frame once, and a large batch's
 * destination is not read soon on this CPU. Ordinary stores read every destination line in before
 * writing it (three memory transfers a byte); streaming stores write whole lines (two). glibc's
 * {@code memcpy} streams only single calls above a size (240 MiB on the development machine), so a
 * batch of 4 KiB or 2 MiB pages never does. There, 256 MiB in 2 MiB pieces on 2 threads copied at
 * 16 GB/s with {@code memcpy} and 23-32 GB/s streamed. The engine streams a batch that copies at
 * least {@link #STREAMING_MIN_BYTES}, or, where a fault asked for it, at least
 * {@link #FAULT_STREAMING_MIN_BYTES}: a fault's pages are read right after the copy, by the host code
 * or the kernel that faulted, and a few of them are read faster from the caches ordinary stores
 * leave them in (host code reading a 2 MiB granule it faulted home: 505 us copied with
 * {@code memcpy}, 521 us streamed; 8 MiB: the same either way), while a launch's whole arguments
 * are too large for the caches to keep (a model's layer of 16 MiB ran faster streamed in
 * {@code bench decode}).
 *
 * <p>Streaming needs the project's native library, built with the project where a C compiler was
 * found; without it every copy is a {@code memcpy} ({@link #streamingUnavailableReason} says why).
 * The system property {@code hetmem.copy.streaming=false} turns streaming off (to compare).
 */
public final class HostCopy {
    /** A batch that copies at least this many bytes streams (where the library is there and no fault asked for it). */
    public static final long STREAMING_MIN_BYTES = 1L << 20;
    /** A batch a fault asked for streams from this many bytes copied. */
    public static final long FAULT_STREAMING_MIN_BYTES = 4L << 20;

    private HostCopy() {
    }

    /**
     * Whether a batch that copies {@code bytes} bytes is large enough to stream, and streaming is
     * available: the engine's rule for batches no fault asked for.
     *
     * @param bytes the bytes the batch copies (zero fills not counted)
     * @return true if such a batch streams in this JVM
     */
    public static boolean streams(long bytes) {
        return streams(bytes, false);
    }

    /**
     * The engine's rule for a batch: whether one that copies {@code bytes} bytes streams.
     *
     * @param bytes the bytes the batch copies (zero fills not counted)
     * @param fault whether a fault asked for the batch (a host view, a launch's arguments, a device fault)
     * @return true if such a batch streams in this JVM
     */
    public static boolean streams(long bytes, boolean fault) {
        return bytes >= (fault ? FAULT_STREAMING_MIN_BYTES : STREAMING_MIN_BYTES) && StreamingCopy.available();
    }

    /**
     * Whether streaming copies are available in this JVM.
     *
     * @return true if the streaming copy's library is loaded and not turned off
     */
    public static boolean streamingAvailable() {
        return StreamingCopy.available();
    }

    /**
     * Why copies never stream in this JVM.
     *
     * @return the reason (library not built, not this platform, turned off), or null if they can stream
     */
    public static String streamingUnavailableReason() {
        return StreamingCopy.unavailableReason();
    }

    /**
     * Copies all of {@code src} into {@code dst}, streamed where {@code streaming}, the library is
     * there and both segments are native, else as {@link MemorySegment#copy}. Both segments stay
     * alive for the copy: one racing its arena's close fails on the closed segment, or holds the
     * close off, and never writes memory that was unmapped.
     *
     * @param dst the destination, a writable segment of {@code src}'s size that does not overlap it
     * @param src the source
     * @param streaming usually {@link CopyBatch#streaming} of the batch this copy is part of
     * @throws IllegalArgumentException if the sizes differ, or {@code dst} is read-only
     * @throws IllegalStateException if either segment's arena is closed
     * @throws WrongThreadException if either segment is confined to another thread
     */
    public static void copy(MemorySegment dst, MemorySegment src, boolean streaming) {
        StreamingCopy.copy(dst, src, streaming);
    }
}
