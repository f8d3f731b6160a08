package dev.hetmem.device.opencl;

import dev.hetmem.driver.DeviceKernel;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * A kernel of an {@link OpenClProgram} with its scalar arguments (numbers, or plain buffers of
 * the same device for {@code __global} parameters), ready to launch with
 * {@code UnifiedMemory.launch(node, kernel, globalSize, regionArgs...)}. Immutable: launches with
 * other scalars take {@link #with}.
 */
public final class OpenClKernel implements DeviceKernel {
    private final OpenClProgram program;
    private final String name;
    private final MemorySegment handle;
    private final Object[] scalars;
    /** Width of a 2-D range (dimension 0), or 0 for a 1-D range over the launch's items. */
    private final long columns;
    /** Work-group size per dimension, or null to let OpenCL choose. */
    private final long[] group;

    OpenClKernel(OpenClProgram program, String name, MemorySegment handle, Object[] scalars) {
        this(program, name, handle, scalars, 0, null);
    }

    private OpenClKernel(OpenClProgram program, String name, MemorySegment handle, Object[] scalars, long columns,
                         long[] group) {
        this.program = program;
        this.name = name;
        this.handle = handle;
        this.scalars = scalars.clone();
        for (int i = 0; i < this.scalars.length; i++) {
            if (this.scalars[i] != null && this.scalars[i].getClass().isArray()) {
                OpenClProgram.scalarSize(this.scalars[i]);   // its length checked before it is copied
                // a vector's elements, copied: the kernel is immutable whatever the caller does to its array
                Object copy = java.lang.reflect.Array.newInstance(this.scalars[i].getClass().getComponentType(),
                        java.lang.reflect.Array.getLength(this.scalars[i]));
                System.arraycopy(this.scalars[i], 0, copy, 0, java.lang.reflect.Array.getLength(copy));
                this.scalars[i] = copy;
            }
        }
        this.columns = columns;
        this.group = group;
        for (Object s : this.scalars) {
            OpenClProgram.scalarSize(s);
        }
        checkLocalMemory(program.device().context().localMemory);
    }

    /**
     * The value of a {@code __local} pointer parameter: {@code bytes} of local memory, which OpenCL
     * gives each work-group of the launch for its own (as {@code clSetKernelArg} with a size and no
     * value). Passed among the kernel's scalars, in the parameter's place:
     * {@code program.kernel("reduce", new OpenClKernel.LocalMemory(256 * 4)).local(256)}. The
     * parameters' sizes together must fit the device's {@code CL_DEVICE_LOCAL_MEM_SIZE}: a kernel
     * asking for more is refused when it is made ({@link OpenClProgram#kernel}, {@link #with}),
     * naming both. The kernel's own {@code __local} arrays (declared in its body) are not counted
     * there: a launch whose arrays and parameters together exceed the device fails with OpenCL's
     * error ({@code CL_OUT_OF_RESOURCES}), its data intact.
     *
     * @param bytes the local memory's size in bytes; positive
     */
    public record LocalMemory(long bytes) {
        /**
         * Local memory of {@code bytes} bytes for each work-group.
         *
         * @throws IllegalArgumentException if {@code bytes} is not positive
         */
        public LocalMemory {
            if (bytes <= 0) {
                throw new IllegalArgumentException("local memory of " + bytes + " bytes: must be positive");
            }
        }
    }

    /**
     * This kernel run in work-groups of {@code items} work items, over a 1-D range of the launch's
     * global size (a kernel with {@code __local} memory and barriers needs a known group size).
     * The global size must be a multiple of it; a tiled launch cuts tiles at multiples of it.
     *
     * @param items work items per group; positive
     * @return a copy of this kernel with the group size set
     * @throws IllegalArgumentException if {@code items} is not positive
     */
    public OpenClKernel local(long items) {
        if (items <= 0) {
            throw new IllegalArgumentException("work-group size " + items + " must be positive");
        }
        return new OpenClKernel(program, name, handle, scalars, 0, new long[] {items});
    }

    /**
     * This kernel over a 2-D range: {@code columns} wide (dimension 0, {@code get_global_id(0)})
     * and the launch's global size tall (dimension 1: the rows, which per-item windows describe and
     * a tiled launch cuts), in work-groups of {@code groupColumns} by {@code groupRows}.
     *
     * @param columns      the range's width; positive and a multiple of {@code groupColumns}
     * @param groupColumns work-group width; positive
     * @param groupRows    work-group height; positive (the global size must be a multiple of it)
     * @return a copy of this kernel with the 2-D range set
     * @throws IllegalArgumentException if a value is not positive or {@code columns} is not a
     *         multiple of {@code groupColumns}
     */
    public OpenClKernel rows(long columns, long groupColumns, long groupRows) {
        if (columns <= 0 || groupColumns <= 0 || groupRows <= 0 || columns % groupColumns != 0) {
            throw new IllegalArgumentException("2-D range of " + columns + " columns in work-groups of " + groupColumns + " x "
                    + groupRows + ": all must be positive, and the columns a multiple of the group's width");
        }
        return new OpenClKernel(program, name, handle, scalars, columns, new long[] {groupColumns, groupRows});
    }

    /** Items (rows, for a 2-D range) per work-group: tiles and the global size are multiples of it. */
    @Override
    public long itemMultiple() {
        return group == null ? 1 : group[group.length - 1];
    }

    /** Width of a 2-D range, or 0 for a 1-D one. */
    long columns() {
        return columns;
    }

    /** The work-group size per dimension, or null for OpenCL's choice. */
    long[] group() {
        return group;
    }

    /**
     * The same kernel with other scalar arguments; this one is unchanged.
     *
     * @param scalars the new scalar arguments, in order, of the types {@link OpenClProgram#kernel} accepts
     * @return a kernel of the same program and name with {@code scalars}
     * @throws IllegalArgumentException if a scalar is of a type {@link OpenClProgram#kernel} does not
     *         accept, or the {@link LocalMemory} scalars together exceed the device's local memory
     * @throws NullPointerException if a scalar is null
     */
    public OpenClKernel with(Object... scalars) {
        return new OpenClKernel(program, name, handle, scalars, columns, group);
    }

    /**
     * The kernel's function name.
     *
     * @return the name of the {@code __kernel} function in the program's source, as given to
     *         {@link OpenClProgram#kernel}
     */
    public String name() {
        return name;
    }

    OpenClProgram program() {
        return program;
    }

    MemorySegment handle() {
        return handle;
    }

    /** How the kernel's parameters take a launch's arguments (read once, on first use). */
    KernelSignature signature() {
        return program.signature(name, handle);
    }

    /**
     * Whether region argument {@code index} fills a {@code __global} pointer of the kernel: the
     * core places its pages in consecutive frames and the kernel gets one buffer over them.
     */
    @Override
    public boolean plainArgument(int index) {
        return signature().plain(index);
    }

    int scalarCount() {
        return scalars.length;
    }

    /** Sets the scalars from argument index {@code first}; the caller holds the device's launch lock. */
    void setScalars(int first, Arena a) {
        for (int i = 0; i < scalars.length; i++) {
            setScalar(first + i, i, a);
        }
    }

    /**
     * Throws unless this kernel's {@link LocalMemory} scalars together fit the device's local memory
     * of {@code limit} bytes per work-group: refused when the kernel is made, not at a launch.
     */
    private void checkLocalMemory(long limit) {
        long total = 0;
        for (Object s : scalars) {
            if (s instanceof LocalMemory m) {
                total = total + m.bytes() < 0 ? Long.MAX_VALUE : total + m.bytes();
            }
        }
        if (total > limit) {
            throw new IllegalArgumentException("kernel " + name + " asks for " + total + " bytes of local memory per "
                    + "work-group (its LocalMemory arguments together); the device has " + limit
                    + " (CL_DEVICE_LOCAL_MEM_SIZE)");
        }
    }

    /** Sets parameter {@code param} to scalar {@code i}; the caller holds the device's launch lock. */
    void setScalar(int param, int i, Arena a) {
        MemorySegment v = a.allocate(8L * OpenClProgram.MAX_VECTOR);   // the largest value: a double16
        KernelParameter p = program.parameter(name, handle, param);
        if (p == KernelParameter.NONE) {
            throw new IllegalArgumentException("kernel " + name + " has no parameter for scalar " + i + " (" + OpenClProgram.shown(scalars[i])
                    + "): it takes " + i + " scalar(s) besides its region arguments");
        }
        long size;
        if (p == KernelParameter.UNKNOWN) {
            if (scalars[i] instanceof java.math.BigInteger) {
                throw new IllegalArgumentException("kernel " + name + ": scalar " + i + " is a BigInteger (" + scalars[i]
                        + "), and this platform does not describe the kernel's parameters: hetmem cannot tell the "
                        + "parameter's size here (pass a Long, whose bits a ulong takes as they are)");
            }
            if (scalars[i].getClass().isArray()) {
                // a vector's size depends on its type (a float3 takes 16 bytes), which this platform does not say
                throw new IllegalArgumentException("kernel " + name + ": scalar " + i + " is an array ("
                        + OpenClProgram.shown(scalars[i]) + "), and this platform does not describe the kernel's parameters: "
                        + "hetmem cannot check a vector parameter's type here");
            }
            size = OpenClProgram.scalarSize(scalars[i]);
            if (!(scalars[i] instanceof PlainBuffers.Buffer) && !(scalars[i] instanceof LocalMemory)) {
                OpenClProgram.put(v, scalars[i]);
            }
        } else {
            size = p.put(v, scalars[i], name);
        }
        if (scalars[i] instanceof LocalMemory) {
            // a size and no value: OpenCL allocates that much local memory for each work-group
            v = MemorySegment.NULL;
        }
        if (scalars[i] instanceof PlainBuffers.Buffer b) { // the one OpenClDevice.PlainBuffer
            if (b.device() != program.device()) {
                throw new IllegalArgumentException("argument " + i + " of " + name + " is a buffer of another device");
            }
            v.set(java.lang.foreign.ValueLayout.ADDRESS, 0, b.liveHandle());
        }
        program.setArg(handle, param, size, v, (p == KernelParameter.UNKNOWN ? "scalar " + i : "parameter '" + p.name() + "'")
                + " = " + OpenClProgram.shown(scalars[i]));
    }

    @Override
    public String toString() {
        return "OpenClKernel[" + name + Arrays.deepToString(scalars) + "]";
    }
}
