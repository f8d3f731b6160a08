package dev.hetmem.phys;

import java.util.Arrays;

import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;

/**
 * A buddy allocator over a device's frames (4 KiB each), orders 0 (4 KiB) to 9 (2 MiB).
 *
 * <p>Frames are ints: 2^31 frames of 4 KiB cover 8 TiB of device memory. Free blocks are kept per
 * order in a bitmap (is the block starting at this frame free at this order?) and a stack of
 * candidates. Coalescing clears the buddy's bit without searching the stack; the stale stack
 * entry is dropped when it is popped. So allocation and free are O(orders), with no per-frame
 * objects: the bitmaps cost 2 bits per frame, 64 KiB for a 1 GiB device.
 *
 * <p>Any aligned part of an allocated block may be freed on its own (a 2 MiB block can come back
 * as 512 single frames as its pages leave one by one): buddies coalesce back to whole blocks.
 *
 * <p>Thread-safe; its monitor is a leaf lock (nothing else is taken while it is held).
 */
/* Its monitor is lock L9 (buddy), a leaf: docs/design.md, lock table, L9. */
public final class BuddyAllocator {
    public static final int MAX_ORDER = 9;
    public static final long FRAME_BYTES = PAGE_BYTES;

    private final int frames;
    private final long[][] freeBits = new long[MAX_ORDER + 1][];
    private final int[][] stacks = new int[MAX_ORDER + 1][];
    private final int[] stackSize = new int[MAX_ORDER + 1];
    private final int[] liveCount = new int[MAX_ORDER + 1];
    private long freeFrames;
    /** Successful allocations and frees so far: lets a caller tell whether anything moved while it looked. */
    private long changes;

    /** An allocator over frames [0, frames): all free. */
    public BuddyAllocator(long frames) {
        if (frames <= 0 || frames > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("device frame count " + frames + " must be in [1, " + Integer.MAX_VALUE
                    + "] (4 KiB frames: at most 8 TiB of device memory)");
        }
        this.frames = (int) frames;
        for (int o = 0; o <= MAX_ORDER; o++) {
            freeBits[o] = new long[(int) (((frames >>> o) + 64) >>> 6)];
            stacks[o] = new int[16];
        }
        synchronized (this) {
            int f = 0;
            while (f < this.frames) {
                int o = MAX_ORDER;
                while (o > 0 && ((f & ((1 << o) - 1)) != 0 || f + (1 << o) > this.frames)) {
                    o--;
                }
                insert(f, o);
                freeFrames += 1L << o;
                f += 1 << o;
            }
        }
    }

    public long totalFrames() {
        return frames;
    }

    public synchronized long freeFrames() {
        return freeFrames;
    }

    public long freeBytes() {
        return freeFrames() * FRAME_BYTES;
    }

    /** Bytes of bookkeeping this allocator holds (bitmaps and stacks). */
    public synchronized long metadataBytes() {
        long b = 0;
        for (int o = 0; o <= MAX_ORDER; o++) {
            b += 16 + 8L * freeBits[o].length + 16 + 4L * stacks[o].length;
        }
        return b;
    }

    /** How many allocations and frees have succeeded so far. */
    public synchronized long changes() {
        return changes;
    }

    /** Allocates 2^order contiguous frames aligned to their size; returns the first frame, or -1 if none. */
    public synchronized int allocate(int order) {
        checkOrder(order);
        for (int o = order; o <= MAX_ORDER; o++) {
            int f = pop(o);
            if (f >= 0) {
                while (o > order) {
                    o--;
                    insert(f + (1 << o), o);
                }
                freeFrames -= 1L << order;
                changes++;
                return f;
            }
        }
        return -1;
    }

