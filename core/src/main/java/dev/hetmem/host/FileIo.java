package dev.hetmem.host;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * File reads straight into native memory: open (with or without O_DIRECT), pread, close and
 * posix_fadvise, bound through the foreign function API. These calls block on I/O, so they are
 * ordinary downcalls: the calling thread is safepoint-safe while the disk works.
 */
public final class FileIo {
    public static final int O_RDONLY = 0;
    public static final int O_DIRECT = 0x4000;
    public static final int O_CLOEXEC = 0x80000;
    /** Makes an open of a FIFO return at once (no writer needed); no effect on reads of a regular file. */
    static final int O_NONBLOCK = 0x800;
    public static final int POSIX_FADV_DONTNEED = 4;
    public static final int EINVAL = 22;
    public static final int EINTR = 4;
    /** EAGAIN (EWOULDBLOCK): a non-blocking open refused for a lease another process holds. */
    static final int EAGAIN = 11;

    private static final MemoryLayout CALL_STATE = Downcalls.CALL_STATE;

    private static final MethodHandle OPEN = bind("open", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
    private static final MethodHandle PREAD = bind("pread", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG));
    private static final MethodHandle CLOSE = bind("close", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    private static final MethodHandle FADVISE = Downcalls.bind("posix_fadvise",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_INT));

    private FileIo() {}

    private static MethodHandle bind(String name, FunctionDescriptor fd) {
        return Downcalls.bind(name, fd, Downcalls.CAPTURE_ERRNO);
    }

    /**
     * Opens a regular file for reading; returns the descriptor, or throws with errno's meaning, or
     * because what it opened is not a regular file. The loader checks the path before it opens, but
     * the path can name something else by the time of the open (a FIFO renamed over it): opened with
     * O_NONBLOCK, such a thing never blocks the open (a FIFO's blocked until a writer came, in a
     * native call no interrupt ends, holding the region's operation and views), and the descriptor's
     * own file is checked before it is used.
     */
    public static int open(Path path, int flags) throws IOException {
        int fd;
        try {
            fd = openRaw(path, flags | O_NONBLOCK);
        } catch (ErrnoException e) {
            if (e.errno() != EAGAIN) {
                throw e;
            }
            // a lease another process holds on the file (an SMB oplock, an NFS delegation) refuses a
            // non-blocking open; a FIFO's never does: opened again the usual way, waiting for the lease
            fd = openRaw(path, flags);
        }
        try {
            BasicFileAttributes opened;
            try {
                opened = Files.readAttributes(descriptorPath(fd), BasicFileAttributes.class);
            } catch (java.nio.file.NoSuchFileException noProc) {
                return fd;   // no /proc here (a minimal container): the path's own check before the open stands
            }
            if (!opened.isRegularFile()) {
                throw new IOException(path + " is not a regular file (a FIFO, device, socket or /proc entry put in "
                        + "its place as it was opened); only regular files can be loaded");
            }
        } catch (IOException | RuntimeException | Error e) {
            close(fd);
            throw e;
        }
        return fd;
    }

    /** open(2) with {@code flags} and close-on-exec; the descriptor, or throws with errno's meaning. */
    private static int openRaw(Path path, int flags) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CALL_STATE);
            byte[] name = nativeName(path);
            MemorySegment cName = arena.allocate(name.length + 1L);   // zeroed: the terminating NUL
            MemorySegment.copy(name, 0, cName, JAVA_BYTE, 0, name.length);
            int fd = (int) OPEN.invokeExact(state, cName, flags | O_CLOEXEC, 0);
            if (fd < 0) {
                throw new ErrnoException("open " + path, Downcalls.errno(state));
            }
            return fd;
        } catch (IOException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** The path through which the kernel shows what descriptor {@code fd} of this process is open on. */
    private static Path descriptorPath(int fd) {
        return Path.of("/proc/self/fd/" + fd);
    }

    /**
     * A channel for reading a regular file, opened as {@link #open} opens one (never blocking on a
     * FIFO put in the file's place): the channel is opened on the checked descriptor's file.
     */
    public static FileChannel openChannel(Path path) throws IOException {
        int fd = open(path, O_RDONLY);
        try {
            Path opened = descriptorPath(fd);
            // the checked descriptor's file; with no /proc, the path again (checked only before the open)
            return FileChannel.open(Files.exists(opened) ? opened : path, StandardOpenOption.READ);
        } finally {
            close(fd);
        }
    }

    /**
     * The path's absolute name as the file system holds it, byte for byte. Not {@code toString()}
     * encoded as UTF-8: the JDK decodes names with the platform's file-name charset
     * ({@code sun.jnu.encoding}: ASCII under {@code LC_ALL=C}), and a name that is not valid in it (a
     * file found by {@code Files.list}) reads back with replacement characters, so its encoding
     * names another file. The path's URI keeps the bytes, percent-escaping all but plain ASCII.
     */
    static byte[] nativeName(Path path) {
        String raw = path.toAbsolutePath().toUri().getRawPath();
        if (raw.length() > 1 && raw.endsWith("/") && !path.toString().endsWith("/")) {
            raw = raw.substring(0, raw.length() - 1);   // toUri marks a directory with a slash
        }
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream(raw.length());
        for (int i = 0; i < raw.length(); i++) {
            char c = raw.charAt(i);
            if (c == '%' && i + 2 < raw.length()) {
                out.write(Integer.parseInt(raw, i + 1, i + 3, 16));
                i += 2;
            } else {
                out.write(c);   // unescaped characters of a URI path are ASCII
            }
        }
        return out.toByteArray();
    }

    /**
     * Reads up to {@code length} bytes at file offset {@code offset} into native memory at
     * {@code address}, retrying on EINTR; returns the bytes read (fewer only at end of file).
     */
    public static long pread(int fd, long address, long length, long offset) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CALL_STATE);
            while (true) {
                long n = (long) PREAD.invokeExact(state, fd, address, length, offset);
                if (n >= 0) {
                    return n;
                }
                int errno = Downcalls.errno(state);
                if (errno != EINTR) {
                    throw new ErrnoException("read of " + length + " bytes at offset " + offset, errno);
                }
            }
        } catch (IOException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    public static void close(int fd) {
        try (Arena arena = Arena.ofConfined()) {
            int ignored = (int) CLOSE.invokeExact(arena.allocate(CALL_STATE), fd);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** Asks the kernel to drop the file's cached pages (for cold-cache measurements); returns 0 or an errno. */
    public static int dropCache(int fd) {
        try {
            return (int) FADVISE.invokeExact(fd, 0L, 0L, POSIX_FADV_DONTNEED);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** An I/O call failed; names the call and errno's meaning. */
    public static final class ErrnoException extends IOException {
        private final int errno;

        public ErrnoException(String call, int errno) {
            super(call + " failed: " + Libc.strerror(errno) + " (errno " + errno + ")");
            this.errno = errno;
        }

        public int errno() {
            return errno;
        }
    }
}
