package dev.hetmem;

/** A write to a read-only range was refused; the memory is unchanged. */
public final class ProtectionException extends HetmemException {
    /**
     * An exception for a refused write.
     *
     * @param message what was written and the first read-only page's offset
     */
    public ProtectionException(String message) {
        super(message);
    }
}
