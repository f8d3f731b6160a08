package dev.hetmem.device.opencl;

import dev.hetmem.HetmemException;

/** An OpenCL call failed: names the call, the code's name and the code ("clCreateBuffer: CL_OUT_OF_RESOURCES (-5)"). */
public class OpenClException extends HetmemException {
    private final String call;
    private final int code;

    public OpenClException(String call, int code, String detail) {
        super(call + ": " + ClError.name(code) + " (" + code + ")" + (detail == null || detail.isEmpty() ? "" : ": " + detail));
        this.call = call;
        this.code = code;
    }

    /** The OpenCL function that failed. */
    public String call() {
        return call;
    }

    /** The code it returned. */
    public int code() {
        return code;
    }

    /** The code's name in cl.h, such as CL_OUT_OF_RESOURCES. */
    public String codeName() {
        return ClError.name(code);
    }
}
