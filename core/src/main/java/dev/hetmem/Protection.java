package dev.hetmem;

/** Whether a range may be written, from the host or from a device. */
public enum Protection {
    READ_ONLY,
    READ_WRITE
}
