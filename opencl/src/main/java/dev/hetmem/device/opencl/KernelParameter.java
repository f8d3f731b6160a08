package dev.hetmem.device.opencl;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.util.Set;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * A kernel parameter as its source declares it (read with {@code clGetKernelArgInfo} from a
 * program built with {@code -cl-kernel-arg-info}), and how a Java value becomes its bytes: a
 * number converts where no value changes (a Java {@code double} for a {@code float} parameter
 * if it stays finite, an {@code int} for a {@code long}, a {@code long} for an {@code int} in
 * range), a Java array of the element type fills a vector ({@code float[]} of 4 for a {@code float4}),
 * a plain buffer fills a {@code __global} or {@code __constant} pointer and
 * {@link OpenClKernel.LocalMemory} a {@code __local} one (a typedef of a built-in type, declared
 * plainly in the source, is taken as that type: {@link SourceTypedefs}); anything else is refused
 * naming the parameter.
 *
 * @param name    the parameter's name in the source
 * @param type    its type as OpenCL reports it ({@code int}, {@code uint}, {@code float}, {@code float*}, ...),
 *                or the built-in type a typedef of the program's source stands for
 * @param address its address space qualifier: {@link #GLOBAL}, {@link #CONSTANT}, {@link #LOCAL}
 *                or {@link #PRIVATE} (scalars and vectors)
 * @param declared the type as OpenCL names it (a typedef's name, where {@code type} is what it stands for)
 */
record KernelParameter(String name, String type, int address, String declared) {
    private static final int CL_KERNEL_ARG_ADDRESS_QUALIFIER = 0x1196;
    private static final int CL_KERNEL_ARG_TYPE_NAME = 0x1198;
    private static final int CL_KERNEL_ARG_NAME = 0x119A;
    private static final int CL_INVALID_ARG_INDEX = -49;
    /** The longest name or type read (a sanity bound on what the platform reports; OpenCL sets none). */
    private static final long MAX_INFO_BYTES = 1 << 20;
    static final int GLOBAL = 0x119B;
    static final int LOCAL = 0x119C;
    static final int CONSTANT = 0x119D;
    static final int PRIVATE = 0x119E;

    /** A parameter whose type is named as OpenCL reports it. */
    KernelParameter(String name, String type, int address) {
        this(name, type, address, type);
    }

    /** What a parameter index beyond the kernel's last reads as. */
    static final KernelParameter NONE = new KernelParameter("", "", PRIVATE);
    /** What a parameter reads as where the platform gives no argument information. */
    static final KernelParameter UNKNOWN = new KernelParameter("?", "?", PRIVATE);

    /**
     * Parameter {@code index} of {@code kernel}; {@link #NONE} past its last parameter;
     * {@link #UNKNOWN} where the platform gives no argument information (the value's own Java type
     * then decides its size).
     */
    static KernelParameter of(ClLibrary cl, MemorySegment kernel, int index) {
        try (Arena a = Arena.ofConfined()) {
            String type = info(cl, kernel, index, CL_KERNEL_ARG_TYPE_NAME, a);
            if (type == null) {
                return UNKNOWN;
            }
            if (type.isEmpty()) {
                return NONE;
            }
            String name = info(cl, kernel, index, CL_KERNEL_ARG_NAME, a);
            MemorySegment q = a.allocate(JAVA_INT);
            int rc;
            try {
                rc = (int) cl.getKernelArgInfo.invokeExact(kernel, index, CL_KERNEL_ARG_ADDRESS_QUALIFIER, 4L, q,
                        MemorySegment.NULL);
            } catch (Throwable t) {
                rc = -1;
            }
            int address = rc == 0 ? q.get(JAVA_INT, 0) : (type.endsWith("*") ? GLOBAL : PRIVATE);
            return new KernelParameter(name == null ? "#" + index : name, type.strip(), address);
        }
    }

    /** A {@code __global} or {@code __constant} pointer: one a buffer, or a plain region argument, fills. */
    boolean buffer() {
        return pointer() && (address == GLOBAL || address == CONSTANT);
    }

    /**
     * A string of the parameter's information; "" past the last parameter; null when not available.
     * Its size is asked first: a name or type longer than a fixed buffer (a 256-byte one read such a
     * parameter as having no information at all) is read whole.
     */
    private static String info(ClLibrary cl, MemorySegment kernel, int index, int what, Arena a) {
        MemorySegment size = a.allocate(JAVA_LONG);
        int rc;
        try {
            rc = (int) cl.getKernelArgInfo.invokeExact(kernel, index, what, 0L, MemorySegment.NULL, size);
        } catch (Throwable t) {
            return null;
        }
        if (rc == CL_INVALID_ARG_INDEX) {
            return "";
        }
        if (rc != 0) {
            return null;   // CL_KERNEL_ARG_INFO_NOT_AVAILABLE, or a platform without it
        }
        long bytes = size.get(JAVA_LONG, 0);
        if (bytes < 1 || bytes > MAX_INFO_BYTES) {
            bytes = 256;   // a platform that reports no size (or one no source has): read as much as before
        }
        // one byte more than reported, zeroed: a platform whose size leaves out the terminator still fits
        MemorySegment value = a.allocate(bytes + 1);
        try {
            rc = (int) cl.getKernelArgInfo.invokeExact(kernel, index, what, bytes + 1, value, MemorySegment.NULL);
        } catch (Throwable t) {
            return null;
        }
        return rc == 0 ? value.getString(0, StandardCharsets.UTF_8) : null;
    }

    boolean pointer() {
        return type.endsWith("*");
    }

    /** A {@code __local} pointer: {@link OpenClKernel.LocalMemory} fills it. */
    boolean local() {
        return pointer() && address == LOCAL;
    }

    /**
     * Writes {@code v} into {@code s} as this parameter's type; returns its size in bytes.
     *
     * @throws IllegalArgumentException naming the kernel, the parameter and the value, when {@code v}
     *         cannot become this type without changing (or is a buffer for a number, or a number for
     *         a pointer)
     */
    long put(MemorySegment s, Object v, String kernel) {
        if (v instanceof OpenClKernel.LocalMemory m) {
            if (!local()) {
                throw mismatch(kernel, v, "local memory is for a __local pointer parameter");
            }
            return m.bytes();   // the caller passes no value: OpenCL allocates it per work-group
        }
        if (local()) {
            throw mismatch(kernel, v, "a __local pointer parameter takes its size, as OpenClKernel.LocalMemory");
        }
        if (v instanceof OpenClDevice.PlainBuffer) {
            if (!pointer()) {
                throw mismatch(kernel, v, "a buffer for a " + type + " parameter");
            }
            return ValueLayout.ADDRESS.byteSize();   // the caller writes the handle
        }
        if (pointer()) {
            throw mismatch(kernel, v, "a pointer parameter takes a buffer (OpenClDevice.PlainBuffer)");
        }
        if (v.getClass().isArray() && SCALARS.contains(type)) {
            throw mismatch(kernel, v, "an array for a " + type + " parameter (arrays fill vector parameters, such as float4)");
        }
        return switch (type) {
            case "char", "uchar", "short", "ushort", "int", "uint", "long", "ulong" -> putWhole(s, v, kernel);
            case "float" -> {
                double d = real(v, kernel);
                float f = (float) d;
                if (Float.isInfinite(f) && !Double.isInfinite(d)) {
                    throw mismatch(kernel, v, "too large for a float");
                }
                if (!(v instanceof Double) && !(v instanceof Float) && f != d) {
                    throw mismatch(kernel, v, "a whole number a float does not hold exactly");
                }
                s.set(ValueLayout.JAVA_FLOAT, 0, f);
                yield 4;
            }
            case "double" -> {
                s.set(ValueLayout.JAVA_DOUBLE, 0, real(v, kernel));
                yield 8;
            }
            default -> other(s, v, kernel);
        };
    }

    /** The scalar types a number fills: an array for one of them is refused (arrays fill vectors). */
    private static final Set<String> SCALARS = Set.of("char", "uchar", "short", "ushort", "int", "uint", "long", "ulong",
            "float", "double");

    /** A vector type's name, its element type (group 1) and width (group 2): {@code float4} is float, 4. */
    private static final java.util.regex.Pattern VECTOR =
            java.util.regex.Pattern.compile("(char|uchar|short|ushort|int|uint|long|ulong|float|double)(2|3|4|8|16)");

    /**
     * A type the switch above does not name: a vector ({@code float4}, {@code int2}, ...) takes a
     * Java array of its element type and width (a 3-vector takes the room of a 4-vector, as OpenCL
     * lays it out); any other name is refused (a typedef of a built-in type the source declares
     * plainly reaches here as that type: {@link SourceTypedefs}).
     */
    private long other(MemorySegment s, Object v, String kernel) {
        java.util.regex.Matcher m = VECTOR.matcher(type);
        if (m.matches()) {
            String element = m.group(1);
            int width = Integer.parseInt(m.group(2));
            boolean real = element.equals("float") || element.equals("double");
            boolean fits = real ? v instanceof float[] || v instanceof double[]
                    : v instanceof byte[] || v instanceof short[] || v instanceof int[] || v instanceof long[]
                    || v instanceof BigInteger[];
            if (!fits) {
                throw mismatch(kernel, v, "a " + type + " parameter takes " + (real ? "a float[] or double[]"
                        : "a byte[], short[], int[], long[] or BigInteger[]") + " of " + width);
            }
            int length = java.lang.reflect.Array.getLength(v);
            if (length != width) {
                throw mismatch(kernel, v, "a " + type + " parameter takes " + width + " elements, given " + length);
            }
            // element by element, by the rules of a scalar of the element type (range, sign, exactness)
            KernelParameter one = new KernelParameter(name, element, address, declared);
            MemorySegment scratch = MemorySegment.ofArray(new long[1]);
            long elementSize = 0;
            for (int i = 0; i < width; i++) {
                Object e = java.lang.reflect.Array.get(v, i);
                try {
                    elementSize = one.put(scratch, e, kernel);
                } catch (IllegalArgumentException bad) {
                    throw mismatch(kernel, v, "element " + i + " (" + e + ") does not fit a " + element
                            + (element.equals("ulong") && e instanceof Long l && l < 0 ? " (a ulong of 2^63 or more takes a "
                            + "BigInteger, in a BigInteger[])" : ""));
                }
                MemorySegment.copy(scratch, 0, s, elementSize * i, elementSize);
            }
            return elementSize * (width == 3 ? 4 : width);   // a 3-vector takes the room of a 4-vector
        }
        // a typedef the source does not declare plainly (SourceTypedefs), a struct, half: no Java value has a
        // size hetmem can vouch for (OpenCL does not always check it: PoCL took 8 bytes for a 4-byte float)
        throw mismatch(kernel, v, "hetmem passes no Java value as " + type);
    }

    private long putWhole(MemorySegment s, Object v, String kernel) {
        int bytes = switch (type) {
            case "char", "uchar" -> 1;
            case "short", "ushort" -> 2;
            case "int", "uint" -> 4;
            default -> 8;
        };
        boolean unsigned = type.startsWith("u");
        if (v instanceof BigInteger b) {
            // the one way to a ulong of 2^63 or more (a negative Long is refused for it, not taken as its bits)
            BigInteger min = unsigned ? BigInteger.ZERO : BigInteger.ONE.shiftLeft(8 * bytes - 1).negate();
            BigInteger max = (unsigned ? BigInteger.ONE.shiftLeft(8 * bytes) : BigInteger.ONE.shiftLeft(8 * bytes - 1))
                    .subtract(BigInteger.ONE);
            if (b.compareTo(min) < 0 || b.compareTo(max) > 0) {
                throw mismatch(kernel, v, "outside [" + min + ", " + max + "]");
            }
            return store(s, b.longValue(), bytes);   // the low bytes: the value itself, two's complement or unsigned
        }
        long x = switch (v) {
            case Long l -> l;
            case Integer i -> i;
            case Short h -> h;
            case Byte b -> b;
            default -> throw mismatch(kernel, v, "not a whole number");
        };
        if (unsigned && x < 0) {
            throw mismatch(kernel, v, "negative for an unsigned parameter" + (bytes == 8 ? " (a ulong of 2^63 or more "
                    + "takes a BigInteger)" : ""));
        }
        if (bytes < 8) {
            long max = unsigned ? (1L << (8 * bytes)) - 1 : (1L << (8 * bytes - 1)) - 1;
            long min = unsigned ? 0 : -(1L << (8 * bytes - 1));
            if (x < min || x > max) {
                throw mismatch(kernel, v, "outside [" + min + ", " + max + "]");
            }
        }
        return store(s, x, bytes);
    }

    /** The low {@code bytes} of {@code x} into {@code s}; returns {@code bytes}. */
    private static long store(MemorySegment s, long x, int bytes) {
        switch (bytes) {
            case 1 -> s.set(ValueLayout.JAVA_BYTE, 0, (byte) x);
            case 2 -> s.set(ValueLayout.JAVA_SHORT, 0, (short) x);
            case 4 -> s.set(JAVA_INT, 0, (int) x);
            default -> s.set(JAVA_LONG, 0, x);
        }
        return bytes;
    }

    /** A number as a double, where it is one exactly. */
    private double real(Object v, String kernel) {
        return switch (v) {
            case Double d -> d;
            case Float f -> f;
            case Integer i -> i;   // every int is a double exactly
            // Long.MAX_VALUE's double is 2^63, which casts back to Long.MAX_VALUE (saturated): not exact
            case Long l when l != Long.MAX_VALUE && (long) (double) l == l -> l;
            case BigInteger b when exactDouble(b) -> b.doubleValue();
            default -> throw mismatch(kernel, v, "not a number that " + type + " holds exactly");
        };
    }

    /** Whether {@code b} is a double exactly (a finite one that converts back to {@code b}). */
    private static boolean exactDouble(BigInteger b) {
        double d = b.doubleValue();
        return !Double.isInfinite(d) && new java.math.BigDecimal(d).toBigIntegerExact().equals(b);
    }

    private IllegalArgumentException mismatch(String kernel, Object v, String why) {
        String shownType = declared.equals(type) ? type : declared + ", a typedef of " + type;
        return new IllegalArgumentException("kernel " + kernel + ": parameter '" + name + "' (" + shownType + ") cannot take "
                + OpenClProgram.shown(v) + " (" + (v == null ? "null" : v.getClass().getSimpleName()) + "): " + why);
    }
}
