package dev.hetmem.migrate;

/**
 * A plain argument found no run of consecutive free frames as long as it is on a device that has
 * frames enough in all: the free ones lie between pages that cannot leave (pinned by running
 * kernels, or needed by the same call: a small argument placed in the middle of the device splits
 * it for a large one). Thrown before anything of the batch changed. A launch whose plain argument
 * declares per-item windows then runs tile by tile, each tile needing a shorter run.
 */
public final class NoRunException extends Eviction.DeviceFull {
    NoRunException(String message) {
        super(message);
    }
}
