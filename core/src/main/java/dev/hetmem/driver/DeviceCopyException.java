package dev.hetmem.driver;

import dev.hetmem.HetmemException;

/** A transfer between host and device memory failed; the migration it belonged to is undone. */
public class DeviceCopyException extends HetmemException {
    /**
     * A failed transfer described by {@code message}.
     *
     * @param message what failed: the device, and the operation or frames concerned
     */
    public DeviceCopyException(String message) {
        super(message);
    }

    /**
     * A failed transfer described by {@code message}, caused by {@code cause}.
     *
     * @param message what failed: the device, and the operation or frames concerned
     * @param cause the driver's own error (a native status, an I/O failure); may be null
     */
    public DeviceCopyException(String message, Throwable cause) {
        super(message, cause);
    }
}
