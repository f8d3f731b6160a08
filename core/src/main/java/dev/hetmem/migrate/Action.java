package dev.hetmem.migrate;

/** What a run of pages needs to reach the target node; the planner decides it, the phases act on it. */
enum Action {
    /** The target already holds the data; the other copies go and the target becomes the writer. */
    COLLAPSE,
    /** The data is copied from a holder to the target, which becomes the only holder and writer. */
    MOVE,
    /** Resident nowhere: the target gets zero-filled pages. */
    POPULATE,
    /** Resident nowhere: the target gets pages filled from a host buffer ({@link Run#bufferAddress}). */
    LOAD,
    /** The target gets a read-only copy from a holder; the holders keep theirs but lose write (READ_MOSTLY). */
    DUPLICATE,
    /** The target maps the host's copy in place (ACCESSED_BY): nothing is copied or allocated. */
    REMOTE_MAP,
    /**
     * The target holds the page already, in a frame a plain argument cannot use: its copy moves to a
     * new frame of the same device (the driver's {@code copyWithin}), holders and access unchanged,
     * the old frame freed. Contiguous placement's device-to-device move ({@link Placement}).
     */
    RELOCATE;

    /** Whether the run needs frames of its own on a device target. */
    boolean allocates() {
        return this != COLLAPSE && this != REMOTE_MAP;
    }

    /** Whether the run's data is copied from another holder (not RELOCATE: its copy stays within the target). */
    boolean copies() {
        return this == MOVE || this == DUPLICATE;
    }

    /** Whether the pages are resident nowhere before the run (no source, no mapping to restore). */
    boolean fresh() {
        return this == POPULATE || this == LOAD;
    }
}
