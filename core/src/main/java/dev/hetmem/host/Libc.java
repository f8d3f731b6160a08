package dev.hetmem.host;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;

/**
 * The few libc calls hetmem needs, bound once through the foreign function API.
 *
 * <p>Calls that can fail capture {@code errno} in the same downcall, because any JVM activity
 * between the call and a separate {@code errno} read could overwrite it.
 * {@code memcpy} is bound as a critical call: it never blocks and never calls back, so the
 * thread-state transition a normal downcall pays on every 4 KiB copy is not needed.
 */
public final class Libc {
    public static final int PROT_NONE = 0;
    public static final int PROT_READ = 1;
    public static final int PROT_WRITE = 2;
    public static final int MAP_PRIVATE = 0x02;
    public static final int MAP_FIXED = 0x10;
    public static final int MAP_ANONYMOUS = 0x20;
    public static final int MAP_NORESERVE = 0x4000;
    public static final int MADV_DONTNEED = 4;
    public static final int MADV_FREE = 8;
    public static final int MADV_HUGEPAGE = 14;
    public static final int MADV_POPULATE_WRITE = 23;

    private static final MemoryLayout CALL_STATE = Downcalls.CALL_STATE;
    private static final Linker.Option CAPTURE_ERRNO = Downcalls.CAPTURE_ERRNO;

