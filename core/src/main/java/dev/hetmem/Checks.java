package dev.hetmem;

import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;

/** Argument checks whose messages name the bad value and the limit it broke. */
final class Checks {
    private Checks() {}

    static void range(long offset, long length, long size, Object what) {
        if (offset < 0) {
            throw new IndexOutOfBoundsException("offset " + offset + " is negative (" + what + " has " + size + " bytes)");
        }
        if (length <= 0) {
            throw new IllegalArgumentException("length " + length + " must be positive (offset " + offset + ", "
                    + what + " has " + size + " bytes)");
        }
        if (offset >= size || length > size - offset) {
            throw new IndexOutOfBoundsException("range [" + offset + ", " + offset + " + " + length + ") is outside "
                    + what + " of " + size + " bytes");
        }
    }

    static long granularity(long bytes) {
        if (bytes < PAGE_BYTES || bytes > (1L << 30) || Long.bitCount(bytes) != 1) {
            throw new IllegalArgumentException("granularity " + bytes
                    + " must be a power of two between 4096 and 1073741824 bytes");
        }
        return bytes;
    }

    /** A duration setting between 1 ms and 1 hour, or an exception naming the setting and the value. */
    static java.time.Duration millisToHour(String what, java.time.Duration d) {
        java.util.Objects.requireNonNull(d, what);
        // compared as durations: toMillis() overflows for the longest ones, and toHours() truncates
        if (d.compareTo(java.time.Duration.ofMillis(1)) < 0 || d.compareTo(java.time.Duration.ofHours(1)) > 0) {
            throw new IllegalArgumentException(what + " " + d + " outside [1 ms, 1 h]");
        }
        return d;
    }
}
