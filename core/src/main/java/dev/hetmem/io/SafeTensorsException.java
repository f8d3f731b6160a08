package dev.hetmem.io;

import java.io.IOException;

/** A safetensors file that the reference reader would refuse; {@link #kind()} says which rule it broke. */
public final class SafeTensorsException extends IOException {

    /** The reference implementation's error kinds. */
    public enum Kind {
        /** The file is shorter than the 8 bytes of the header length. */
        HEADER_TOO_SMALL,
        /** The header length is over {@link SafeTensors#MAX_HEADER_BYTES} (or negative as a signed 64-bit number). */
        HEADER_TOO_LARGE,
        /** The header length runs past the end of the file. */
        INVALID_HEADER_LENGTH,
        /** The header is not valid UTF-8. */
        INVALID_HEADER,
        /** The header is valid JSON but not a JSON object. */
        INVALID_HEADER_START,
        /**
         * The header is not valid JSON (or names a key twice), or a tensor's entry is not an object
         * with a string {@code dtype}, an integer array {@code shape} and two integer {@code data_offsets}.
         */
        INVALID_HEADER_DESERIALIZATION,
        /** {@code __metadata__} is not an object whose values are all strings. */
        INVALID_METADATA,
        /** A tensor's {@code dtype} is none of {@link DType}'s names. */
        UNKNOWN_DTYPE,
        /** The tensors' data offsets leave a hole, overlap, or end before they begin. */
        INVALID_OFFSET,
        /** A number does not fit 63 bits, or a tensor's shape product times its element size overflows 64 bits. */
        VALIDATION_OVERFLOW,
        /** A tensor of a sub-byte type is not a whole number of bytes. */
        MISALIGNED_SLICE,
        /** A tensor's data offsets do not span the bytes its shape and dtype need. */
        TENSOR_INVALID_INFO,
        /** The tensors do not cover all of the data after the header. */
        METADATA_INCOMPLETE_BUFFER
    }

    /** Which of the format's rules the file broke. */
    private final Kind kind;

    /**
     * Creates an exception for a file that breaks the rule {@code kind}.
     *
     * @param kind which rule the file broke
     * @param message the file's path and what in it broke the rule
     */
    public SafeTensorsException(Kind kind, String message) {
        super(message);
        this.kind = kind;
    }

    /**
     * Returns which of the format's rules the file broke, as the reference implementation names it.
     *
     * @return the kind of error
     */
    public Kind kind() {
        return kind;
    }
}