    private static final MethodHandle MMAP = bind("mmap",
            FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG), CAPTURE_ERRNO);
    private static final MethodHandle MUNMAP = bind("munmap",
            FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG), CAPTURE_ERRNO);
    private static final MethodHandle MADVISE = bind("madvise",
            FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_INT), CAPTURE_ERRNO);
    private static final MethodHandle MPROTECT = bind("mprotect",
            FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_INT), CAPTURE_ERRNO);
    private static final MethodHandle MEMCPY = bind("memcpy",
            FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG), Linker.Option.critical(false));
    private static final MethodHandle MEMSET = bind("memset",
            FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_LONG), Linker.Option.critical(false));
    private static final MethodHandle PROCESS_MADVISE = Downcalls.bindOptional("process_madvise",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_INT), CAPTURE_ERRNO).orElse(null);
    private static final MethodHandle PIDFD_OPEN = Downcalls.bindOptional("pidfd_open",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT), CAPTURE_ERRNO).orElse(null);
    private static final MethodHandle STRERROR = bind("strerror", FunctionDescriptor.of(ADDRESS, JAVA_INT));

    private Libc() {}

    private static MethodHandle bind(String name, FunctionDescriptor fd, Linker.Option... options) {
        return Downcalls.bind(name, fd, options);
    }

    /** Maps anonymous memory; returns its address or throws with errno's meaning. */
    public static long mmap(long addr, long length, int prot, int flags) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CALL_STATE);
            long r = (long) MMAP.invokeExact(state, addr, length, prot, flags, -1, 0L);
            if (r == -1L) {
                throw new NativeMemoryException("mmap", length, errno(state));
            }
            return r;
        } catch (NativeMemoryException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    public static void munmap(long addr, long length) {
        call(MUNMAP, "munmap", addr, length, 0, false);
    }

    public static void madvise(long addr, long length, int advice) {
        call(MADVISE, "madvise", addr, length, advice, true);
    }

    /** madvise that reports failure as a return value instead of an exception (for optional advice). */
    public static int tryMadvise(long addr, long length, int advice) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CALL_STATE);
            int r = (int) MADVISE.invokeExact(state, addr, length, advice);
            return r == 0 ? 0 : errno(state);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** The kernel's limit on iovecs per call (UIO_MAXIOV). */
    private static final int MAX_IOV = 1024;

    /**
     * Applies {@code advice} to many ranges at once: process_madvise on this process, which
     * (Linux 6.13+) accepts any advice for the caller itself and (6.15+) flushes the TLB once per
     * call instead of once per range. Falls back to one madvise per range where the kernel or libc
     * lacks it. Ranges are (address, length) pairs in {@code ranges}[0..2*count).
     */
    public static void madviseAll(long[] ranges, int count, int advice) {
        if (count == 0) {
            return;
        }
        if (count > 1 && ProcessMadvise.AVAILABLE) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment state = arena.allocate(CALL_STATE);
                MemorySegment iov = arena.allocate(16L * Math.min(count, MAX_IOV), 8);
                for (int start = 0; start < count; start += MAX_IOV) {
                    int n = Math.min(MAX_IOV, count - start);
                    long want = 0;
                    for (int i = 0; i < n; i++) {
                        iov.set(JAVA_LONG, 16L * i, ranges[2 * (start + i)]);
                        iov.set(JAVA_LONG, 16L * i + 8, ranges[2 * (start + i) + 1]);
                        want += ranges[2 * (start + i) + 1];
                    }
                    long r = (long) PROCESS_MADVISE.invokeExact(state, ProcessMadvise.PIDFD, iov.address(), (long) n, advice, 0);
                    if (r != want) {
                        // refused (older kernel) or partial: finish this chunk range by range
                        for (int i = 0; i < n; i++) {
                            madvise(ranges[2 * (start + i)], ranges[2 * (start + i) + 1], advice);
                        }
                    }
                }
                return;
            } catch (NativeMemoryException e) {
                throw e;
            } catch (Throwable t) {
                throw new AssertionError(t);
            }
        }
        for (int i = 0; i < count; i++) {
            madvise(ranges[2 * i], ranges[2 * i + 1], advice);
        }
    }

    /** This process's pidfd, opened once, and whether process_madvise accepts MADV_FREE on it. */
    private static final class ProcessMadvise {
        static final int PIDFD = open();
        static final boolean AVAILABLE = PIDFD >= 0 && probe();

        private static int open() {
            if (PIDFD_OPEN == null || PROCESS_MADVISE == null) {
                return -1;
            }
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment state = arena.allocate(CALL_STATE);
                return (int) PIDFD_OPEN.invokeExact(state, (int) ProcessHandle.current().pid(), 0);
            } catch (Throwable t) {
                return -1;
            }
        }

        /** Tries MADV_FREE through process_madvise on a scratch page: older kernels refuse it. */
        private static boolean probe() {
            long page = mmap(0, PAGE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment state = arena.allocate(CALL_STATE);
                MemorySegment iov = arena.allocate(16, 8);
                iov.set(JAVA_LONG, 0, page);
                iov.set(JAVA_LONG, 8, PAGE_BYTES);
                long r = (long) PROCESS_MADVISE.invokeExact(state, PIDFD, iov.address(), 1L, MADV_FREE, 0);
                return r == PAGE_BYTES;
            } catch (Throwable t) {
                return false;
            } finally {
                munmap(page, PAGE_BYTES);
            }
        }
    }

    /** Whether {@link #madviseAll} batches through process_madvise on this kernel. */
    public static boolean batchedMadvise() {
        return ProcessMadvise.AVAILABLE;
    }

    public static void mprotect(long addr, long length, int prot) {
        call(MPROTECT, "mprotect", addr, length, prot, true);
    }

    private static void call(MethodHandle h, String name, long addr, long length, int arg, boolean threeArgs) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CALL_STATE);
            int r = threeArgs ? (int) h.invokeExact(state, addr, length, arg) : (int) h.invokeExact(state, addr, length);
            if (r != 0) {
                throw new NativeMemoryException(name, length, errno(state));
            }
        } catch (NativeMemoryException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** Copies {@code length} bytes between non-overlapping native addresses. */
    public static void memcpy(long dst, long src, long length) {
        try {
            long ignored = (long) MEMCPY.invokeExact(dst, src, length);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    public static void memset(long dst, int value, long length) {
        try {
            long ignored = (long) MEMSET.invokeExact(dst, value, length);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    static int errno(MemorySegment state) {
        return Downcalls.errno(state);
    }

    public static String strerror(int errno) {
        try {
            MemorySegment s = (MemorySegment) STRERROR.invokeExact(errno);
            return s.reinterpret(256).getString(0);
        } catch (Throwable t) {
            return "errno " + errno;
        }
    }

    /** The whole address space as one segment, for reading and writing at raw addresses. */
    public static final MemorySegment EVERYTHING = MemorySegment.NULL.reinterpret(Long.MAX_VALUE);

    public static final ValueLayout.OfByte BYTE = ValueLayout.JAVA_BYTE;
}
