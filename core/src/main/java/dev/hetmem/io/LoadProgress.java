package dev.hetmem.io;

/** Told how far a load is; called from the loader's threads, so it must be thread-safe and quick. */
@FunctionalInterface
public interface LoadProgress {
    void progress(long bytesDone, long bytesTotal);
}
