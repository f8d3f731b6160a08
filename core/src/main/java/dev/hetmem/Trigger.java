package dev.hetmem;

/** Why pages migrated; counters are kept per trigger. */
public enum Trigger {
    /** A host view or a device launch touched pages that were elsewhere. */
    FAULT,
    /** {@code advise(..., PREFETCH(node))}. */
    PREFETCH,
    /** {@link UnifiedMemory#release(int)}: a device dropped every frame, pages went home. */
    RELEASE;

    static final Trigger[] ALL = values();
}
