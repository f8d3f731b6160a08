package dev.hetmem.device.opencl;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.ConcurrentHashMap;

import static dev.hetmem.device.opencl.ClLibrary.call;
import static dev.hetmem.device.opencl.ClLibrary.check;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/** OpenCL C built for one {@link OpenClDevice}, with {@code hetmem.h} in front of it. Closing releases its kernels. */
public final class OpenClProgram implements AutoCloseable {
    /** The header every program is built with; kernels use its HM_SPACE_PARAMS, HM_REGION, HM_PTR and HM_WPTR. */
    public static final String HEADER = header();

    private final OpenClDevice device;
    private final ClLibrary cl;
    private final MemorySegment program;
    private final boolean plain;
    /** The source's typedefs of built-in types ({@link SourceTypedefs}): how a parameter so declared takes a value. */
    private final java.util.Map<String, String> typedefs;
    private final ConcurrentHashMap<String, MemorySegment> kernels = new ConcurrentHashMap<>();
    private volatile boolean closed;

    private OpenClProgram(OpenClDevice device, ClLibrary cl, MemorySegment program, boolean plain,
                          java.util.Map<String, String> typedefs) {
        this.device = device;
        this.cl = cl;
        this.program = program;
        this.plain = plain;
        this.typedefs = typedefs;
    }

    static OpenClProgram build(OpenClDevice owner, ClLibrary cl, MemorySegment context, MemorySegment device, String source,
                               String options, boolean plain) {
        java.util.Objects.requireNonNull(source, "source");
        try {
            return buildOnce(owner, cl, context, device, source, options, plain);
        } catch (OpenClBuildException e) {
            if (e.buildLog() == null || !e.buildLog().contains("unable to rename")) {
                throw e;
            }
            // PoCL's kernel cache: another process building the same kernel at the same moment renamed
            // the cached file under this build (seen once while tests ran beside a stress run). Transient:
            // built once more; a second failure is reported
            System.getLogger(OpenClProgram.class.getName()).log(System.Logger.Level.DEBUG,
                    "OpenCL build failed on a cache race; building again", e);
            try {
                return buildOnce(owner, cl, context, device, source, options, plain);
            } catch (RuntimeException again) {
                again.addSuppressed(e);
                throw again;
            }
        }
    }

