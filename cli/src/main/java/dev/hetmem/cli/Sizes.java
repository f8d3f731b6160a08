package dev.hetmem.cli;

/** Byte sizes as people write them: 4096, 64K, 2M, 1G, 3G (binary units). */
final class Sizes {
    private Sizes() {}

    /** A size written correctly but beyond 2^63 - 1 bytes: an option with a smaller limit of its own names that. */
    static final class TooLarge extends IllegalArgumentException {
        TooLarge(String message) {
            super(message);
        }
    }

    static long parse(String s) {
        String t = s.trim().toUpperCase(java.util.Locale.ROOT);   // "kib" in any locale (Turkish upper-cases i to İ)
        long mult = 1;
        if (t.endsWith("IB")) {
            t = t.substring(0, t.length() - 2);
        } else if (t.endsWith("B") && t.length() > 1 && !Character.isDigit(t.charAt(t.length() - 2))) {
            t = t.substring(0, t.length() - 1);
        }
        if (!t.isEmpty()) {
            switch (t.charAt(t.length() - 1)) {
                case 'K' -> mult = 1L << 10;
                case 'M' -> mult = 1L << 20;
                case 'G' -> mult = 1L << 30;
                case 'T' -> mult = 1L << 40;
                default -> mult = 1;
            }
            if (mult != 1) {
                t = t.substring(0, t.length() - 1);
            }
        }
        try {
            long v = Long.parseLong(t);
            if (v < 0) {
                throw new IllegalArgumentException("size " + s + " is outside [0, " + Long.MAX_VALUE + "] bytes");
            }
            if (v > Long.MAX_VALUE / mult) {
                throw new TooLarge("size " + s + " is outside [0, " + Long.MAX_VALUE + "] bytes");
            }
            return v * mult;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("not a size: " + s + " (examples: 4096, 64K, 2M, 1G)");
        }
    }

    /**
     * A size as the user wrote it, where a unit writes it whole ({@code 1T (1099511627776 bytes)}),
     * else the bytes alone: for messages about a value the user gave.
     */
    static String shown(long b) {
        String f = format(b);
        return f.equals(Long.toString(b)) ? f : f + " (" + b + " bytes)";
    }

    static String format(long b) {
        if (b >= 1L << 40 && b % (1L << 40) == 0) {
            return (b >> 40) + "T";
        }
        if (b >= 1L << 30 && b % (1L << 30) == 0) {
            return (b >> 30) + "G";
        }
        if (b >= 1L << 20 && b % (1L << 20) == 0) {
            return (b >> 20) + "M";
        }
        if (b >= 1L << 10 && b % (1L << 10) == 0) {
            return (b >> 10) + "K";
        }
        return Long.toString(b);
    }
}
