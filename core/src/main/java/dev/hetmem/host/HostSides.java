package dev.hetmem.host;

import dev.hetmem.FaultServiceCounters;
import dev.hetmem.HostFaultMode;
import dev.hetmem.HostReleasePolicy;

/**
 * Makes each region's {@link HostSide}: one per memory, chosen when the memory is built (host views,
 * or userfaultfd with its fault service), closed with the memory after every region is freed.
 */
public interface HostSides extends AutoCloseable {

    /** A new region's host side: {@code bytes} long, faults taken {@code granulePages} at a time. */
    HostSide create(long bytes, int granulePages);

    /** How host code reaches regions made here. */
    HostFaultMode mode();

    /** What a fault service did on its own, or null where there is none. */
    FaultServiceCounters counters();

    @Override
    void close();

    /** Bytes of host frames kept for release over all regions now (0 where none are kept). */
    long retainedBytes();

    /** Releases every kept host frame now ({@link RetainedFrames#trim()}); nothing where none are kept. */
    void trim();

    /**
     * Host views over anonymous mappings whose frames go back to the kernel by {@code policy}, by the
     * 2 MiB chunk once more than {@code retainBudget} bytes of them are kept ({@link RetainedFrames}).
     */
    static HostSides hostViews(HostReleasePolicy policy, long retainBudget) {
        RetainedFrames retained = new RetainedFrames(retainBudget);
        return new HostSides() {
            @Override
            public HostSide create(long bytes, int granulePages) {
                return new HostViewSide(HostMapping.reserve(bytes, policy), retained);
            }

            @Override
            public long retainedBytes() {
                return retained.retainedBytes();
            }

            @Override
            public void trim() {
                retained.trim();
            }

            @Override
            public HostFaultMode mode() {
                return HostFaultMode.HOST_VIEWS;
            }

            @Override
            public FaultServiceCounters counters() {
                return null;
            }

            @Override
            public void close() {
                retained.close();
            }
        };
    }
}
