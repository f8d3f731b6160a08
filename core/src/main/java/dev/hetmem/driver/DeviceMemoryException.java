package dev.hetmem.driver;

import dev.hetmem.HetmemException;

/** Device memory could not be had: frames refused by the driver, or the device is full. */
public class DeviceMemoryException extends HetmemException {
    /**
     * A refusal described by {@code message}.
     *
     * @param message what could not be had: the device, and the frames or bytes concerned
     */
    public DeviceMemoryException(String message) {
        super(message);
    }

    /**
     * A refusal described by {@code message}, caused by {@code cause}.
     *
     * @param message what could not be had, or which driver call failed
     * @param cause the failure behind it
     */
    public DeviceMemoryException(String message, Throwable cause) {
        super(message, cause);
    }
}
