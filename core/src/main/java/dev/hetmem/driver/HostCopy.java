package dev.hetmem.driver;

import dev.hetmem.host.Libc;
import dev.hetmem.internal.NativeLibraryFile;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Copies between host addresses, for drivers whose device memory the CPU reaches (the emulated
 * device's pools, an OpenCL device's shared pools) and for the machine limits the benchmarks
 * measure: {@code memcpy}, or a streaming copy (non-temporal stores, {@code hetmem_copy.c}) for a
 * batch large enough that its destination would leave the caches anyway.
 *
 * <p>Why a batch streams: a migration writes each destination frame once, and nothing reads it
 * soon after on this CPU. Ordinary stores read every destination line in before writing it (three
 * memory transfers a byte); streaming stores write whole lines (two). glibc's {@code memcpy}
 * streams only above a per-call size (240 MiB on the development machine), so a batch of 4 KiB
 * or 2 MiB pages never does. There, 256 MiB in 2 MiB pieces on 2 threads copied at 16 GB/s with
 * {@code memcpy} and 23-32 GB/s streamed. Below {@link #STREAMING_MIN_BYTES} a batch uses
 * {@code memcpy}: a fault's few pages are read by the kernel that faulted right after, from the
 * cache that the ordinary stores left them in.
 *
 * <p>Streaming needs the project's native library, built with the project where a C compiler was
 * found; without it every copy is a {@code memcpy} ({@link #streamingUnavailableReason} says why).
 * The system property {@value #STREAMING_PROPERTY}{@code =false} turns streaming off (to compare).
 */
public final class HostCopy {
    /** A batch of at least this many bytes streams (where the library is there). */
    public static final long STREAMING_MIN_BYTES = 1L << 20;
    /** {@code false} turns streaming off for the JVM: every copy a {@code memcpy}. */
    public static final String STREAMING_PROPERTY = "hetmem.copy.streaming";

    private HostCopy() {
    }

    /** The library's entry points, or why there are none: loaded once, on first use. */
    private static final class Native {
        static final MethodHandle COPY;
        static final int WIDTH;
        static final String UNAVAILABLE;

        static {
            MethodHandle copy = null;
            int width = 0;
            String why = null;
            if ("false".equalsIgnoreCase(System.getProperty(STREAMING_PROPERTY, "true"))) {
                why = "turned off by -D" + STREAMING_PROPERTY + "=false";
            } else {
                try {
                    SymbolLookup lib = SymbolLookup.libraryLookup(NativeLibraryFile.path("hetmem_copy", "the streaming copy",
                            "the streaming copy was not built (no C compiler when the project was built): install gcc "
                                    + "('apt-get install gcc') and rebuild ('./hetmem build')"), Arena.global());
                    Linker linker = Linker.nativeLinker();
                    // critical: never blocks, never calls back, and a 4 KiB copy is shorter than a thread-state change
                    copy = linker.downcallHandle(lib.find("hm_copy_streaming").orElseThrow(),
                            FunctionDescriptor.ofVoid(JAVA_LONG, JAVA_LONG, JAVA_LONG), Linker.Option.critical(false));
                    MethodHandle w = linker.downcallHandle(lib.find("hm_copy_width").orElseThrow(),
                            FunctionDescriptor.of(JAVA_INT));
                    width = (int) w.invokeExact() != 0 ? 32 : 16;
                } catch (RuntimeException | IOException | Error e) {
                    copy = null;
                    why = e.getMessage() == null ? e.toString() : e.getMessage();
                } catch (Throwable t) {
                    copy = null;
                    why = t.toString();
                }
            }
            COPY = copy;
            WIDTH = width;
            UNAVAILABLE = why;
        }
    }

    /** Whether a batch of {@code batchBytes} bytes streams: large enough, and the library is there. */
    public static boolean streams(long batchBytes) {
        return batchBytes >= STREAMING_MIN_BYTES && Native.COPY != null;
    }

    /** Whether streaming copies are available in this JVM. */
    public static boolean streamingAvailable() {
        return Native.COPY != null;
    }

    /** Why copies never stream in this JVM, or null if they can. */
    public static String streamingUnavailableReason() {
        return Native.UNAVAILABLE;
    }

    /** The width in bytes of the streaming stores this CPU gets (32 with AVX2, 16 with SSE2), 0 if none. */
    public static int streamingStoreBytes() {
        return Native.WIDTH;
    }

    /**
     * Copies {@code bytes} from {@code src} to {@code dst} (which must not overlap), streamed where
     * {@code streaming} and the library is there, else by {@code memcpy}.
     *
     * @param streaming usually {@link #streams} of the batch this copy belongs to
     * @throws IllegalArgumentException if {@code bytes} is negative
     */
    public static void copy(long dst, long src, long bytes, boolean streaming) {
        if (bytes < 0) {
            throw new IllegalArgumentException("copy of " + bytes + " bytes: must not be negative");
        }
        MethodHandle h = streaming ? Native.COPY : null;
        if (h == null) {
            Libc.memcpy(dst, src, bytes);
            return;
        }
        try {
            h.invokeExact(dst, src, bytes);
        } catch (Throwable t) {
            throw new AssertionError(t);   // a critical downcall of a void function throws nothing
        }
    }
}
