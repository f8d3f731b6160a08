package dev.hetmem;

/**
 * The attributes of a range, as KFD's SVM get-attributes answers them: each value if every page of
 * the range has it, else {@link #MIXED}. {@code location}: the node every page is resident on
 * alone, {@link #NONE} if no page is resident anywhere, {@link #MIXED} otherwise (pages on
 * different nodes, or on several at once). {@code preferredLocation}: a node, {@link #NONE} or
 * {@link #MIXED}. Granularity is in bytes, or {@link #MIXED}. Returned by
 * {@link Region#attributes(long, long)}.
 *
 * @param granularity       the granule size in bytes shared by every page, or {@link #MIXED}
 * @param protection        the protection shared by every page, or null when mixed
 * @param readMostly        whether read duplication is on for every page, or null when mixed
 * @param preferredLocation the preferred node shared by every page, {@link #NONE} when none is set,
 *                          or {@link #MIXED}
 * @param location          the one node every page is resident on, {@link #NONE} when no page is
 *                          resident, or {@link #MIXED}
 */
public record RangeInfo(long granularity, Protection protection, Boolean readMostly, int preferredLocation, int location) {
    /** No node: no page is resident, or no preferred location is set. */
    public static final int NONE = -1;
    /** The pages of the range disagree (for {@code location}: or some page is on several nodes). */
    public static final int MIXED = -2;

    /**
     * Protection when uniform; null when the range mixes read-only and writable pages.
     *
     * @return the range's protection, or null when mixed
     */
    @Override
    public Protection protection() {
        return protection;
    }

    /**
     * True or false when uniform; null when mixed.
     *
     * @return whether the range is advised read-mostly, or null when mixed
     */
    @Override
    public Boolean readMostly() {
        return readMostly;
    }
}
