package dev.hetmem.driver;

import dev.hetmem.HetmemException;

/** Device memory could not be had: frames refused by the driver, or the device is full. */
public class DeviceMemoryException extends HetmemException {
    public DeviceMemoryException(String message) {
        super(message);
    }
}
