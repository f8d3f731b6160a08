package dev.hetmem.driver;

import java.util.concurrent.CompletableFuture;

/**
 * A device's asynchronous copy engine (a DMA engine, or the emulated device's copy thread): takes
 * operations [from, to) of a batch and completes the future when they are done, or exceptionally
 * with a {@link DeviceCopyException}.
 *
 * <p>Returned by {@link DeviceDriver#copyEngine()} and used instead of {@link DeviceDriver#copy}
 * when the memory was built with {@code CopyPath.ENGINE}. Operations mean the same as there.
 */
public interface CopyEngine {
    /**
     * Queues operations [from, to) of {@code batch} and returns at once. Called on the migrating
     * thread, which then waits for the future with the migration's block locks held; several
     * migrations may submit at once. The batch is not modified until the future completes. A
     * failure (a failed transfer, a closed device) completes the future exceptionally rather than
     * throwing; the core then undoes the migration, so the future completes (either way) only once
     * no transfer of the call can still write: the undo hands the frames and host pages to other
     * migrations at once.
     *
     * @param batch the copy phase of one migration; read only
     * @param from index of the first operation to perform, in [0, batch.size()]
     * @param to index after the last operation to perform, in [from, batch.size()]
     * @return a future completed with null once every operation is done, or exceptionally with a
     *         {@link DeviceCopyException}
     */
    CompletableFuture<Void> submit(CopyBatch batch, int from, int to);
}
