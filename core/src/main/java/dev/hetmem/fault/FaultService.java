package dev.hetmem.fault;

import dev.hetmem.FaultServiceCounters;
import dev.hetmem.UserfaultfdUnavailableException;
import dev.hetmem.host.Libc;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;

/**
 * One userfaultfd and the native thread that serves its faults, for one memory. Regions in
 * userfaultfd mode are created through it ({@link #createRegion}) and are served by it until
 * destroyed. The thread is C code that never enters the JVM; see {@code hetmem_uffd.c} for why
 * that is what makes Java-code faults safe.
 */
/* Its monitor is lock L14 (fault service): docs/design.md, lock table, L14. */
public final class FaultService implements AutoCloseable {

    private static final int E_SYSCALL = -1;
    private static final int E_API = -2;
    private static final int E_FEATURES = -3;
    /** Regions one service serves at once: MAX_REGIONS in hetmem_uffd_layout.h (StateWordLayoutTest checks it). */
    static final int MAX_REGIONS = 1024;
    /** What region creation fails with when {@link #MAX_REGIONS} are live. */
    private static final int EMFILE = 24;

    private final FaultLibrary lib;
    private final MemorySegment handle;
    private boolean closed;

    private FaultService(FaultLibrary lib, MemorySegment handle) {
        this.lib = lib;
        this.handle = handle;
    }

    /** Why the mode cannot run on this machine, or empty if it can. */
    public static Optional<String> unavailableReason() {
        FaultLibrary lib;
        try {
            lib = FaultLibrary.get();
        } catch (UnsupportedOperationException e) {
            return Optional.of(e.getMessage());
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment err = a.allocate(JAVA_INT);
            int code = (int) lib.probe.invokeExact(err);
            return code == 0 ? Optional.empty() : Optional.of(explain(code, err.get(JAVA_INT, 0)));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Starts a service, or throws saying why the mode cannot run here and how to enable it. */
    public static FaultService open() {
        FaultLibrary lib;
        try {
            lib = FaultLibrary.get();
        } catch (UnsupportedOperationException e) {
            throw new UserfaultfdUnavailableException("userfaultfd host faults unavailable: " + e.getMessage());
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment code = a.allocate(JAVA_INT);
            MemorySegment err = a.allocate(JAVA_INT);
            MemorySegment h = (MemorySegment) lib.serviceOpen.invokeExact(code, err);
            if (h.address() == 0) {
                int c = code.get(JAVA_INT, 0);
                int e = err.get(JAVA_INT, 0);
                throw new UserfaultfdUnavailableException("userfaultfd host faults unavailable: "
                        + (c == 0 || c < E_FEATURES ? "the fault service thread could not start (" + errnoName(e) + ")"
                        : explain(c, e)));
            }
            return new FaultService(lib, h);
        } catch (UserfaultfdUnavailableException e) {
            throw e;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    private static String explain(int code, int errno) {
        if (code == E_SYSCALL) {
            if (errno == 38) {
                return "this kernel has no userfaultfd (built without CONFIG_USERFAULTFD)";
            }
            return "this process may not use userfaultfd (userfaultfd(2) failed with " + errnoName(errno)
                    + " and /dev/userfaultfd could not be opened): run as root, give this user read and write "
                    + "access to /dev/userfaultfd, or allow it for all users with 'sysctl vm.unprivileged_userfaultfd=1'"
                    + " (now " + sysctl() + ")";
        }
        if (code == E_FEATURES) {
            return "this kernel's userfaultfd cannot register anonymous memory for missing-page and write-protect "
                    + "faults (Linux 5.7 or newer is needed; this is " + System.getProperty("os.version") + ")";
        }
        if (code == E_API) {
            return "the userfaultfd API handshake failed (" + errnoName(errno) + ")";
        }
        return "unknown failure " + code + " (" + errnoName(errno) + ")";
    }

    private static String sysctl() {
        try {
            return Files.readString(Path.of("/proc/sys/vm/unprivileged_userfaultfd")).strip();
        } catch (Exception e) {
            return "unreadable";
        }
    }

    /** The C library's words for an errno, with its number (the project's one errno describer). */
    static String errnoName(int errno) {
        return Libc.strerror(errno) + " (errno " + errno + ")";
    }

    static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) {
            return r;
        }
        if (t instanceof Error e) {
            throw e;
        }
        return new IllegalStateException(t);
    }

    /**
     * A new region of {@code bytes} (at least one page is mapped), faults bringing home
     * {@code granulePages} pages around the address touched.
     */
    public synchronized HostMirror createRegion(long bytes, int granulePages, long tablePages) {
        if (closed) {
            throw new IllegalStateException("fault service closed");
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(JAVA_LONG, 3);
            MemorySegment err = a.allocate(JAVA_INT);
            MemorySegment r = (MemorySegment) lib.regionCreate.invokeExact(handle, Math.max(bytes, PAGE_BYTES),
                    granulePages, out, err);
            if (r.address() == 0) {
                int errno = err.get(JAVA_INT, 0);
                if (errno == EMFILE) {
                    // the service's own table is full, not the process's file descriptors
                    throw new IllegalStateException("could not create a userfaultfd region of " + bytes + " bytes: a memory "
                            + "in userfaultfd mode serves at most " + MAX_REGIONS + " live regions at once; free some, "
                            + "allocate fewer and larger ones, or use host views (HostFaultMode.HOST_VIEWS)");
                }
                throw new IllegalStateException("could not create a userfaultfd region of " + bytes + " bytes: "
                        + errnoName(errno));
            }
            return new HostMirror(lib, r, out.getAtIndex(JAVA_LONG, 0), out.getAtIndex(JAVA_LONG, 1),
                    out.getAtIndex(JAVA_LONG, 2), Math.max(bytes, PAGE_BYTES), tablePages);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public FaultServiceCounters counters() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(JAVA_LONG, 8);
            synchronized (this) {
                if (closed) {
                    return new FaultServiceCounters(0, 0, 0, 0, 0, 0);
                }
                lib.serviceCounters.invokeExact(handle, out);
            }
            long[] c = out.toArray(JAVA_LONG);
            return new FaultServiceCounters(c[0], c[1], c[2], c[3], c[4], c[5]);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Stops the thread and closes the userfaultfd; every region must have been destroyed. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            lib.serviceClose.invokeExact(handle);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** What {@link #benchLimit} measures. */
    public enum Limit {
        /** The kernel's own first-write fault on fresh anonymous memory. */
        MINOR_FAULT,
        /** A bare userfaultfd round trip: a read of a missing anonymous page, a handler installing the zero page. */
        UFFD_ANONYMOUS,
        /**
         * The same with the page copied in by UFFDIO_COPY instead: what the service itself does for
         * a page coming home, with none of its bookkeeping. The floor of the service's own path.
         */
        UFFD_COPY
    }

    /** Limits for {@code hetmem bench fault}: nanoseconds of each of {@code pages} faults of the kind asked for. */
    public static long[] benchLimit(Limit limit, int pages) {
        FaultLibrary lib = FaultLibrary.get();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(JAVA_LONG, pages);
            int rc = limit == Limit.MINOR_FAULT
                    ? (int) lib.benchMinor.invokeExact(pages, out)
                    : (int) lib.benchRaw.invokeExact(pages, limit == Limit.UFFD_COPY ? 1 : 0, out);
            if (rc != 0) {
                throw new IllegalStateException(limit + " measurement failed: " + errnoName(-rc));
            }
            return out.toArray(JAVA_LONG);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }
}
