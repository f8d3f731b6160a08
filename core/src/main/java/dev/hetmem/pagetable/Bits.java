package dev.hetmem.pagetable;

/** Range operations on the 512-bit page bitmaps of a block (eight longs). */
public final class Bits {
    private Bits() {}

    public static boolean get(long[] bits, int i) {
        return bits != null && (bits[i >>> 6] & (1L << i)) != 0;
    }

    /** Sets bit i; returns whether it changed. */
    public static boolean set(long[] bits, int i) {
        long m = 1L << i;
        long w = bits[i >>> 6];
        bits[i >>> 6] = w | m;
        return (w & m) == 0;
    }

    /** Clears bit i; returns whether it changed. */
    public static boolean clear(long[] bits, int i) {
        if (bits == null) {
            return false;
        }
        long m = 1L << i;
        long w = bits[i >>> 6];
        bits[i >>> 6] = w & ~m;
        return (w & m) != 0;
    }

    public static int count(long[] bits) {
        if (bits == null) {
            return 0;
        }
        int n = 0;
        for (long w : bits) {
            n += Long.bitCount(w);
        }
        return n;
    }

    /** Whether no bit is set: stops at the first set word (a commit asks this for every run it removes). */
    public static boolean isEmpty(long[] bits) {
        if (bits != null) {
            for (long w : bits) {
                if (w != 0) {
                    return false;
                }
            }
        }
        return true;
    }

    /** Counts set bits in [from, to). */
    public static int count(long[] bits, int from, int to) {
        if (bits == null || from >= to) {
            return 0;
        }
        int n = 0;
        for (int i = from; i < to; ) {
            int word = i >>> 6;
            int end = Math.min(to, (word + 1) << 6);
            long mask = rangeMask(i & 63, end - (word << 6));
            n += Long.bitCount(bits[word] & mask);
            i = end;
        }
        return n;
    }

    /** True when every bit in [from, to) is set. */
    public static boolean all(long[] bits, int from, int to) {
        if (from >= to) {
            return true;
        }
        if (bits == null) {
            return false;
        }
        for (int i = from; i < to; ) {
            int word = i >>> 6;
            int end = Math.min(to, (word + 1) << 6);
            long mask = rangeMask(i & 63, end - (word << 6));
            if ((bits[word] & mask) != mask) {
                return false;
            }
            i = end;
        }
        return true;
    }

    /** Sets bits [from, to); returns how many were clear before. */
    public static int setRange(long[] bits, int from, int to) {
        int changed = 0;
        for (int i = from; i < to; ) {
            int word = i >>> 6;
            int end = Math.min(to, (word + 1) << 6);
            long mask = rangeMask(i & 63, end - (word << 6));
            changed += Long.bitCount(~bits[word] & mask);
            bits[word] |= mask;
            i = end;
        }
        return changed;
    }

    /** Clears bits [from, to); returns how many were set before. */
    public static int clearRange(long[] bits, int from, int to) {
        if (bits == null) {
            return 0;
        }
        int changed = 0;
        for (int i = from; i < to; ) {
            int word = i >>> 6;
            int end = Math.min(to, (word + 1) << 6);
            long mask = rangeMask(i & 63, end - (word << 6));
            changed += Long.bitCount(bits[word] & mask);
            bits[word] &= ~mask;
            i = end;
        }
        return changed;
    }

    private static long rangeMask(int lo, int hiExclusive) {
        long hi = hiExclusive == 64 ? -1L : (1L << hiExclusive) - 1;
        return hi & (-1L << lo);
    }
}
