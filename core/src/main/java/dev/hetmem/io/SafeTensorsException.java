package dev.hetmem.io;

import java.io.IOException;

/** A safetensors file that the reference reader would refuse; {@link #kind()} says which rule it broke. */
public final class SafeTensorsException extends IOException {

    /** The reference implementation's error kinds. */
    public enum Kind {
        HEADER_TOO_SMALL, HEADER_TOO_LARGE, INVALID_HEADER_LENGTH, INVALID_HEADER, INVALID_HEADER_START,
        INVALID_HEADER_DESERIALIZATION, INVALID_METADATA, UNKNOWN_DTYPE, INVALID_OFFSET, VALIDATION_OVERFLOW,
        MISALIGNED_SLICE, TENSOR_INVALID_INFO, METADATA_INCOMPLETE_BUFFER
    }

    private final Kind kind;

    public SafeTensorsException(Kind kind, String message) {
        super(message);
        this.kind = kind;
    }

    public Kind kind() {
        return kind;
    }
}
