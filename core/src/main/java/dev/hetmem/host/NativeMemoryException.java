package dev.hetmem.host;

import dev.hetmem.HetmemException;

/** A libc memory call failed; carries the call, the size asked for and errno. */
public final class NativeMemoryException extends HetmemException {
    private final int errno;

    public NativeMemoryException(String call, long length, int errno) {
        super(call + " of " + length + " bytes failed: " + Libc.strerror(errno) + " (errno " + errno + ")");
        this.errno = errno;
    }

    public int errno() {
        return errno;
    }
}
