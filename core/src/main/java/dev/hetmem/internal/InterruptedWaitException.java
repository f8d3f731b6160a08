package dev.hetmem.internal;

/**
 * A wait of the engine (for room on a device, for a pin's release, for a tile's prefetch) ended by
 * an interrupt of the waiting thread, whose interrupt flag stays set. An
 * {@link IllegalStateException}, as the engine's other refusals are, so that callers catching those
 * see no change; the loader turns it into the {@link java.io.InterruptedIOException} its callers
 * expect of an interrupted load.
 */
public final class InterruptedWaitException extends IllegalStateException {
    public InterruptedWaitException(String message, Throwable cause) {
        super(message, cause);
    }
}
