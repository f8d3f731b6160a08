package dev.hetmem.driver;

import dev.hetmem.HetmemException;

/**
 * A driver call, or a kernel the driver ran, threw a checked exception that {@link DeviceDriver}
 * does not declare (a driver written in another JVM language, a sneaky throw); that exception is
 * the cause. The core handles it as it handles an unchecked failure of the same call: not as a
 * refusal of memory (a copy's such failure is a {@link DeviceCopyException}, a frame
 * preparation's a {@link DeviceMemoryException}), so that nothing takes it for a full device and
 * retries or swallows it.
 */
public class UndeclaredDriverException extends HetmemException {
    /**
     * The failure of one call.
     *
     * @param message the device and the call that failed
     * @param cause the checked exception the call threw
     */
    public UndeclaredDriverException(String message, Throwable cause) {
        super(message, cause);
    }
}
