package dev.hetmem;

/**
 * What happens to a page's host frame when the page leaves the host for a device.
 *
 * <p>{@link #FREE} (madvise MADV_FREE) is the default: the frame stays mapped and is reclaimed by
 * the kernel only under memory pressure, so a page that comes back soon is written into the same
 * frame without a page fault or a zeroing (measured by {@code ./hetmem bench migrate}). Until
 * reclaimed it still counts in the resident set, as LazyFree in smaps.
 * {@link #DONTNEED} gives the frame back at once (the resident set drops) and the next return pays
 * a fault and a zeroed page per 4 KiB. It is required where a later host touch must fault
 * (userfaultfd), because a lazily freed page still reads its old bytes.
 */
public enum HostReleasePolicy {
    /** madvise MADV_FREE: reclaimed lazily, a page that comes back soon reuses its frame. */
    FREE,
    /** madvise MADV_DONTNEED: the frame goes back at once. */
    DONTNEED
}
