package dev.hetmem.device.emulated;

/**
 * A kernel touched an address its launch did not declare, or wrote through an argument declared
 * read-only: the emulated equivalent of a GPU's illegal-address error. The memory is unchanged.
 */
public final class DeviceFaultException extends RuntimeException {
    public DeviceFaultException(String message) {
        super(message);
    }
}
