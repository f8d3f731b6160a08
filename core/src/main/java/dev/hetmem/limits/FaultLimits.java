package dev.hetmem.limits;

import dev.hetmem.fault.FaultService;

import java.util.Optional;

/** The kernel's fault round trips, measured by the same C code that serves userfaultfd regions. */
public final class FaultLimits {
    private FaultLimits() {
    }

    /** What {@link #measure} measures. */
    public enum Kind {
        /** The kernel's own first-write fault on fresh anonymous memory. */
        MINOR_FAULT,
        /** A bare userfaultfd round trip: a read of a missing anonymous page, a handler installing the zero page. */
        UFFD_ANONYMOUS,
        /** The same with the page copied in by UFFDIO_COPY: the floor of the fault service's own path. */
        UFFD_COPY
    }

    /**
     * Nanoseconds of each of {@code pages} faults of the kind asked for, one fault per fresh
     * 4 KiB page.
     *
     * @param kind which fault round trip to measure
     * @param pages how many faults to take, one per 4 KiB page; positive
     * @return an array of {@code pages} durations in nanoseconds, in the order the faults were taken
     * @throws IllegalArgumentException if {@code pages} is not positive
     * @throws UnsupportedOperationException if the native fault library cannot be loaded on this machine
     * @throws IllegalStateException if the measurement fails (a userfaultfd kind where
     *         {@link #userfaultfdUnavailableReason()} says why not, for example)
     */
    public static long[] measure(Kind kind, int pages) {
        if (pages <= 0) {
            throw new IllegalArgumentException("page count " + pages + " must be positive");
        }
        return FaultService.benchLimit(switch (kind) {
            case MINOR_FAULT -> FaultService.Limit.MINOR_FAULT;
            case UFFD_ANONYMOUS -> FaultService.Limit.UFFD_ANONYMOUS;
            case UFFD_COPY -> FaultService.Limit.UFFD_COPY;
        }, pages);
    }

    /**
     * Why userfaultfd regions cannot run on this machine, or empty if they can.
     *
     * @return the reason, naming what is missing and how to enable it, or an empty optional
     */
    public static Optional<String> userfaultfdUnavailableReason() {
        return FaultService.unavailableReason();
    }
}
