package dev.hetmem;

/** Why pages migrated; counters are kept per trigger. */
public enum Trigger {
    /** A host view or a device launch touched pages that were elsewhere. */
    FAULT,
    /**
     * A prefetch: {@link Advice#prefetch}, {@link UnifiedMemory#prefetch} or
     * {@link UnifiedMemory#prefetchAsync}, and a tiled launch bringing in its next tile.
     */
    PREFETCH,
    /** {@link UnifiedMemory#release(int)}: a device dropped every frame, pages went home. */
    RELEASE,
    /**
     * {@link UnifiedMemory#load}: pages a load to a device filled from a file through its ring (the
     * overlapped scheme). The other schemes read the file into the host's pages, which migrates
     * nothing, and then copy them to the device as a {@link #PREFETCH}, as a program does today.
     */
    LOAD,
    /** A full device made room: its coldest pages went home. */
    EVICTION;

    static final Trigger[] ALL = values();
}
