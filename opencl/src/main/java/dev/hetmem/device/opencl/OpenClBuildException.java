package dev.hetmem.device.opencl;

/** A program did not compile: carries the compiler's build log. */
public final class OpenClBuildException extends OpenClException {
    /** The compiler's build log for the device, as OpenCL reports it without surrounding blanks. */
    private final String log;

    OpenClBuildException(int code, String device, String log) {
        super("clBuildProgram", code, "on " + device + ", build log:\n" + log);
        this.log = log;
    }

    /**
     * The compiler's output for the failed build, whose line numbers are those of the source given
     * to {@link OpenClDevice#compile(String)} (not counting {@code hetmem.h}).
     *
     * @return the build log, or {@code "(no build log)"} when OpenCL gave none
     */
    public String buildLog() {
        return log;
    }
}
