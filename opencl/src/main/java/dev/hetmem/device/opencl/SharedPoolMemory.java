package dev.hetmem.device.opencl;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Host memory a pool buffer is created over ({@code CL_MEM_USE_HOST_PTR}) on a device that shares
 * the host's memory (a CPU device: PoCL's): mapped anonymous, so untouched frames cost nothing
 * until used, and released only after the buffer is. The copy engine then moves pages with CPU
 * copies into it instead of OpenCL transfers.
 *
 * <p>Why: PoCL's CPU device runs a transfer only when its worker threads are free of the running
 * kernel's work-groups (measured: a 4 MiB write enqueued on a second queue 0.03 ms after a 1.15 s
 * kernel started completed at the kernel's end in 3 of 4 trials), so a tiled launch's next window
 * waited for every kernel. A CPU copy into the shared memory runs while the kernel does, as the
 * copies of a device with its own copy engine would. PoCL uses such a buffer's host memory as the
 * device's, coherently both ways with no map or unmap (checked in C: a host store between two
 * kernels was seen by the second, and the kernels' stores by the host).
 */
final class SharedPoolMemory {
    private static final long PROT_READ_WRITE = 3;
    private static final int MAP_PRIVATE_ANONYMOUS = 0x22;
    private static final int MADV_HUGEPAGE = 14;
    private static final MethodHandle MMAP;
    private static final MethodHandle MUNMAP;
    private static final MethodHandle MADVISE;

    static {
        Linker linker = Linker.nativeLinker();
        var libc = linker.defaultLookup();
        MMAP = linker.downcallHandle(libc.find("mmap").orElseThrow(),
                FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG));
        MUNMAP = linker.downcallHandle(libc.find("munmap").orElseThrow(), FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG));
        MADVISE = linker.downcallHandle(libc.find("madvise").orElseThrow(),
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));
    }

    private SharedPoolMemory() {
    }

    /** {@code bytes} of fresh host memory (reading as zeros), for a pool of that size; throws if the kernel refuses. */
    static MemorySegment map(long bytes) {
        MemorySegment m;
        try {
            m = (MemorySegment) MMAP.invokeExact(MemorySegment.NULL, bytes, (int) PROT_READ_WRITE, MAP_PRIVATE_ANONYMOUS, -1, 0L);
        } catch (Throwable t) {
            throw OpenClContext.rethrow(t);
        }
        if (m.address() == -1L || m.address() == 0) {
            throw new IllegalStateException("mmap of " + bytes + " bytes of host memory for an OpenCL pool failed");
        }
        m = m.reinterpret(bytes);
        try {
            int ignored = (int) MADVISE.invokeExact(m, bytes, MADV_HUGEPAGE);   // huge pages where the kernel has them
        } catch (Throwable t) {
            throw OpenClContext.rethrow(t);
        }
        return m;
    }

    /** Gives {@code m} back; only once no buffer is created over it any more. */
    static void unmap(MemorySegment m) {
        try {
            int ignored = (int) MUNMAP.invokeExact(m, m.byteSize());
        } catch (Throwable t) {
            throw OpenClContext.rethrow(t);
        }
    }
}
