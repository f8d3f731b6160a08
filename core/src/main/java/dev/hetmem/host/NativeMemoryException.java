package dev.hetmem.host;

/** A libc memory call failed; carries the call, the size asked for and errno. */
public final class NativeMemoryException extends RuntimeException {
    private final int errno;

    public NativeMemoryException(String call, long length, int errno) {
        super(call + " of " + length + " bytes failed: " + Libc.strerror(errno) + " (errno " + errno + ")");
        this.errno = errno;
    }

    public int errno() {
        return errno;
    }
}
