package dev.hetmem.limits;

import dev.hetmem.host.FileIo;

import java.io.IOException;
import java.nio.file.Path;

/** The kernel's page cache, for benchmarks that read a file cold. */
public final class PageCache {
    private PageCache() {
    }

    /** Asks the kernel to drop {@code file}'s cached pages (posix_fadvise DONTNEED); false if it refused. */
    public static boolean drop(Path file) throws IOException {
        int fd = FileIo.open(file, FileIo.O_RDONLY);
        try {
            return FileIo.dropCache(fd) == 0;
        } finally {
            FileIo.close(fd);
        }
    }
}
