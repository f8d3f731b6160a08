package dev.hetmem;

/** Who performs a migration's copies. */
public enum CopyPath {
    /** CPU threads of the memory's copy pool (the calling thread takes a share). */
    THREADS,
    /** The device's own copy engine where it has one (else the CPU threads); the caller only waits. */
    ENGINE
}
