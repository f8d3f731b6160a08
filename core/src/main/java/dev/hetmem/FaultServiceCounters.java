package dev.hetmem;

/**
 * What the userfaultfd fault service of a memory did (see {@link HostFaultMode#USERFAULTFD}): the
 * faults it served, and every page it installed in a region's view, for its faults and for the
 * engine's moves home through it alike.
 *
 * @param faults       missing-page faults it served: reads, and writes to a page the view did not map
 * @param writeFaults  write-protect faults it served: writes to a page the view mapped read-only
 * @param pagesCopied  pages it installed from a device frame (a fault's, or a move home by the engine)
 * @param pagesMapped  pages it installed without a copy (zeros: a fault on an untouched page, a load's
 *                     populate, a page the host holds as zeros that a migration is about to copy)
 * @param errors       calls of its that failed (a fill, an unmap or write-protect change; a fault
 *                     outside every region); a failed fill of a fault's is tried again while its
 *                     thread waits, one of a migration's is not (the copy's read then faults)
 * @param stolen       pages it took home on its own, before the engine heard of it (a page it planned
 *                     twice, its run cut short or its fill tried again, counts twice)
 */
public record FaultServiceCounters(long faults, long writeFaults, long pagesCopied, long pagesMapped, long errors,
                                   long stolen) {
}