    /** Frees 2^order frames starting at {@code frame}, which must be a part of an allocated block. */
    public synchronized void free(int frame, int order) {
        checkOrder(order);
        if (frame < 0 || (frame & ((1 << order) - 1)) != 0 || frame + (1 << order) > frames) {
            throw new IllegalArgumentException("frame " + frame + " order " + order
                    + " is not an aligned block inside [0, " + frames + ")");
        }
        if (overlapsFree(frame, order)) {
            throw new IllegalStateException("double free: frames " + frame + ".." + (frame + (1 << order) - 1)
                    + " are already free, in part or whole");
        }
        freeFrames += 1L << order;
        changes++;
        int f = frame;
        int o = order;
        while (o < MAX_ORDER) {
            int buddy = f ^ (1 << o);
            if (buddy + (1 << o) > frames || !isFree(o, buddy)) {
                break;
            }
            clear(o, buddy);
            f = Math.min(f, buddy);
            o++;
        }
        insert(f, o);
    }

    /** Frees any run of frames by splitting it into aligned power-of-two blocks. */
    public synchronized void freeRun(int frame, int count) {
        int f = frame;
        int left = count;
        while (left > 0) {
            int o = Math.min(MAX_ORDER, Integer.numberOfTrailingZeros(f | (1 << MAX_ORDER)));
            while ((1 << o) > left) {
                o--;
            }
            free(f, o);
            f += 1 << o;
            left -= 1 << o;
        }
    }

    private static void checkOrder(int order) {
        if (order < 0 || order > MAX_ORDER) {
            throw new IllegalArgumentException("order " + order + " outside [0, " + MAX_ORDER + "]");
        }
    }

    /** Whether any frame of the block is free: inside a free block of its order or above, or holding one below. */
    private boolean overlapsFree(int frame, int order) {
        for (int o = order; o <= MAX_ORDER; o++) {
            if (isFree(o, frame & -(1 << o))) {
                return true;
            }
        }
        for (int o = 0; o < order; o++) {
            int first = frame >>> o;
            int end = (frame + (1 << order)) >>> o;
            for (int i = first; i < end; ) {
                int word = i >>> 6;
                int stop = Math.min(end, (word + 1) << 6);
                long mask = (stop - (word << 6) == 64 ? -1L : (1L << (stop - (word << 6))) - 1) & (-1L << (i & 63));
                if ((freeBits[o][word] & mask) != 0) {
                    return true;
                }
                i = stop;
            }
        }
        return false;
    }

    private boolean isFree(int order, int frame) {
        int i = frame >>> order;
        return (freeBits[order][i >>> 6] & (1L << i)) != 0;
    }

    private void clear(int order, int frame) {
        int i = frame >>> order;
        freeBits[order][i >>> 6] &= ~(1L << i);
        liveCount[order]--;
    }

    private void insert(int frame, int order) {
        int i = frame >>> order;
        freeBits[order][i >>> 6] |= 1L << i;
        liveCount[order]++;
        int[] s = stacks[order];
        if (stackSize[order] == s.length) {
            compact(order);
            s = stacks[order];
            if (stackSize[order] == s.length) {
                s = stacks[order] = Arrays.copyOf(s, s.length * 2);
            }
        }
        s[stackSize[order]++] = frame;
    }

    private int pop(int order) {
        int[] s = stacks[order];
        while (stackSize[order] > 0) {
            int f = s[--stackSize[order]];
            if (isFree(order, f)) {
                clear(order, f);
                return f;
            }
        }
        return -1;
    }

    /** Drops stale entries (and duplicates) once the stack holds more of them than live ones. */
    private void compact(int order) {
        if (stackSize[order] < 2 * liveCount[order] + 64) {
            return;
        }
        int[] s = stacks[order];
        int n = 0;
        long[] seen = new long[freeBits[order].length];
        for (int k = 0; k < stackSize[order]; k++) {
            int f = s[k];
            int i = f >>> order;
            if (isFree(order, f) && (seen[i >>> 6] & (1L << i)) == 0) {
                seen[i >>> 6] |= 1L << i;
                s[n++] = f;
            }
        }
        stackSize[order] = n;
    }
}
