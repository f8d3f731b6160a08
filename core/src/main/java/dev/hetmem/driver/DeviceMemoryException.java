package dev.hetmem.driver;

/** Device memory could not be had: frames refused by the driver, or the device is full. */
public class DeviceMemoryException extends RuntimeException {
    public DeviceMemoryException(String message) {
        super(message);
    }
}
