package dev.hetmem;

/**
 * What the userfaultfd fault service of a memory did on its own (see {@link HostFaultMode#USERFAULTFD}).
 *
 * @param faults       read faults it resolved
 * @param writeFaults  write faults it resolved
 * @param pagesCopied  pages it copied home from a device frame
 * @param pagesMapped  pages it mapped without a copy (zeros, or a host copy made writable)
 * @param errors       faults it could not resolve (the faulting thread got SIGBUS)
 * @param stolen       pages it took home on its own, before the engine heard of it
 */
public record FaultServiceCounters(long faults, long writeFaults, long pagesCopied, long pagesMapped, long errors,
                                   long stolen) {
}
