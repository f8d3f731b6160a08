package dev.hetmem.device.opencl;

import dev.hetmem.HetmemException;

/** An OpenCL call failed: names the call, the code's name and the code ("clCreateBuffer: CL_OUT_OF_RESOURCES (-5)"). */
public class OpenClException extends HetmemException {
    /** The OpenCL function that failed, such as clCreateBuffer. */
    private final String call;
    /** The status code it returned, a negative cl.h error code. */
    private final int code;

    /**
     * An exception for a failed OpenCL call, with the message
     * {@code "call: NAME (code)"} followed by {@code ": detail"} when there is a detail.
     *
     * @param call the OpenCL function that failed, such as {@code clCreateBuffer}
     * @param code the status code it returned (negative, as cl.h defines them)
     * @param detail what the call was doing, for the message; null or empty for none
     */
    public OpenClException(String call, int code, String detail) {
        super(call + ": " + ClError.name(code) + " (" + code + ")" + (detail == null || detail.isEmpty() ? "" : ": " + detail));
        this.call = call;
        this.code = code;
    }

    /**
     * The OpenCL function that failed.
     *
     * @return the function's name, such as {@code clEnqueueNDRangeKernel}
     */
    public String call() {
        return call;
    }

    /**
     * The code it returned.
     *
     * @return the OpenCL status code, negative (such as -5 for CL_OUT_OF_RESOURCES)
     */
    public int code() {
        return code;
    }

    /**
     * The code's name in cl.h, such as CL_OUT_OF_RESOURCES.
     *
     * @return the name, or {@code "unknown OpenCL error"} for a code cl.h does not define
     */
    public String codeName() {
        return ClError.name(code);
    }
}
