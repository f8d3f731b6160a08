package dev.hetmem;

/**
 * Whether a range may be written, from the host or from a device. Set with
 * {@link Region#protect(long, long, Protection)}, read with {@link Region#protection(long)}.
 */
public enum Protection {
    /** Reads only: a write view, a written kernel argument or a device write is refused. */
    READ_ONLY,
    /** Reads and writes (the default of every page). */
    READ_WRITE
}
