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

    OpenClKernel(OpenClProgram program, String name, MemorySegment handle, Object[] scalars) {
        this.program = program;
        this.name = name;
        this.handle = handle;
        this.scalars = scalars.clone();
        for (Object s : this.scalars) {
            OpenClProgram.scalarSize(s);
        }
    }

    /**
     * The same kernel with other scalar arguments; this one is unchanged.
     *
     * @param scalars the new scalar arguments, in order, of the types {@link OpenClProgram#kernel} accepts
     * @return a kernel of the same program and name with {@code scalars}
     * @throws IllegalArgumentException if a scalar is of a type {@link OpenClProgram#kernel} does not accept
     * @throws NullPointerException if a scalar is null
     */
    public OpenClKernel with(Object... scalars) {
        return new OpenClKernel(program, name, handle, scalars);
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

    /** Sets the scalars from argument index {@code first}; the caller holds the device's launch lock. */
    void setScalars(int first, Arena a) {
        for (int i = 0; i < scalars.length; i++) {
            MemorySegment v = a.allocate(8);
            KernelParameter p = program.parameter(name, handle, first + i);
            if (p == KernelParameter.NONE) {
                throw new IllegalArgumentException("kernel " + name + " has no parameter for scalar " + i + " (" + scalars[i]
                        + "): it takes " + i + " scalar(s) after its region arguments");
            }
            long size;
            if (p == KernelParameter.UNKNOWN) {
                size = OpenClProgram.scalarSize(scalars[i]);
                if (!(scalars[i] instanceof PlainBuffers.Buffer)) {
                    OpenClProgram.put(v, scalars[i]);
                }
            } else {
                size = p.put(v, scalars[i], name);
            }
            if (scalars[i] instanceof PlainBuffers.Buffer b) { // the one OpenClDevice.PlainBuffer
                if (b.device() != program.device()) {
                    throw new IllegalArgumentException("argument " + i + " of " + name + " is a buffer of another device");
                }
                v.set(java.lang.foreign.ValueLayout.ADDRESS, 0, b.handle());
            }
            program.setArg(handle, first + i, size, v, (p == KernelParameter.UNKNOWN ? "scalar " + i : "parameter '" + p.name() + "'")
                    + " = " + scalars[i]);
        }
    }

    @Override
    public String toString() {
        return "OpenClKernel[" + name + Arrays.toString(scalars) + "]";
    }
}
