package dev.hetmem;

/** A write to a read-only range was refused; the memory is unchanged. */
public final class ProtectionException extends HetmemException {
    public ProtectionException(String message) {
        super(message);
    }
}
