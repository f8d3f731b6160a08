package dev.hetmem.device.opencl;

import dev.hetmem.HetmemException;

/** No OpenCL here: the ICD loader is missing, or no platform or device is installed. Says which and how to fix it. */
public final class OpenClUnavailableException extends HetmemException {
    public OpenClUnavailableException(String message) {
        super(message);
    }
}
