package dev.hetmem.driver;

/**
 * Thrown by {@link DeviceDriver#prepareFrames} when the device cannot back a run of frames this
 * large (its memory too fragmented for large pages) but smaller runs may do: the core then goes on
 * with smaller runs, as the kernel falls back from huge pages. Any other refusal fails the batch.
 */
public class RunTooLargeException extends DeviceMemoryException {
    /**
     * A refusal of one run described by {@code message}.
     *
     * @param message the device and the size of the run it cannot back
     */
    public RunTooLargeException(String message) {
        super(message);
    }
}
