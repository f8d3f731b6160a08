package dev.hetmem.driver;

import dev.hetmem.HetmemException;

/** A transfer between host and device memory failed; the migration it belonged to is undone. */
public class DeviceCopyException extends HetmemException {
    public DeviceCopyException(String message) {
        super(message);
    }

    public DeviceCopyException(String message, Throwable cause) {
        super(message, cause);
    }
}
