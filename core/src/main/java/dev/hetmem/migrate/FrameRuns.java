package dev.hetmem.migrate;

/**
 * Stretches of consecutive frame numbers in a run's frame array: every phase that hands frames to
 * a driver (copy, map, free) does it one contiguous stretch per call.
 */
final class FrameRuns {
    private FrameRuns() {
    }

    /** How many of {@code frames[i..count)} continue {@code frames[i]} one by one (at least 1). */
    static int length(int[] frames, int i, int count) {
        int n = 1;
        while (i + n < count && frames[i + n] == frames[i] + n) {
            n++;
        }
        return n;
    }
}
