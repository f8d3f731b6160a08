package dev.hetmem;

import dev.hetmem.device.opencl.OpenClDevice;
import dev.hetmem.device.opencl.OpenClPlatforms;
import dev.hetmem.device.opencl.OpenClProgram;
import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.driver.DeviceKernel;

import java.lang.foreign.MemorySegment;

/** The core tests' kernels in OpenCL C, for running the core suite on the OpenCL device. */
final class OpenClTestDevice implements TestDevice {
    private static final String SOURCE = """
            __kernel void noop(HM_SPACE_PARAMS, HM_REGION(x)) {}

            __kernel void addLongs(HM_SPACE_PARAMS, HM_REGION(x), const long delta) {
                __global long *p = HM_WPTR(long, x, get_global_id(0));
                *p += delta;
            }

            __kernel void atomicCount(HM_SPACE_PARAMS, HM_REGION(x), const int slots) {
                atomic_add(HM_WPTR(int, x, get_global_id(0) % slots), 1);
            }

            __kernel void putLong(HM_SPACE_PARAMS, HM_REGION(x), const ulong at, const long v) {
                *HM_WPTR(long, x, at / 8) = v;
            }

            __kernel void incrementInto(HM_SPACE_PARAMS, HM_REGION(src), HM_REGION(dst)) {
                size_t i = get_global_id(0);
                *HM_WPTR(long, dst, i) = *HM_PTR(long, src, i) + 1;
            }

            __kernel void plainIncrementInto(__global const long *src, __global long *dst) {
                size_t i = get_global_id(0);
                dst[i] = src[i] + 1;
            }

            __kernel void addFloats(HM_SPACE_PARAMS, HM_REGION(a), HM_REGION(b), HM_REGION(c)) {
                size_t i = get_global_id(0);
                *HM_WPTR(float, c, i) = *HM_PTR(float, a, i) + *HM_PTR(float, b, i);
            }

            __kernel void threeArguments(HM_SPACE_PARAMS, HM_REGION(x), HM_REGION(y), HM_REGION(z)) {
                *HM_WPTR(long, y, 0) = *HM_PTR(long, x, 2 * 4096 / 8) + 1;
                *HM_WPTR(long, y, 4096 / 8) = *HM_PTR(long, z, 0) + 2;
            }

            __kernel void copyOut(HM_SPACE_PARAMS, HM_REGION(src), __global long *dst) {
                size_t i = get_global_id(0);
                dst[i] = *HM_PTR(long, src, i);
            }

            __kernel void copyIn(HM_SPACE_PARAMS, HM_REGION(dst), __global const long *src) {
                size_t i = get_global_id(0);
                *HM_WPTR(long, dst, i) = src[i];
            }
            """;

    private final OpenClDevice device;
    private final OpenClProgram program;

    OpenClTestDevice(long capacity) {
        // the driver's pools are whole 2 MiB chunks; tests ask for multiples of that
        // pools in shared host memory (the default on a CPU device) for every other power of two of
        // capacity (4, 16, 64, 256 MiB...), the device's own buffers for the rest (8, 32, 128, 512 MiB...): the
        // core suite covers both ways of moving pages
        long chunks = Math.ceilDiv(capacity, 2L << 20);
        this.device = OpenClDevice.builder().capacity(chunks * (2L << 20))
                .sharedPools((Long.numberOfTrailingZeros(chunks) & 1) == 1).build();
        this.program = device.compile(SOURCE);
    }

    /** Registered for the core suite's {@code hetmem.test.device=opencl} runs. */
    public static final class Factory implements TestDevice.Factory {
        @Override
        public String kind() {
            return "opencl";
        }

        @Override
        public TestDevice create(long capacity) {
            String why = OpenClPlatforms.unavailableReason();
            if (why != null) {
                if ("true".equals(System.getenv("CI"))) {
                    throw new AssertionError("CI must run the core suite on OpenCL: " + why);
                }
                org.junit.jupiter.api.Assumptions.abort(why);
            }
            return new OpenClTestDevice(capacity);
        }
    }

    @Override
    public DeviceDriver driver() {
        return device;
    }

    @Override
    public LaunchResult read(UnifiedMemory mem, Region r, long offset, long pages, MemorySegment dst) {
        long bytes = pages * 4096;
        try (OpenClDevice.PlainBuffer buf = device.plainBuffer(bytes)) {
            LaunchResult res = mem.launch(device.node(), program.kernel("copyOut", buf), bytes / 8,
                    KernelArg.of(r, offset, bytes, Access.READ));
            buf.read(dst.asSlice(0, bytes));
            return res;
        }
    }

    @Override
    public LaunchResult write(UnifiedMemory mem, Region r, long offset, long pages, MemorySegment src) {
        long bytes = pages * 4096;
        try (OpenClDevice.PlainBuffer buf = device.plainBuffer(bytes)) {
            buf.write(src.asSlice(0, bytes));
            return mem.launch(device.node(), program.kernel("copyIn", buf), bytes / 8,
                    KernelArg.of(r, offset, bytes, Access.WRITE));
        }
    }

    @Override
    public DeviceKernel noop() {
        return program.kernel("noop");
    }

    @Override
    public DeviceKernel addLongs(long delta) {
        return program.kernel("addLongs", delta);
    }

    @Override
    public DeviceKernel putLong(long offset, long value) {
        return program.kernel("putLong", offset, value);
    }

    @Override
    public DeviceKernel plainIncrementInto() {
        return program.kernel("plainIncrementInto");
    }

    @Override
    public DeviceKernel incrementInto() {
        return program.kernel("incrementInto");
    }

    @Override
    public DeviceKernel addFloats() {
        return program.kernel("addFloats");
    }

    @Override
    public DeviceKernel threeArguments() {
        return program.kernel("threeArguments");
    }

    @Override
    public void failAllocation(int after) {
        device.failAllocation(after);
    }

    @Override
    public void failRunsOfAtLeast(int frames) {
        device.failRunsOfAtLeast(frames);
    }

    @Override
    public DeviceKernel atomicCount(int slots) {
        return program.kernel("atomicCount", slots);
    }

    @Override
    public void failCopy(int after) {
        device.failCopy(after);
    }

    @Override
    public void failExecute(int after) {
        device.failExecute(after);
    }

    @Override
    public long invalidations() {
        return device.invalidations();
    }
}
