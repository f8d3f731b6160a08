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

    /**
     * The most frames: a frame number plus a largest block (and a buddy's) stays within an int, so
     * the int arithmetic of frame numbers never wraps (it did for counts within 512 of 2^31).
     */
    public static final long MAX_FRAMES = Integer.MAX_VALUE - 2L * (1 << MAX_ORDER) + 1;

    /** An allocator over frames [0, frames): all free. */
    public BuddyAllocator(long frames) {
        if (frames <= 0 || frames > MAX_FRAMES) {
            throw new IllegalArgumentException("device frame count " + frames + " must be in [1, " + MAX_FRAMES
                    + "] (4 KiB frames: just under 8 TiB of device memory)");
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

    /**
     * Allocates the largest free block of order at most {@code maxOrder} that needs no split of a
     * larger one (the holes that are there, largest first, so that whole 2 MiB blocks stay whole);
     * with none free at those orders, 2^maxOrder frames split from the smallest larger block. One
     * call where probing order by order would take the lock up to ten times on a fragmented device.
     *
     * @return the first frame shifted left by 4 with the order in the low 4 bits, or -1 if no frame is free
     */
    public synchronized long allocateUpTo(int maxOrder) {
        checkOrder(maxOrder);
        for (int o = maxOrder; o >= 0; o--) {
            if (liveCount[o] > 0) {
                int f = pop(o);
                if (f >= 0) {
                    freeFrames -= 1L << o;
                    changes++;
                    return ((long) f << 4) | o;
                }
            }
        }
        int f = allocate(maxOrder);
        return f < 0 ? -1 : ((long) f << 4) | maxOrder;
    }

    /**
     * Allocates {@code count} consecutive frames (any count, not only powers of two) that do not
     * cross a multiple of {@code boundary}: the placement a plain kernel argument needs, whose
     * pages the kernel reaches by one base pointer. Chooses the smallest free stretch that holds
     * them (best fit, so that long stretches stay whole for long arguments) and gives the rest of
     * that stretch back. A rare path (an argument's first placement, or after fragmentation): it
     * walks every free block, O(free blocks).
     *
     * @param count frames wanted, positive
     * @param boundary the run may not cross a multiple of this many frames (a pool's end); positive
     * @return the first frame of the run, or -1 if no free stretch holds it
     */
    public synchronized int allocateContiguous(int count, int boundary) {
        if (count <= 0 || boundary <= 0) {
            throw new IllegalArgumentException("contiguous run of " + count + " frames within boundaries of " + boundary
                    + ": both must be positive");
        }
        if (count > boundary || count > freeFrames) {
            return -1;
        }
        long[] stretches = freeStretches();
        int best = -1;
        long bestLength = Long.MAX_VALUE;
        for (int i = 0; i < stretches.length; i += 2) {
            long start = stretches[i];
            long end = stretches[i + 1];
            long s = start;
            if (s / boundary != (s + count - 1) / boundary) {
                s = (s / boundary + 1) * boundary;   // the run may not cross a boundary: start at the next one
            }
            if (s + count <= end && end - start < bestLength) {
                best = (int) s;
                bestLength = end - start;
            }
        }
        if (best >= 0) {
            take(best, count);
        }
        return best;
    }

    /**
     * Allocates exactly frames [first, first + count) if every one of them is free (compaction
     * claims a window's frames so). O(orders) per free block the range spans: O(count · orders)
     * when it is free in single frames.
     *
     * @return whether the frames were free and are now allocated; false changes nothing
     */
    public synchronized boolean allocateRange(int first, int count) {
        if (count <= 0 || first < 0 || (long) first + count > frames) {
            throw new IllegalArgumentException("frames [" + first + ", " + ((long) first + count) + ") are not a "
                    + "non-empty range inside [0, " + frames + ")");
        }
        long f = first;
        long end = (long) first + count;
        while (f < end) {
            long blockEnd = -1;
            for (int o = 0; o <= MAX_ORDER; o++) {
                int start = (int) f & -(1 << o);
                if (isFree(o, start)) {
                    blockEnd = (long) start + (1L << o);
                    break;
                }
            }
            if (blockEnd < 0) {
                return false;   // f lies in no free block
            }
            f = blockEnd;
        }
        take(first, count);
        return true;
    }

    /** The free stretches now, maximal and in address order: {start0, end0, start1, end1, ...}. O(free blocks). */
    public synchronized long[] freeStretchesNow() {
        return freeStretches();
    }

    /** Free stretches, maximal and in address order: {start0, end0, start1, end1, ...}. */
    private long[] freeStretches() {
        int n = 0;
        for (int o = 0; o <= MAX_ORDER; o++) {
            n += liveCount[o];
        }
        long[] blocks = new long[n];
        int k = 0;
        for (int o = 0; o <= MAX_ORDER; o++) {
            long[] bits = freeBits[o];
            for (int w = 0; w < bits.length; w++) {
                for (long word = bits[w]; word != 0; word &= word - 1) {
                    long frame = ((long) (w << 6) + Long.numberOfTrailingZeros(word)) << o;
                    blocks[k++] = frame << 4 | o;   // sorts by frame; the order rides in the low bits
                }
            }
        }
        Arrays.sort(blocks, 0, k);
        long[] out = new long[2 * k];
        int m = 0;
        for (int i = 0; i < k; i++) {
            long start = blocks[i] >>> 4;
            long end = start + (1L << (blocks[i] & 15));
            if (m > 0 && out[m - 1] == start) {
                out[m - 1] = end;
            } else {
                out[m++] = start;
                out[m++] = end;
            }
        }
        return Arrays.copyOf(out, m);
    }

    /** Takes frames [first, first + count), all free: their free blocks leave, what is left of them comes back. */
    private void take(int first, int count) {
        long end = (long) first + count;
        for (int o = 0; o <= MAX_ORDER; o++) {
            long[] bits = freeBits[o];
            int lo = (first >>> o) >>> 6;
            int hi = (int) Math.min(bits.length - 1, ((end - 1) >>> o) >>> 6);
            for (int w = lo; w <= hi; w++) {
                for (long word = bits[w]; word != 0; word &= word - 1) {
                    int frame = ((w << 6) + Long.numberOfTrailingZeros(word)) << o;
                    long blockEnd = (long) frame + (1L << o);
                    if (blockEnd <= first || frame >= end) {
                        continue;
                    }
                    clear(o, frame);
                    freeFrames -= 1L << o;
                    if (frame < first) {
                        freeRun(frame, first - frame);
                    }
                    if (blockEnd > end) {
                        freeRun((int) end, (int) (blockEnd - end));
                    }
                }
            }
        }
        changes++;
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

    /**
     * Frees any run of frames by splitting it into aligned power-of-two blocks. A block that holds a
     * frame free already (a double free) is freed frame by frame instead, so that its other frames and
     * the rest of the run still go back; the first failure is thrown once all were tried (it stopped
     * at the first, and every frame after it stayed allocated for good).
     */
    public synchronized void freeRun(int frame, int count) {
        RuntimeException first = null;
        int f = frame;
        int left = count;
        while (left > 0) {
            int o = Math.min(MAX_ORDER, Integer.numberOfTrailingZeros(f | (1 << MAX_ORDER)));
            while ((1 << o) > left) {
                o--;
            }
            try {
                free(f, o);   // checks before it changes anything: a refused block is untouched
            } catch (IllegalStateException doubleFree) {
                first = first == null ? doubleFree : first;
                for (int g = f; o > 0 && g < f + (1 << o); g++) {
                    if (!overlapsFree(g, 0)) {
                        free(g, 0);
                    }
                }
            } catch (IllegalArgumentException outside) {
                first = first == null ? outside : first;   // not a block of this allocator: nothing to free
            }
            f += 1 << o;
            left -= 1 << o;
        }
        if (first != null) {
            throw first;
        }
    }

    /**
     * Frees {@code frames[0..count)}, any frame numbers, one {@link #freeRun} per stretch of
     * consecutive ones, under one hold of the lock. A stretch that cannot be freed (a double free)
     * does not stop the others; the first such failure is thrown after all were tried.
     */
    public synchronized void freeAll(int[] frames, int count) {
        RuntimeException first = null;
        for (int i = 0, n; i < count; i += n) {
            n = 1;
            while (i + n < count && frames[i + n] == frames[i] + n) {
                n++;
            }
            try {
                freeRun(frames[i], n);
            } catch (RuntimeException e) {
                first = first == null ? e : first;
            }
        }
        if (first != null) {
            throw first;
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
