package dev.hetmem.cli;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * Whether standard output or standard error is a terminal, asked of the C library ({@code isatty}),
 * since Java's console answers for standard input and output together: a progress bar belongs on
 * stderr exactly when stderr is a terminal ({@code load f 2>log} gets lines, not redraws), colours
 * on stdout exactly when stdout is one, and never with {@code NO_COLOR} set.
 */
final class Terminal {
    private Terminal() {}

    static final int STDOUT = 1;
    static final int STDERR = 2;

    private static final MethodHandle ISATTY = Linker.nativeLinker().defaultLookup().find("isatty")
            .map(a -> Linker.nativeLinker().downcallHandle(a, FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT)))
            .orElse(null);

    /** Whether file descriptor {@code fd} is a terminal (false where that cannot be told). */
    static boolean isTerminal(int fd) {
        if (ISATTY == null) {
            return false;
        }
        try {
            return (int) ISATTY.invokeExact(fd) == 1;
        } catch (Throwable t) {
            return false;
        }
    }

    /** Whether colours may go to standard output. */
    static boolean colours() {
        return System.getenv("NO_COLOR") == null && isTerminal(STDOUT);
    }
}
