package dev.hetmem;

/**
 * The attributes of a range, as KFD's SVM get-attributes answers them: each value if every page of
 * the range has it, else {@link #MIXED}. {@code location}: the node every page is resident on
 * alone, {@link #NONE} if no page is resident anywhere, {@link #MIXED} otherwise (pages on
 * different nodes, or on several at once). {@code preferredLocation}: a node, {@link #NONE} or
 * {@link #MIXED}. Granularity is in bytes, or {@link #MIXED}.
 */
public record RangeInfo(long granularity, Protection protection, Boolean readMostly, int preferredLocation, int location) {
    public static final int NONE = -1;
    public static final int MIXED = -2;

    /** Protection when uniform; null when the range mixes read-only and writable pages. */
    @Override
    public Protection protection() {
        return protection;
    }

    /** True or false when uniform; null when mixed. */
    @Override
    public Boolean readMostly() {
        return readMostly;
    }
}
