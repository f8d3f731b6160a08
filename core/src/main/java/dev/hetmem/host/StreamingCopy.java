package dev.hetmem.host;

import dev.hetmem.internal.NativeLibraryFile;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The streaming copy's entry points ({@code src/main/c/hetmem_copy.c}: non-temporal stores, why in
 * {@link dev.hetmem.driver.HostCopy}), or {@code memcpy} where the library is not there. Loaded
 * once, on first use; the system property {@value #PROPERTY}{@code =false} keeps it unloaded.
 */
public final class StreamingCopy {
    /** {@code false} turns streaming off for the JVM: every copy a {@code memcpy}. */
    public static final String PROPERTY = "hetmem.copy.streaming";

    private StreamingCopy() {
    }

    private static final class Native {
        static final MethodHandle BY_ADDRESS;
        static final MethodHandle BY_SEGMENT;
        /** The SSE2 loop whatever the CPU has ({@code hm_test_copy_sse2}), for tests; null where there is none. */
        static final MethodHandle NARROW;
        static final int WIDTH;
        static final String UNAVAILABLE;

        static {
            MethodHandle byAddress = null;
            MethodHandle bySegment = null;
            MethodHandle narrow = null;
            int width = 0;
            String why = null;
            if ("false".equalsIgnoreCase(System.getProperty(PROPERTY, "true"))) {
                why = "turned off by -D" + PROPERTY + "=false";
            } else {
                try {
                    SymbolLookup lib = SymbolLookup.libraryLookup(NativeLibraryFile.path("hetmem_copy", "the streaming copy",
                            "the streaming copy was not built (no C compiler when the project was built): install gcc "
                                    + "('apt-get install gcc') and rebuild ('./hetmem build')"), Arena.global());
                    MemorySegment copy = find(lib, "hm_copy_streaming");
                    Linker linker = Linker.nativeLinker();
                    // critical: never blocks, never calls back, and a 4 KiB copy is shorter than a thread-state change
                    byAddress = linker.downcallHandle(copy, FunctionDescriptor.ofVoid(JAVA_LONG, JAVA_LONG, JAVA_LONG),
                            Linker.Option.critical(false));
                    // segments passed as addresses stay alive for the call: their arena cannot close under it
                    bySegment = linker.downcallHandle(copy, FunctionDescriptor.ofVoid(ADDRESS, ADDRESS, JAVA_LONG),
                            Linker.Option.critical(false));
                    width = (int) linker.downcallHandle(find(lib, "hm_copy_width"), FunctionDescriptor.of(JAVA_INT))
                            .invokeExact() != 0 ? 32 : 16;
                    narrow = linker.downcallHandle(find(lib, "hm_test_copy_sse2"),
                            FunctionDescriptor.ofVoid(JAVA_LONG, JAVA_LONG, JAVA_LONG));
                } catch (Throwable e) {
                    // whatever went wrong (even running out of memory while extracting the library), copies
                    // fall back to memcpy: a class whose initializer threw would fail every copy after it
                    byAddress = null;
                    bySegment = null;
                    narrow = null;
                    why = e.getMessage() == null ? e.toString() : e.getMessage();
                }
            }
            BY_ADDRESS = byAddress;
            BY_SEGMENT = bySegment;
            NARROW = narrow;
            WIDTH = width;
            UNAVAILABLE = why;
        }

        private static MemorySegment find(SymbolLookup lib, String name) {
            return lib.find(name).orElseThrow(() -> new UnsatisfiedLinkError("libhetmem_copy has no " + name + ": stale build?"));
        }
    }

    /** Whether copies can stream in this JVM. */
    public static boolean available() {
        return Native.BY_ADDRESS != null;
    }

    /** Why copies never stream in this JVM, or null if they can. */
    public static String unavailableReason() {
        return Native.UNAVAILABLE;
    }

    /** The width in bytes of the streaming stores this CPU gets (32 with AVX2, 16 with SSE2), 0 if none. */
    public static int storeBytes() {
        return Native.WIDTH;
    }

    /**
     * As {@link #copy(long, long, long, boolean)} streamed, with the 16-byte (SSE2) stores whatever
     * the CPU has, for tests: a machine with AVX2 never runs that loop otherwise.
     *
     * @throws IllegalStateException if the library is not there
     */
    public static void copyWithSse2Stores(long dst, long src, long bytes) {
        if (bytes < 0) {
            throw new IllegalArgumentException("copy of " + bytes + " bytes: must not be negative");
        }
        if (Native.NARROW == null) {
            throw new IllegalStateException("the streaming copy is not available: " + Native.UNAVAILABLE);
        }
        try {
            Native.NARROW.invokeExact(dst, src, bytes);
        } catch (Throwable t) {
            throw new AssertionError(t);   // a downcall of a void function throws nothing
        }
    }

    /**
     * Copies {@code bytes} from {@code src} to {@code dst}, raw addresses that must not overlap,
     * streamed where {@code streaming} and the library is there, else by {@code memcpy}.
     */
    public static void copy(long dst, long src, long bytes, boolean streaming) {
        if (bytes < 0) {
            throw new IllegalArgumentException("copy of " + bytes + " bytes: must not be negative");
        }
        MethodHandle h = streaming ? Native.BY_ADDRESS : null;
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

    /**
     * Copies all of {@code src} into {@code dst} (segments of the same size that do not overlap),
     * streamed where {@code streaming}, the library is there and both are native; else as
     * {@link MemorySegment#copy}. Both segments stay alive for the copy: a copy racing their arena's
     * close fails on the closed segment, or holds the close off, and never touches memory that was
     * unmapped.
     */
    public static void copy(MemorySegment dst, MemorySegment src, boolean streaming) {
        if (dst.byteSize() != src.byteSize()) {
            throw new IllegalArgumentException("copy of " + src.byteSize() + " bytes into a segment of " + dst.byteSize());
        }
        if (dst.isReadOnly()) {
            throw new IllegalArgumentException("copy into a read-only segment");
        }
        MethodHandle h = streaming && dst.isNative() && src.isNative() ? Native.BY_SEGMENT : null;
        if (h == null) {
            MemorySegment.copy(src, 0, dst, 0, src.byteSize());
            return;
        }
        try {
            h.invokeExact(dst, src, src.byteSize());
        } catch (RuntimeException | Error e) {
            throw e;   // a closed segment's IllegalStateException, an access from the wrong thread
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }
}