    private static OpenClProgram buildOnce(OpenClDevice owner, ClLibrary cl, MemorySegment context, MemorySegment device,
                                           String source, String options, boolean plain) {
        // #line keeps the build log's line numbers those of the caller's source
        String full = HEADER + "\n#line 1\n" + source;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment err = a.allocate(JAVA_INT);
            MemorySegment strings = a.allocate(ADDRESS);
            strings.set(ADDRESS, 0, a.allocateFrom(full, StandardCharsets.UTF_8));
            MemorySegment[] created = new MemorySegment[1];
            // under the launch lock, which the device's close takes to mark itself closed: the context is
            // not released meanwhile. The program retains it, so the build below needs no lock (a close
            // during the build is caught by OpenClDevice.build)
            owner.launcher().whileNoLaunch(() -> {
                owner.context().checkUsable("clCreateProgramWithSource");
                try {
                    created[0] = (MemorySegment) cl.createProgramWithSource.invokeExact(context, 1, strings, MemorySegment.NULL, err);
                } catch (Throwable t) {
                    throw new IllegalStateException(t);
                }
            });
            MemorySegment program = created[0];
            check("clCreateProgramWithSource", err.get(JAVA_INT, 0));
            MemorySegment devs = a.allocate(ADDRESS);
            devs.set(ADDRESS, 0, device);
            int rc = call(cl.buildProgram, program, 1, devs, a.allocateFrom(options, StandardCharsets.UTF_8),
                    MemorySegment.NULL, MemorySegment.NULL);
            if (rc != ClLibrary.CL_SUCCESS) {
                String log = buildLog(cl, program, device);
                call(cl.releaseProgram, program);
                throw new OpenClBuildException(rc, owner.name(), log);
            }
            return new OpenClProgram(owner, cl, program, plain, SourceTypedefs.of(source));
        }
    }

    private static String buildLog(ClLibrary cl, MemorySegment program, MemorySegment device) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment size = a.allocate(JAVA_LONG);
            if (call(cl.getProgramBuildInfo, program, device, ClLibrary.CL_PROGRAM_BUILD_LOG, 0L, MemorySegment.NULL, size) != 0) {
                return "(no build log)";
            }
            long n = size.get(JAVA_LONG, 0);
            MemorySegment buf = a.allocate(Math.max(1, n));
            call(cl.getProgramBuildInfo, program, device, ClLibrary.CL_PROGRAM_BUILD_LOG, n, buf, MemorySegment.NULL);
            return buf.getString(0, StandardCharsets.UTF_8).strip();
        }
    }

    private static String header() {
        try (InputStream in = OpenClProgram.class.getResourceAsStream("hetmem.h")) {
            if (in == null) {
                throw new IllegalStateException("hetmem.h is missing from the opencl module's resources");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    OpenClDevice device() {
        return device;
    }

    boolean plain() {
        return plain;
    }

    /**
     * Kernel {@code name} of this program with its scalar arguments (Integer, Long, Float, Double,
     * a BigInteger for a {@code ulong} of 2^63 or more (it fills any parameter it is in range of and,
     * for a {@code float} or {@code double}, that holds it exactly; a BigInteger[] a vector),
     * a {@link OpenClDevice.PlainBuffer} or an {@link OpenClKernel.LocalMemory}, in the order they follow the region arguments in the
     * kernel's signature). The OpenCL kernel object is created on first use of {@code name} and
     * shared by every {@link OpenClKernel} of that name; this program's {@link #close} releases it.
     * Each scalar is checked at launch against the parameter's declared type (the program is built
     * with {@code -cl-kernel-arg-info}) and converted where no value changes: a Double for a
     * {@code float} parameter (if it stays finite), an Integer for a {@code long}, a Long for an
     * {@code int} in range, a whole number for a {@code float} or {@code double} that holds it
     * exactly; an array of the element type fills a vector parameter ({@code float[]} of 4 for a
     * {@code float4}; a typedef of a built-in type the source declares plainly is taken as that
     * type); a PlainBuffer fills a {@code __global} or {@code __constant} pointer, and an
     * {@link OpenClKernel.LocalMemory} a {@code __local} one (its size; OpenCL allocates it for each
     * work-group). A mismatch throws {@link IllegalArgumentException}
     * naming the parameter as the source names it. (Where the platform gives no argument
     * information, a Byte, Short, Integer, Long, Float or Double fills 1, 2, 4, 8, 4 or 8 bytes, and a
     * BigInteger, whose parameter's size is unknown then, is refused.)
     *
     * @param name the name of a {@code __kernel} function in this program's source
     * @param scalars the kernel's scalar arguments, in order; none for a kernel without
     * @return the kernel with these scalars, ready to launch on this program's device
     * @throws IllegalStateException if this program is closed
     * @throws OpenClException if the program has no kernel {@code name} (CL_INVALID_KERNEL_NAME)
     *         or OpenCL cannot create it
     * @throws IllegalArgumentException if a scalar is of another type than those above, or the
     *         {@link OpenClKernel.LocalMemory} scalars together exceed the device's local memory
     * @throws NullPointerException if a scalar is null
     */
    public synchronized OpenClKernel kernel(String name, Object... scalars) {
        // under the monitor that close() holds while it releases: no kernel is created from a released
        // program, nor left out of the release
        if (closed) {
            throw new IllegalStateException("program is closed");
        }
        MemorySegment k = kernels.computeIfAbsent(name, n -> {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment err = a.allocate(JAVA_INT);
                MemorySegment h;
                try {
                    h = (MemorySegment) cl.createKernel.invokeExact(program, a.allocateFrom(n, StandardCharsets.UTF_8), err);
                } catch (Throwable t) {
                    throw new IllegalStateException(t);
                }
                check("clCreateKernel", err.get(JAVA_INT, 0), "kernel '" + n + "'");
                return h;
            }
        });
        // its parameters are read now, while the program is open: a launch reads them before it takes the
        // launch lock (the core asks which arguments are plain), and must never ask a released kernel
        signature(name, k);
        return new OpenClKernel(this, name, k, scalars);
    }

    /** Parameter {@code index} of kernel {@code name} as its source declares it (see {@link KernelParameter}). */
    KernelParameter parameter(String name, MemorySegment kernel, int index) {
        return parameters.computeIfAbsent(name + "#" + index, k -> {
            KernelParameter p = KernelParameter.of(cl, kernel, index);
            String builtIn = p.pointer() ? null : typedefs.get(p.type());
            // a typedef'd scalar or vector (OpenCL names the typedef): taken as the type it stands for. Not a
            // ulong4: in a kernel that uses hetmem.h that is an HM_REGION slot, and a typedef of it must not
            // become one (region arguments would bind to it)
            return builtIn == null || builtIn.equals("ulong4") ? p : new KernelParameter(p.name(), builtIn, p.address(), p.type());
        });
    }

    private final java.util.concurrent.ConcurrentHashMap<String, KernelParameter> parameters =
            new java.util.concurrent.ConcurrentHashMap<>();
    private final java.util.concurrent.ConcurrentHashMap<String, KernelSignature> signatures =
            new java.util.concurrent.ConcurrentHashMap<>();

    /** How kernel {@code name}'s parameters take a launch's arguments (see {@link KernelSignature}). */
    KernelSignature signature(String name, MemorySegment kernel) {
        KernelSignature s = signatures.get(name);
        if (s == null) {
            s = KernelSignature.read(this, name, kernel, device.poolCount());
            signatures.putIfAbsent(name, s);
        }
        return s;
    }

    void setArg(MemorySegment kernel, int index, long size, MemorySegment value, String what) {
        OpenClLauncher.setArg(cl, kernel, index, size, value, what);
    }

    /**
     * Releases the program and its kernels, once, whoever calls first (its user, or the device's
     * close); under the device's launch lock, so that no kernel of it is running or being bound then,
     * and a launch of one of its kernels afterwards is refused ({@link #checkOpen}). Holds this
     * program's monitor throughout (lock L27, then L4): {@link #kernel} waits for it.
     */
    @Override
    public void close() {
        synchronized (this) {
            // a second closer waits here until the first has released everything
            if (closed) {
                return;
            }
            closed = true;
            device.launcher().whileNoLaunch(() -> {
                for (MemorySegment k : kernels.values()) {
                    call(cl.releaseKernel, k);
                }
                kernels.clear();
                call(cl.releaseProgram, program);
            });
        }
        device.forget(this);
    }

    /** Refuses a launch of kernel {@code kernel} of this program once it is closed (called under the launch lock). */
    void checkOpen(String kernel) {
        if (closed) {
            throw new IllegalStateException("kernel " + kernel + ": its program is closed");
        }
    }

    static long scalarSize(Object v) {
        if (v != null && v.getClass().isArray() && java.lang.reflect.Array.getLength(v) > MAX_VECTOR) {
            throw new IllegalArgumentException("scalar kernel argument " + v.getClass().getComponentType().getSimpleName() + "["
                    + java.lang.reflect.Array.getLength(v) + "]: an array fills a vector parameter, of at most " + MAX_VECTOR
                    + " elements");
        }
        return switch (v) {
            case Byte b -> 1;
            case Short s -> 2;
            case Integer i -> 4;
            case Float f -> 4;
            case Long l -> 8;
            case Double d -> 8;
            case java.math.BigInteger b -> 8;   // a whole number for any integer parameter, up to a ulong's 2^64 - 1
            case OpenClDevice.PlainBuffer b -> java.lang.foreign.ValueLayout.ADDRESS.byteSize();
            case OpenClKernel.LocalMemory m -> m.bytes();
            case byte[] a -> a.length;
            case short[] a -> 2L * a.length;
            case int[] a -> 4L * a.length;
            case long[] a -> 8L * a.length;
            case java.math.BigInteger[] a -> 8L * a.length;   // for a vector of a described parameter only
            case float[] a -> 4L * a.length;
            case double[] a -> 8L * a.length;
            default -> throw new IllegalArgumentException("scalar kernel argument " + shown(v) + " of type "
                    + (v == null ? "null" : v.getClass().getSimpleName())
                    + ": use Byte, Short, Integer, Long, BigInteger, Float, Double, an array of one of them (a vector), a "
                    + "PlainBuffer or OpenClKernel.LocalMemory");
        };
    }

    /** A scalar as messages show it: an array by its elements ({@code [1.0, 2.0]}), anything else as itself. */
    static String shown(Object v) {
        return v != null && v.getClass().isArray() ? java.util.Arrays.deepToString(new Object[] {v}).replaceAll("^\\[|\\]$", "")
                : String.valueOf(v);
    }

    /** The most elements an OpenCL vector has ({@code float16}): the longest array a scalar may be. */
    static final int MAX_VECTOR = 16;

    /** Writes a number, or an array's elements in order, into {@code s}; returns the bytes written. */
    static long put(MemorySegment s, Object v) {
        switch (v) {
            case Byte b -> s.set(ValueLayout.JAVA_BYTE, 0, b);
            case Short h -> s.set(ValueLayout.JAVA_SHORT, 0, h);
            case Integer i -> s.set(ValueLayout.JAVA_INT, 0, i);
            case Float f -> s.set(ValueLayout.JAVA_FLOAT, 0, f);
            case Long l -> s.set(ValueLayout.JAVA_LONG, 0, l);
            case Double d -> s.set(ValueLayout.JAVA_DOUBLE, 0, d);
            case byte[] a -> MemorySegment.copy(a, 0, s, ValueLayout.JAVA_BYTE, 0, a.length);
            case short[] a -> MemorySegment.copy(a, 0, s, ValueLayout.JAVA_SHORT, 0, a.length);
            case int[] a -> MemorySegment.copy(a, 0, s, ValueLayout.JAVA_INT, 0, a.length);
            case long[] a -> MemorySegment.copy(a, 0, s, ValueLayout.JAVA_LONG, 0, a.length);
            case float[] a -> MemorySegment.copy(a, 0, s, ValueLayout.JAVA_FLOAT, 0, a.length);
            case double[] a -> MemorySegment.copy(a, 0, s, ValueLayout.JAVA_DOUBLE, 0, a.length);
            default -> throw new IllegalArgumentException("scalar kernel argument " + v);
        }
        return scalarSize(v);
    }
}
