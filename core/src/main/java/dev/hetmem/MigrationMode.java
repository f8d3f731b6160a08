package dev.hetmem;

/** How the migration engine runs its phases. */
public enum MigrationMode {
    /** Each phase over the whole batch: one invalidation, one allocation pass, one copy phase (the default). */
    BATCHED,
    /** Every phase page by page, as the kernel's migrate_pages did before batching: kept only to measure against. */
    VANILLA
}
