package dev.hetmem;

/**
 * An operation's wait (for room on a device, for pages another thread's kernel or view holds, for
 * a tiled launch's next pages) ended because the calling thread was interrupted; the thread's
 * interrupt flag stays set. Whatever the operation had not done yet is undone: the memory is as it
 * was before the call, but for what a launch larger than the device had already written (as with
 * any failure of such a launch). An {@link IllegalStateException}, as hetmem's other refusals to
 * go on are, so that code catching those sees it; {@code load} reports an interrupt as the
 * {@link java.io.InterruptedIOException} an interrupted read is.
 */
public final class InterruptedOperationException extends IllegalStateException {
    /**
     * An exception saying what the operation was waiting for; thrown by the core, not by users.
     *
     * @param message what the interrupted operation was waiting for
     * @param cause   the {@link InterruptedException} that ended the wait, or null
     */
    public InterruptedOperationException(String message, Throwable cause) {
        super(message, cause);
    }
}
