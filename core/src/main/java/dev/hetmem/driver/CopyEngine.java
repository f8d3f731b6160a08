package dev.hetmem.driver;

import java.util.concurrent.CompletableFuture;

/**
 * A device's asynchronous copy engine (a DMA engine, or the emulated device's copy thread): takes
 * operations [from, to) of a batch and completes the future when they are done, or exceptionally
 * with a {@link DeviceCopyException}.
 */
public interface CopyEngine {
    CompletableFuture<Void> submit(CopyBatch batch, int from, int to);
}
