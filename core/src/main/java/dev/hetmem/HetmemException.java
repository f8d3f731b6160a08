package dev.hetmem;

/**
 * The common supertype of hetmem's own failures: a device out of memory or lost
 * ({@link dev.hetmem.driver.DeviceMemoryException}), a copy that failed
 * ({@link dev.hetmem.driver.DeviceCopyException}), a kernel's illegal access
 * ({@link dev.hetmem.driver.DeviceFaultException}, the same on every driver), a write to protected
 * memory ({@link ProtectionException}), native memory refused
 * by the kernel ({@code mmap}, {@code madvise}: caught as this type), the userfaultfd mode
 * unavailable ({@link UserfaultfdUnavailableException}). Each message names the values involved
 * and the limit they met; after any of them the memory is as it was before the call, or as the
 * exception says.
 *
 * <p>Not in this family, as in the JDK: bad arguments ({@link IllegalArgumentException},
 * {@link IndexOutOfBoundsException}, naming the value and the limit), and use of something closed or
 * freed, a call that would wait for the caller itself ({@link PinnedByCallerException}), or a wait
 * the caller's interrupt ended ({@link InterruptedOperationException}): {@link IllegalStateException}s,
 * as {@link java.lang.foreign.Arena} throws for a closed segment.
 */
public class HetmemException extends RuntimeException {
    /**
     * A failure described by {@code message}.
     *
     * @param message the values involved and the limit they met
     */
    public HetmemException(String message) {
        super(message);
    }

    /**
     * A failure described by {@code message}, caused by {@code cause}.
     *
     * @param message the values involved and the limit they met
     * @param cause   the failure underneath (a native call's error, a driver's exception), or null
     */
    public HetmemException(String message, Throwable cause) {
        super(message, cause);
    }
}
