package dev.hetmem.device.opencl;

import dev.hetmem.HetmemException;

/** No OpenCL here: the ICD loader is missing, or no platform or device is installed. Says which and how to fix it. */
public final class OpenClUnavailableException extends HetmemException {
    /**
     * An exception saying why OpenCL cannot be used here.
     *
     * @param message what is missing and how to install it
     */
    public OpenClUnavailableException(String message) {
        super(message);
    }
}
