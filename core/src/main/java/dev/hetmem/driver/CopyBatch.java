package dev.hetmem.driver;

import java.util.Arrays;

/**
 * The copy phase of one migration, as structure-of-arrays: each operation moves {@code pages}
 * contiguous pages between host address {@code hostAddress} and frames starting at
 * {@code frame}, or zero-fills frames. Runs are already coalesced, so a driver issues one transfer
 * per operation.
 *
 * <p>Operations are numbered from 0 to {@link #size()} - 1 in the order they were added; a driver
 * reads them with {@link #op}, {@link #hostAddress}, {@link #frame} and {@link #pages}. The core
 * builds a batch on one thread and hands it to {@link DeviceDriver#copy} or a {@link CopyEngine}
 * only when complete; from then on it is only read, so several copy threads may read it at once.
 * A batch is not thread-safe while it is being built.
 */
public final class CopyBatch {
    /** Operation code: copy from host memory at {@code hostAddress} into the frames. */
    public static final byte TO_DEVICE = 0;
    /** Operation code: copy from the frames into host memory at {@code hostAddress}. */
    public static final byte TO_HOST = 1;
    /** Operation code: fill the frames with zero bytes; the host address is unused (0). */
    public static final byte ZERO = 2;

    private byte[] ops = new byte[16];

    /** An empty batch, to add copies to. */
    public CopyBatch() {
    }
    private long[] hostAddresses = new long[16];
    private int[] frames = new int[16];
    private int[] pages = new int[16];
    private int size;
    private long bytes;
    /** {@link #bytes} less the zero fills: what the engine's streaming rule counts, kept as operations are added. */
    private long copied;
    private boolean streaming;

    /**
     * Appends one operation, merged into the previous one when it continues it: same code, frames
     * (and, except for {@link #ZERO}, host addresses) contiguous, and at most 512 pages (one 2 MiB
     * block) in the merged operation. Arguments are not checked.
     *
     * @param op {@link #TO_DEVICE}, {@link #TO_HOST} or {@link #ZERO}
     * @param hostAddress host address of the first page, 4 KiB aligned; 0 for {@link #ZERO}
     * @param frame the first device frame
     * @param count the number of 4 KiB pages, at least 1
     */
    public void add(byte op, long hostAddress, int frame, int count) {
        if (size > 0 && ops[size - 1] == op && frames[size - 1] + pages[size - 1] == frame
                && (op == ZERO || hostAddresses[size - 1] + ((long) pages[size - 1] << PageGeometry.PAGE_SHIFT) == hostAddress)
                && pages[size - 1] + count <= PageGeometry.BLOCK_PAGES) {
            pages[size - 1] += count;
        } else {
            addUnmerged(op, hostAddress, frame, count);
            return;
        }
        bytes += (long) count << PageGeometry.PAGE_SHIFT;
        if (op != ZERO) {
            copied += (long) count << PageGeometry.PAGE_SHIFT;
        }
    }

    /**
     * Appends one operation without merging it into the previous one (to split work across threads).
     * Arguments are not checked.
     *
     * @param op {@link #TO_DEVICE}, {@link #TO_HOST} or {@link #ZERO}
     * @param hostAddress host address of the first page, 4 KiB aligned; 0 for {@link #ZERO}
     * @param frame the first device frame
     * @param count the number of 4 KiB pages, at least 1
     */
    public void addUnmerged(byte op, long hostAddress, int frame, int count) {
        if (size == ops.length) {
            grow();
        }
        ops[size] = op;
        hostAddresses[size] = hostAddress;
        frames[size] = frame;
        pages[size] = count;
        size++;
        bytes += (long) count << PageGeometry.PAGE_SHIFT;
        if (op != ZERO) {
            copied += (long) count << PageGeometry.PAGE_SHIFT;
        }
    }

    private void grow() {
        int n = size * 2;
        ops = Arrays.copyOf(ops, n);
        hostAddresses = Arrays.copyOf(hostAddresses, n);
        frames = Arrays.copyOf(frames, n);
        pages = Arrays.copyOf(pages, n);
    }

    /**
     * The number of operations, after merging.
     *
     * @return the operation count; 0 for an empty batch
     */
    public int size() {
        return size;
    }

    /**
     * Whether the batch holds no operation.
     *
     * @return true if {@link #size()} is 0
     */
    public boolean isEmpty() {
        return size == 0;
    }

    /**
     * What operation {@code i} does.
     *
     * @param i the operation's index, in [0, {@link #size()})
     * @return {@link #TO_DEVICE}, {@link #TO_HOST} or {@link #ZERO}
     */
    public byte op(int i) {
        return ops[i];
    }

    /**
     * The host side of operation {@code i}: where its first page is read from or written to.
     *
     * @param i the operation's index, in [0, {@link #size()})
     * @return the host virtual address of the first byte, 4 KiB aligned; 0 for {@link #ZERO}
     */
    public long hostAddress(int i) {
        return hostAddresses[i];
    }

    /**
     * The device side of operation {@code i}: its first frame.
     *
     * @param i the operation's index, in [0, {@link #size()})
     * @return the first 4 KiB frame of the operation, numbered from 0 in device memory
     */
    public int frame(int i) {
        return frames[i];
    }

    /**
     * The length of operation {@code i}: it covers frames [frame(i), frame(i) + pages(i)) and as
     * many bytes of host memory.
     *
     * @param i the operation's index, in [0, {@link #size()})
     * @return the number of 4 KiB pages, at least 1
     */
    public int pages(int i) {
        return pages[i];
    }

    /**
     * Bytes moved or filled by the whole batch.
     *
     * @return the sum over all operations of pages times 4096
     */
    public long bytes() {
        return bytes;
    }

    /**
     * Whether the engine asks for this batch's copies to be streamed ({@link HostCopy#streams(long,
     * boolean)}). A driver whose memory the CPU reaches passes it to {@link HostCopy#copy}; others
     * may ignore it.
     *
     * @return true if the copies should use streaming stores
     */
    public boolean streaming() {
        return streaming;
    }

    /**
     * Sets {@link #streaming()}: the engine's decision, made once for the whole batch before any of
     * it is copied (its parts may run on several threads).
     *
     * @param streaming whether the copies should use streaming stores
     */
    public void streaming(boolean streaming) {
        this.streaming = streaming;
    }

    /**
     * Bytes the batch copies: {@link #bytes()} less its zero fills.
     *
     * @return the sum over the copying operations of pages times 4096
     */
    public long copiedBytes() {
        return copied;
    }

    /** Removes every operation, keeping the arrays for reuse. */
    public void clear() {
        size = 0;
        bytes = 0;
        copied = 0;
        streaming = false;
    }
}
