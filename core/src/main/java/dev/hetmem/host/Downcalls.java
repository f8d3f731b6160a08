package dev.hetmem.host;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;
import java.util.Optional;

/**
 * Binding libc functions through the foreign function API, and reading the errno a failing call
 * captured in the same downcall (any JVM activity between the call and a separate errno read could
 * overwrite it). Shared by {@link Libc} and {@link FileIo}.
 */
final class Downcalls {
    static final Linker LINKER = Linker.nativeLinker();
    /** Layout of the per-call state a downcall captures errno into. */
    static final MemoryLayout CALL_STATE = Linker.Option.captureStateLayout();
    static final Linker.Option CAPTURE_ERRNO = Linker.Option.captureCallState("errno");
    private static final VarHandle ERRNO = CALL_STATE.varHandle(MemoryLayout.PathElement.groupElement("errno"));

    private Downcalls() {}

    /** A libc function that must exist. */
    static MethodHandle bind(String name, FunctionDescriptor fd, Linker.Option... options) {
        MemorySegment symbol = LINKER.defaultLookup().find(name)
                .orElseThrow(() -> new UnsatisfiedLinkError("libc has no " + name));
        return LINKER.downcallHandle(symbol, fd, options);
    }

    /** A libc function that older C libraries may lack. */
    static Optional<MethodHandle> bindOptional(String name, FunctionDescriptor fd, Linker.Option... options) {
        return LINKER.defaultLookup().find(name).map(sym -> LINKER.downcallHandle(sym, fd, options));
    }

    /** The errno a downcall captured into {@code state}. */
    static int errno(MemorySegment state) {
        return (int) ERRNO.get(state, 0L);
    }
}
