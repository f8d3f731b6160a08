package dev.hetmem.loader;

/**
 * Gives a region's host pages their frames ahead of a writer: the kernel's MADV_POPULATE_WRITE for
 * plain host memory, the fault service's bulk install for a userfaultfd view (where each page
 * would otherwise be one round trip through the service).
 */
@FunctionalInterface
public interface HostPopulator {
    /**
     * Populates [offset, offset+bytes) of the region's host side; false when this kernel cannot
     * (the writer then faults pages in by itself).
     */
    boolean populate(long offset, long bytes);
}
