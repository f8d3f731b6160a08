package dev.hetmem.device.opencl;

/** A program did not compile: carries the compiler's build log. */
public final class OpenClBuildException extends OpenClException {
    private final String log;

    OpenClBuildException(int code, String device, String log) {
        super("clBuildProgram", code, "on " + device + ", build log:\n" + log);
        this.log = log;
    }

    public String buildLog() {
        return log;
    }
}
