package dev.hetmem.io;

/** Told how far a load is; called from the loader's threads, so it must be thread-safe and quick. */
@FunctionalInterface
public interface LoadProgress {
    /**
     * Reports that {@code bytesDone} of the file's bytes are loaded, after each chunk. Calls from
     * different reading threads may arrive slightly out of order; the largest {@code bytesDone}
     * equals {@code bytesTotal} once the whole file is in. An empty file reports nothing.
     *
     * @param bytesDone bytes of the file loaded so far, 1 to {@code bytesTotal}
     * @param bytesTotal the file's size in bytes
     */
    void progress(long bytesDone, long bytesTotal);
}
