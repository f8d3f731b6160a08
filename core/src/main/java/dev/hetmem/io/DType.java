package dev.hetmem.io;

/**
 * The element types of the safetensors format, with their size in bits (sub-byte types pack).
 * The constant names are the format's own {@code dtype} strings, so a header's dtype is read with
 * {@link #valueOf(String)}. A tensor of a sub-byte type must still fill a whole number of bytes.
 */
public enum DType {
    /** A boolean, one byte per element. */
    BOOL(8),
    /** A 4-bit float (E2M1, as in the MX formats); two elements per byte. */
    F4(4),
    /** A 6-bit float with 2 exponent and 3 mantissa bits (MX format). */
    F6_E2M3(6),
    /** A 6-bit float with 3 exponent and 2 mantissa bits (MX format). */
    F6_E3M2(6),
    /** An unsigned 8-bit integer. */
    U8(8),
    /** A signed 8-bit integer. */
    I8(8),
    /** An 8-bit float with 5 exponent and 2 mantissa bits (OCP FP8 E5M2). */
    F8_E5M2(8),
    /** An 8-bit float with 4 exponent and 3 mantissa bits (OCP FP8 E4M3). */
    F8_E4M3(8),
    /** An 8-bit power-of-two scale: 8 exponent bits and no mantissa (the MX formats' shared scale). */
    F8_E8M0(8),
    /** An 8-bit E4M3 float in the FNUZ variant: finite only, no negative zero, NaN encoded as negative zero. */
    F8_E4M3FNUZ(8),
    /** An 8-bit E5M2 float in the FNUZ variant: finite only, no negative zero, NaN encoded as negative zero. */
    F8_E5M2FNUZ(8),
    /** A signed 16-bit integer. */
    I16(16),
    /** An unsigned 16-bit integer. */
    U16(16),
    /** An IEEE 754 half-precision (binary16) float. */
    F16(16),
    /** A bfloat16 float: the upper 16 bits of an IEEE 754 single-precision float. */
    BF16(16),
    /** A signed 32-bit integer. */
    I32(32),
    /** An unsigned 32-bit integer. */
    U32(32),
    /** An IEEE 754 single-precision (binary32) float. */
    F32(32),
    /** A complex number of two single-precision floats (real, then imaginary). */
    C64(64),
    /** An IEEE 754 double-precision (binary64) float. */
    F64(64),
    /** A signed 64-bit integer. */
    I64(64),
    /** An unsigned 64-bit integer. */
    U64(64);

    private final int bits;

    DType(int bits) {
        this.bits = bits;
    }

    /**
     * Returns the size of one element in bits: 4, 6, 8, 16, 32 or 64. Types under 8 bits pack
     * several elements into a byte, so a tensor's size in bytes is its element count times this,
     * divided by 8.
     *
     * @return the bits one element occupies, from 4 to 64
     */
    public int bits() {
        return bits;
    }
}
