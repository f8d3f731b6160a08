package dev.hetmem.driver;

/** A transfer between host and device memory failed; the migration it belonged to is undone. */
public class DeviceCopyException extends RuntimeException {
    public DeviceCopyException(String message) {
        super(message);
    }

    public DeviceCopyException(String message, Throwable cause) {
        super(message, cause);
    }
}
