package dev.hetmem.limits;

import dev.hetmem.host.FileIo;

import java.io.IOException;
import java.nio.file.Path;

/** The kernel's page cache, for benchmarks that read a file cold. */
public final class PageCache {
    private PageCache() {
    }

    /**
     * Asks the kernel to drop {@code file}'s cached pages (posix_fadvise DONTNEED); false if it refused.
     * Pages not yet written back stay cached, so write the file out (fsync) before calling it.
     *
     * @param file the file whose cached pages to drop
     * @return whether the kernel accepted the advice; pages in use elsewhere may still stay cached
     * @throws IOException if the file cannot be opened for reading
     */
    public static boolean drop(Path file) throws IOException {
        int fd = FileIo.open(file, FileIo.O_RDONLY);
        try {
            return FileIo.dropCache(fd) == 0;
        } finally {
            FileIo.close(fd);
        }
    }
}
