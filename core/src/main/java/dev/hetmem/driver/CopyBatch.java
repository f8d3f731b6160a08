package dev.hetmem.driver;

import java.util.Arrays;

/**
 * The copy phase of one migration, as structure-of-arrays: each operation moves {@code pages}
 * contiguous pages between host address {@code hostAddress} and frames starting at
 * {@code frame}, or zero-fills frames. Runs are already coalesced, so a driver issues one transfer
 * per operation.
 */
public final class CopyBatch {
    public static final byte TO_DEVICE = 0;
    public static final byte TO_HOST = 1;
    public static final byte ZERO = 2;

    private byte[] ops = new byte[16];
    private long[] hostAddresses = new long[16];
    private int[] frames = new int[16];
    private int[] pages = new int[16];
    private int size;
    private long bytes;

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
    }

    /** Appends one operation without merging it into the previous one (to split work across threads). */
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
    }

    private void grow() {
        int n = size * 2;
        ops = Arrays.copyOf(ops, n);
        hostAddresses = Arrays.copyOf(hostAddresses, n);
        frames = Arrays.copyOf(frames, n);
        pages = Arrays.copyOf(pages, n);
    }

    public int size() {
        return size;
    }

    public boolean isEmpty() {
        return size == 0;
    }

    public byte op(int i) {
        return ops[i];
    }

    public long hostAddress(int i) {
        return hostAddresses[i];
    }

    public int frame(int i) {
        return frames[i];
    }

    public int pages(int i) {
        return pages[i];
    }

    /** Bytes moved or filled by the whole batch. */
    public long bytes() {
        return bytes;
    }

    public void clear() {
        size = 0;
        bytes = 0;
    }
}
