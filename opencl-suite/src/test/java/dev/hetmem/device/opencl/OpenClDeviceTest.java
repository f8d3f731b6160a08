package dev.hetmem.device.opencl;

import dev.hetmem.driver.DeviceFaultException;

import dev.hetmem.Access;
import dev.hetmem.Advice;
import dev.hetmem.HostView;
import dev.hetmem.KernelArg;
import dev.hetmem.LaunchResult;
import dev.hetmem.Region;
import dev.hetmem.UnifiedMemory;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.math.BigInteger;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class OpenClDeviceTest {
    private static final long MiB = 1L << 20;

    private static final String ADD = """
            __kernel void add(HM_SPACE_PARAMS, HM_REGION(a), HM_REGION(b), HM_REGION(c)) {
                size_t i = get_global_id(0);
                *HM_WPTR(float, c, i) = *HM_PTR(float, a, i) + *HM_PTR(float, b, i);
            }
            """;

    /** A plain kernel: b[i] = 2 a[i], with ordinary pointers. */
    private static final String TWICE = """
            __kernel void twice(__global const float *a, __global float *b) {
                b[get_global_id(0)] = 2.0f * a[get_global_id(0)];
            }
            """;

    /** Float i of r's first n is i. */
    private static void fillIndices(Region r, int n) {
        try (HostView v = r.host(0, 4L * n, Access.WRITE)) {
            for (int i = 0; i < n; i++) {
                v.segment().setAtIndex(ValueLayout.JAVA_FLOAT, i, i);
            }
        }
    }

    /** Each work-group of 64 items sums its items' inputs in local memory (a __local parameter). */
    private static final String GROUP_SUMS = """
            __kernel void groupSums(__global const float *in, __global float *out, __local float *scratch) {
                const size_t l = get_local_id(0);
                scratch[l] = in[get_global_id(0)];
                barrier(CLK_LOCAL_MEM_FENCE);
                for (size_t s = get_local_size(0) / 2; s > 0; s >>= 1) {
                    if (l < s) {
                        scratch[l] += scratch[l + s];
                    }
                    barrier(CLK_LOCAL_MEM_FENCE);
                }
                if (l == 0) {
                    out[get_group_id(0)] = scratch[0];
                }
            }
            __kernel void scaled(__global float *x, const int k) {
                x[get_global_id(0)] *= k;
            }
            """;

    /**
     * A kernel with a {@code __local} pointer parameter, as existing OpenCL code has (reductions, tiled
     * products), runs on regions: the parameter takes its size as {@link OpenClKernel.LocalMemory}
     * (before, no value could fill it). Sizes the device cannot give, and local memory for a parameter
     * that is not {@code __local} (or a number for one that is), are refused naming the parameter or
     * the limit.
     */
    @Test
    void aKernelWithLocalMemoryRunsOnRegionsAndBadSizesAreRefused() {
        try (OpenClDevice dev = OpenClFixture.device(16 * MiB);
             UnifiedMemory mem = UnifiedMemory.builder().device(dev).build();
             OpenClProgram p = dev.compile(GROUP_SUMS)) {
            int n = 64 * 1024;
            Region in = mem.allocate(4L * n);
            Region out = mem.allocate(4L * (n / 64));
            try (HostView v = in.host(0, 4L * n, Access.WRITE)) {
                for (int i = 0; i < n; i++) {
                    v.segment().setAtIndex(ValueLayout.JAVA_FLOAT, i, i % 7);
                }
            }
            OpenClKernel sums = p.kernel("groupSums", new OpenClKernel.LocalMemory(64 * 4)).local(64);
            mem.launch(1, sums, n, KernelArg.read(in), KernelArg.write(out));
            try (HostView v = out.host(0, 4L * (n / 64), Access.READ)) {
                for (int g = 0; g < n / 64; g++) {
                    float expected = 0;
                    for (int i = 64 * g; i < 64 * g + 64; i++) {
                        expected += i % 7;
                    }
                    assertEquals(expected, v.segment().getAtIndex(ValueLayout.JAVA_FLOAT, g), "group " + g);
                }
            }

            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new OpenClKernel.LocalMemory(0));
            assertTrue(e.getMessage().contains("0 bytes"), e.getMessage());
            long limit = dev.context().localMemory;
            assertTrue(limit > 0, "the device reports its local memory: " + limit);
            e = assertThrows(IllegalArgumentException.class,
                    () -> p.kernel("groupSums", new OpenClKernel.LocalMemory(limit + 1)));
            assertTrue(e.getMessage().contains((limit + 1) + " bytes") && e.getMessage().contains(limit + " (CL_DEVICE_LOCAL_MEM_SIZE)"),
                    e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> sums.with(new OpenClKernel.LocalMemory(limit),
                    new OpenClKernel.LocalMemory(1)));
            assertTrue(e.getMessage().contains("CL_DEVICE_LOCAL_MEM_SIZE"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> mem.launch(1, p.kernel("groupSums", 64).local(64), n, KernelArg.read(in), KernelArg.write(out)));
            assertTrue(e.getMessage().contains("parameter 'scratch'") && e.getMessage().contains("OpenClKernel.LocalMemory"),
                    e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> mem.launch(1,
                    p.kernel("scaled", new OpenClKernel.LocalMemory(64)), n, KernelArg.readWrite(in)));
            assertTrue(e.getMessage().contains("parameter 'k'") && e.getMessage().contains("__local pointer parameter"),
                    e.getMessage());
            // the refused launches changed nothing
            try (HostView v = in.host(0, 4L * n, Access.READ)) {
                for (int i = 0; i < n; i += 97) {
                    assertEquals(i % 7, v.segment().getAtIndex(ValueLayout.JAVA_FLOAT, i), "in[" + i + "]");
                }
            }
            assertTrue(mem.verify().isEmpty(), () -> String.join("\n", mem.verify()));
        }
    }

    /**
     * A parameter whose name or type is longer than 256 bytes is read whole: before, a fixed 256-byte
     * buffer could not hold them, the platform refused the query, and this valid launch was refused
     * ("kernel k takes 0 scalar(s) besides its 1 region argument(s); given 1").
     */
    @Test
    void longParameterNamesAndTypesAreReadWhole() {
        String name = "p" + "x".repeat(299);
        String type = "t" + "y".repeat(299);
        String source = "typedef unsigned int " + type + ";\n__kernel void k(__global float *x, const " + type + " " + name
                + ") { x[get_global_id(0)] = (float) " + name + "; }\n";
        try (OpenClDevice dev = OpenClFixture.device(16 * MiB);
             UnifiedMemory mem = UnifiedMemory.builder().device(dev).build();
             OpenClProgram p = dev.compile(source)) {
            Region x = mem.allocate(4096);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> mem.launch(1, p.kernel("k", -1), 1024, KernelArg.write(x)));
            assertTrue(e.getMessage().contains("parameter '" + name + "' (" + type + ", a typedef of uint)")
                    && e.getMessage().contains("negative"), e.getMessage());
            mem.launch(1, p.kernel("k", 7), 1024, KernelArg.write(x));
            try (HostView h = x.host(0, 4096, Access.READ)) {
                assertEquals(7f, h.segment().getAtIndex(ValueLayout.JAVA_FLOAT, 1023));
            }
        }
    }

    /** Vector and typedef'd scalar parameters, as existing OpenCL code has them. */
    private static final String VECTORS = """
            typedef float real;
            typedef unsigned int count_t;
            typedef count_t n_t;
            typedef struct { float lo, hi; } range_t;
            __kernel void vec(__global float *x, const float4 v, const real a, const int2 k, const n_t c) {
                x[get_global_id(0)] = v.x + 2 * v.y + 3 * v.z + 4 * v.w + a + k.x * k.y + c;
            }
            __kernel void ranged(__global float *x, const range_t r) {
                x[get_global_id(0)] = clamp(x[get_global_id(0)], r.lo, r.hi);
            }
            __kernel void bytes(__global float *x, const uchar4 u, const float3 f) {
                x[get_global_id(0)] = u.x + u.y + u.z + u.w + f.x + f.y + f.z;
            }
            __kernel void forged(HM_SPACE_PARAMS, const ulong4 seed, HM_REGION(x)) {
                *HM_WPTR(float, x, get_global_id(0)) = 1.0f;
            }
            """;

    /**
     * A vector parameter ({@code float4}, {@code int2}) takes a Java array of its element type and
     * width, and a parameter whose type the source typedefs from a built-in one (OpenCL names it by
     * the typedef) a value of that type, converted by its rules (before, both were refused: "hetmem
     * passes no Java value as float4"). A wrong width or element type names the parameter; a type
     * hetmem cannot see through (a struct) is still refused naming it; the kernel keeps its own copy
     * of an array.
     */
    @Test
    void vectorAndTypedefdScalarParametersTakeJavaValues() {
        try (OpenClDevice dev = OpenClFixture.device(16 * MiB);
             UnifiedMemory mem = UnifiedMemory.builder().device(dev).build();
             OpenClProgram p = dev.compile(VECTORS)) {
            int n = 1024;
            Region x = mem.allocate(4L * n);
            float[] v = {1, 2, 3, 4};
            OpenClKernel k = p.kernel("vec", v, 0.5, new int[] {3, 5}, 7);   // a Double for real (float), exact
            v[0] = 100;   // the kernel has its own copy
            mem.launch(1, k, n, KernelArg.write(x));
            try (HostView h = x.host(0, 4L * n, Access.READ)) {
                for (int i = 0; i < n; i++) {
                    assertEquals(1 + 4 + 9 + 16 + 0.5f + 15 + 7, h.segment().getAtIndex(ValueLayout.JAVA_FLOAT, i), "x[" + i + "]");
                }
            }
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> mem.launch(1,
                    p.kernel("vec", new float[] {1, 2, 3}, 0.5f, new int[] {3, 5}, 7), n, KernelArg.write(x)));
            assertTrue(e.getMessage().contains("parameter 'v' (float4)") && e.getMessage().contains("4 elements, given 3")
                    && e.getMessage().contains("[1.0, 2.0, 3.0]"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> mem.launch(1,
                    p.kernel("vec", new int[] {1, 2, 3, 4}, 0.5f, new int[] {3, 5}, 7), n, KernelArg.write(x)));
            assertTrue(e.getMessage().contains("parameter 'v' (float4)") && e.getMessage().contains("float[] or double[] of 4"),
                    e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> mem.launch(1,
                    p.kernel("vec", v, 0.5f, 3, 7), n, KernelArg.write(x)));
            assertTrue(e.getMessage().contains("parameter 'k' (int2)") && e.getMessage().contains("int[], long[] or BigInteger[] of 2"), e.getMessage());
            // n_t is a typedef of a typedef of unsigned int: taken as a uint
            e = assertThrows(IllegalArgumentException.class, () -> mem.launch(1,
                    p.kernel("vec", v, 0.5f, new int[] {3, 5}, -1), n, KernelArg.write(x)));
            assertTrue(e.getMessage().contains("parameter 'c' (n_t, a typedef of uint)") && e.getMessage().contains("negative"),
                    e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> mem.launch(1,
                    p.kernel("ranged", new float[] {0, 1}), n, KernelArg.readWrite(x)));
            assertTrue(e.getMessage().contains("parameter 'r' (range_t)") && e.getMessage().contains("hetmem passes no Java value"),
                    e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> p.kernel("vec", new float[17], 0.5f, new int[] {3, 5}, 7));
            assertTrue(e.getMessage().contains("float[17]") && e.getMessage().contains("at most 16 elements"), e.getMessage());
            // elements convert by their scalar's rules: 200 is a uchar from an int[], -1 (a byte) is not, nor 256;
            // a float3 takes three floats in the room of four
            mem.launch(1, p.kernel("bytes", new int[] {200, 1, 2, 3}, new double[] {0.25, 0.5, 1}), n, KernelArg.write(x));
            try (HostView h = x.host(0, 4L * n, Access.READ)) {
                assertEquals(206 + 1.75f, h.segment().getAtIndex(ValueLayout.JAVA_FLOAT, n - 1));
            }
            e = assertThrows(IllegalArgumentException.class, () -> mem.launch(1,
                    p.kernel("bytes", new byte[] {-1, 0, 0, 0}, new float[] {0, 0, 0}), n, KernelArg.write(x)));
            assertTrue(e.getMessage().contains("parameter 'u' (uchar4)") && e.getMessage().contains("element 0 (-1)"),
                    e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> mem.launch(1,
                    p.kernel("bytes", new int[] {256, 0, 0, 0}, new float[] {0, 0, 0}), n, KernelArg.write(x)));
            assertTrue(e.getMessage().contains("element 0 (256) does not fit a uchar"), e.getMessage());
            // an HM_REGION no region argument fills cannot take a value: it would be a forged region descriptor
            e = assertThrows(IllegalArgumentException.class, () -> mem.launch(1,
                    p.kernel("forged", (Object) new long[] {0, 1L << 40, 0, 0}), n, KernelArg.write(x)));
            assertTrue(e.getMessage().contains("parameter 'x'") && e.getMessage().contains("takes a region argument"),
                    e.getMessage());
            assertTrue(mem.verify().isEmpty(), () -> String.join("\n", mem.verify()));
        }
    }

    @Test
    void listsDevices() {
        OpenClFixture.needsOpenCl();
        var devices = OpenClPlatforms.devices();
        assertFalse(devices.isEmpty());
        OpenClDeviceInfo d = devices.getFirst();
        assertTrue(d.globalMemory() > 0 && d.maxAllocation() > 0 && d.maxAllocation() <= d.globalMemory(), d.toString());
    }

    @Test
    void kernelReachesRegionsThroughThePageTable() {
        try (OpenClDevice dev = OpenClFixture.device(16 * MiB);
             UnifiedMemory mem = UnifiedMemory.builder().device(dev).build();
             OpenClProgram p = dev.compile(ADD)) {
            int n = 3 * 1024 * 1024 / 4 + 100; // not a whole number of pages or granules
            Region a = mem.allocate(4L * n);
            Region b = mem.allocate(4L * n);
            Region c = mem.allocate(4L * n);
            try (HostView va = a.host(0, 4L * n, Access.WRITE); HostView vb = b.host(0, 4L * n, Access.WRITE)) {
                for (int i = 0; i < n; i++) {
                    va.segment().setAtIndex(ValueLayout.JAVA_FLOAT, i, i);
                    vb.segment().setAtIndex(ValueLayout.JAVA_FLOAT, i, 2f * i);
                }
            }
            LaunchResult r = mem.launch(1, p.kernel("add"), n, KernelArg.read(a), KernelArg.read(b), KernelArg.write(c));
            assertTrue(r.pagesMigrated() >= 2L * (4L * n / 4096), "a and b moved to the device: " + r);
            try (HostView vc = c.host(0, 4L * n, Access.READ)) {
                for (int i = 0; i < n; i++) {
                    assertEquals(3f * i, vc.segment().getAtIndex(ValueLayout.JAVA_FLOAT, i), "c[" + i + "]");
                }
            }
            assertTrue(mem.verify().isEmpty(), () -> String.join("\n", mem.verify()));
        }
    }

    /**
     * Found by a review of the driver: a kernel of a closed program, and a closed plain buffer, reached
     * OpenCL with their released handles (the ICD then reads a freed object). Each use is refused now,
     * naming what was closed, and nothing else changes.
     */
    @Test
    void aKernelOfAClosedProgramAndAClosedPlainBufferAreRefused() {
        try (OpenClDevice dev = OpenClFixture.device(16 * MiB);
             UnifiedMemory mem = UnifiedMemory.builder().device(dev).build()) {
            Region a = mem.allocate(4096);
            Region b = mem.allocate(4096);
            Region c = mem.allocate(4096);
            OpenClProgram p = dev.compile(ADD);
            var add = p.kernel("add");
            mem.launch(1, add, 16, KernelArg.read(a), KernelArg.read(b), KernelArg.write(c));
            p.close();
            p.close();   // once is enough
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> mem.launch(1, add, 16, KernelArg.read(a), KernelArg.read(b), KernelArg.write(c)));
            assertTrue(e.getMessage().contains("kernel add: its program is closed"), e.getMessage());
            // a kernel never launched before its program closed: its parameters were read when it was made
            OpenClProgram unused = dev.compile(ADD);
            var never = unused.kernel("add");
            unused.close();
            e = assertThrows(IllegalStateException.class,
                    () -> mem.launch(1, never, 16, KernelArg.read(a), KernelArg.read(b), KernelArg.write(c)));
            assertTrue(e.getMessage().contains("kernel add: its program is closed"), e.getMessage());
            assertThrows(IllegalStateException.class, () -> unused.kernel("add"), "no kernel from a closed program");

            OpenClDevice.PlainBuffer buf = dev.plainBuffer(4096);
            try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
                var host = arena.allocate(4096);
                buf.write(host);
                buf.close();
                buf.close();
                e = assertThrows(IllegalStateException.class, () -> buf.write(host));
                assertTrue(e.getMessage().contains("is closed"), e.getMessage());
                assertThrows(IllegalStateException.class, () -> buf.read(host));
                try (OpenClProgram q = dev.compile("""
                        __kernel void typed(HM_SPACE_PARAMS, HM_REGION(x), __global float *extra) {
                            *HM_WPTR(float, x, 0) = extra[0];
                        }
                        """)) {
                    e = assertThrows(IllegalStateException.class, () -> mem.launch(1, q.kernel("typed", buf), 1, KernelArg.write(a)));
                    assertTrue(e.getMessage().contains("is closed"), e.getMessage());
                }
            }
            assertTrue(mem.verify().isEmpty(), () -> String.join("\n", mem.verify()));
        }
    }

    @Test
    void aProgramThatDoesNotCompileReportsItsBuildLog() {
        try (OpenClDevice dev = OpenClFixture.device(4 * MiB)) {
            OpenClBuildException e = assertThrows(OpenClBuildException.class, () -> dev.compile("""
                    __kernel void broken(HM_SPACE_PARAMS, HM_REGION(x)) {
                        undeclared_name += 1;
                    }
                    """));
            assertEquals("CL_BUILD_PROGRAM_FAILURE", e.codeName());
            assertTrue(e.buildLog().contains("undeclared_name"), e.buildLog());
            assertTrue(e.getMessage().startsWith("clBuildProgram: CL_BUILD_PROGRAM_FAILURE (-11)"), e.getMessage());
        }
    }

    @Test
    void openClErrorsNameTheCallAndTheCode() {
        try (OpenClDevice dev = OpenClFixture.device(4 * MiB);
             UnifiedMemory mem = UnifiedMemory.builder().device(dev).build();
             OpenClProgram p = dev.compile("""
                     __kernel void scale(HM_SPACE_PARAMS, HM_REGION(x), const float f) {
                         *HM_WPTR(float, x, get_global_id(0)) *= f;
                     }
                     """)) {
            Region x = mem.allocate(4096);
            // the scalar the kernel declares is missing: refused before OpenCL sees it, naming the parameter
            IllegalArgumentException missing = assertThrows(IllegalArgumentException.class,
                    () -> mem.launch(1, p.kernel("scale"), 1024, KernelArg.readWrite(x)));
            assertTrue(missing.getMessage().contains("parameter 'f'") && missing.getMessage().contains("given 0"),
                    missing.getMessage());
            // a work-group larger than the device allows: OpenCL's own error, with the call and the code
            OpenClException e = assertThrows(OpenClException.class,
                    () -> mem.launch(1, p.kernel("scale", 2f).local(1 << 20), 1 << 20, KernelArg.readWrite(mem.allocate(4L << 20))));
            assertEquals("CL_INVALID_WORK_GROUP_SIZE", e.codeName(), e.getMessage());
            assertEquals("clEnqueueNDRangeKernel", e.call());
            OpenClException wrongName = assertThrows(OpenClException.class, () -> p.kernel("no_such_kernel"));
            assertEquals("CL_INVALID_KERNEL_NAME", wrongName.codeName());
            assertTrue(wrongName.getMessage().contains("no_such_kernel"), wrongName.getMessage());
            assertThrows(IllegalArgumentException.class, () -> p.kernel("scale", "not a number"));
            // with the scalar it runs
            mem.launch(1, p.kernel("scale", 2f), 1024, KernelArg.readWrite(x));
        }
    }

    /**
     * Scalars are checked against the parameters' declared types and converted where no value
     * changes (a Java double for a float); a mismatch names the parameter as the source does.
     */
    @Test
    void scalarArgumentsAreCheckedAgainstTheDeclaredTypes() {
        try (OpenClDevice dev = OpenClFixture.device(4 * MiB);
             UnifiedMemory mem = UnifiedMemory.builder().device(dev).build();
             OpenClProgram p = dev.compile("""
                     __kernel void typed(HM_SPACE_PARAMS, HM_REGION(x), int count, long big, float scale, double exact,
                                         __global float *extra) {
                         __global float *out = HM_WPTR(float, x, 0);
                         out[0] = (float) count;
                         out[1] = (float) (big >> 32);
                         out[2] = scale;
                         out[3] = (float) exact;
                         out[4] = extra[0];
                     }
                     """);
             OpenClDevice.PlainBuffer buf = dev.plainBuffer(4096)) {
            Region x = mem.allocate(4096);
            // a Java double for the float, an int for the long: converted, nothing changes
            mem.launch(1, p.kernel("typed", 3, 5, 2.0, 7.0, buf), 1, KernelArg.write(x));
            try (HostView v = x.host(0, 20, Access.READ)) {
                assertEquals(3f, v.segment().getAtIndex(ValueLayout.JAVA_FLOAT, 0));
                assertEquals(0f, v.segment().getAtIndex(ValueLayout.JAVA_FLOAT, 1), "5 >> 32");
                assertEquals(2f, v.segment().getAtIndex(ValueLayout.JAVA_FLOAT, 2), "the double 2.0 passed as a float");
                assertEquals(7f, v.segment().getAtIndex(ValueLayout.JAVA_FLOAT, 3));
            }
            record Wrong(String parameter, Object[] scalars, String why) {}
            for (Wrong w : List.of(
                    new Wrong("count", new Object[] {2.5, 5L, 2f, 7.0, buf}, "int"),
                    new Wrong("count", new Object[] {1L << 40, 5L, 2f, 7.0, buf}, "outside"),
                    new Wrong("big", new Object[] {3, 1.5f, 2f, 7.0, buf}, "long"),
                    new Wrong("scale", new Object[] {3, 5L, 1e300, 7.0, buf}, "too large for a float"),
                    new Wrong("exact", new Object[] {3, 5L, 2f, (1L << 60) + 1, buf}, "exactly"),
                    new Wrong("extra", new Object[] {3, 5L, 2f, 7.0, 4}, "buffer"),
                    new Wrong("scale", new Object[] {3, 5L, buf, 7.0, buf}, "a buffer for a float"))) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> mem.launch(1, p.kernel("typed", w.scalars()), 1, KernelArg.write(x)), w.toString());
                assertTrue(e.getMessage().contains("parameter '" + w.parameter() + "'") && e.getMessage().contains(w.why()),
                        e.getMessage());
            }
            IllegalArgumentException extra = assertThrows(IllegalArgumentException.class,
                    () -> mem.launch(1, p.kernel("typed", 3, 5L, 2f, 7.0, buf, 9), 1, KernelArg.write(x)));
            assertTrue(extra.getMessage().contains("takes 5 scalar(s)") && extra.getMessage().contains("given 6"), extra.getMessage());
            assertTrue(mem.verify().isEmpty(), () -> String.join("\n", mem.verify()));
        }
    }

    /**
     * A {@code ulong} of 2^63 or more, which no positive Java long holds, is passed as a BigInteger
     * (before, nothing could pass it: a negative Long is refused for an unsigned parameter), and a
     * vector of them as a BigInteger[]; a BigInteger outside the parameter's range is refused naming
     * the range, one for a signed parameter keeps its sign, and one for a double must be one exactly.
     * Found beside it: Long.MAX_VALUE passed for a double as 2^63 (its double casts back saturated).
     */
    @Test
    void aUlongOfTwoToTheSixtyThreeOrMoreIsPassedAsABigInteger() {
        try (OpenClDevice dev = OpenClFixture.device(4 * MiB);
             UnifiedMemory mem = UnifiedMemory.builder().device(dev).build();
             OpenClProgram p = dev.compile("""
                     __kernel void wide(HM_SPACE_PARAMS, HM_REGION(x), ulong u, long s, uint w, ulong2 v, double d) {
                         __global ulong *out = HM_WPTR(ulong, x, 0);
                         out[0] = u;
                         out[1] = (ulong) s;
                         out[2] = (ulong) w;
                         out[3] = u >> 63;
                         out[4] = v.x;
                         out[5] = v.y;
                         out[6] = (ulong) d;
                     }
                     """)) {
            Region x = mem.allocate(4096);
            BigInteger max = BigInteger.ONE.shiftLeft(64).subtract(BigInteger.ONE);
            BigInteger top = BigInteger.ONE.shiftLeft(63);
            mem.launch(1, p.kernel("wide", max, BigInteger.valueOf(-5), BigInteger.valueOf(0xFFFF_FFFFL),
                    new BigInteger[] {top, BigInteger.TEN}, BigInteger.valueOf(3)), 1, KernelArg.write(x));
            try (HostView v = x.host(0, 56, Access.READ)) {
                assertEquals(-1L, v.segment().getAtIndex(ValueLayout.JAVA_LONG, 0), "2^64 - 1, every bit set");
                assertEquals(-5L, v.segment().getAtIndex(ValueLayout.JAVA_LONG, 1), "a signed BigInteger keeps its sign");
                assertEquals(0xFFFF_FFFFL, v.segment().getAtIndex(ValueLayout.JAVA_LONG, 2));
                assertEquals(1L, v.segment().getAtIndex(ValueLayout.JAVA_LONG, 3), "the kernel sees the top bit of u");
                assertEquals(Long.MIN_VALUE, v.segment().getAtIndex(ValueLayout.JAVA_LONG, 4), "2^63 in the vector");
                assertEquals(10L, v.segment().getAtIndex(ValueLayout.JAVA_LONG, 5));
                assertEquals(3L, v.segment().getAtIndex(ValueLayout.JAVA_LONG, 6), "a BigInteger a double holds exactly");
            }
            BigInteger[] two = {BigInteger.ZERO, BigInteger.ZERO};
            record Wrong(String parameter, Object[] scalars, String why) {}
            for (Wrong w : List.of(
                    new Wrong("u", new Object[] {max.add(BigInteger.ONE), 0L, 0, two, 0.0}, "outside [0, " + max + "]"),
                    new Wrong("u", new Object[] {BigInteger.valueOf(-1), 0L, 0, two, 0.0}, "outside [0, "),
                    new Wrong("u", new Object[] {-1L, 0L, 0, two, 0.0}, "takes a BigInteger"),
                    new Wrong("s", new Object[] {0L, top, 0, two, 0.0}, "outside [-9223372036854775808, "),
                    new Wrong("w", new Object[] {0L, 0L, BigInteger.ONE.shiftLeft(32), two, 0.0}, "outside [0, 4294967295]"),
                    new Wrong("v", new Object[] {0L, 0L, 0, new long[] {-1L, 0L}, 0.0}, "takes a BigInteger, in a BigInteger[]"),
                    new Wrong("v", new Object[] {0L, 0L, 0, new BigInteger[] {max.add(BigInteger.ONE), BigInteger.ONE}, 0.0},
                            "element 0"),
                    new Wrong("d", new Object[] {0L, 0L, 0, two, top.add(BigInteger.ONE)}, "exactly"),
                    new Wrong("d", new Object[] {0L, 0L, 0, two, Long.MAX_VALUE}, "exactly"))) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> mem.launch(1, p.kernel("wide", w.scalars()), 1, KernelArg.write(x)), w.toString());
                assertTrue(e.getMessage().contains("parameter '" + w.parameter() + "'") && e.getMessage().contains(w.why()),
                        e.getMessage());
            }
            assertTrue(mem.verify().isEmpty(), () -> String.join("\n", mem.verify()));
        }
    }

    @Test
    void anAccessOutsideItsArgumentThrowsNamingItAndTouchesNothing() {
        try (OpenClDevice dev = OpenClFixture.device(4 * MiB);
             UnifiedMemory mem = UnifiedMemory.builder().device(dev).build();
             OpenClProgram p = dev.compile("""
                     __kernel void poke(HM_SPACE_PARAMS, HM_REGION(x), HM_REGION(y), const ulong at) {
                         *HM_WPTR(long, y, at) = 7;
                     }
                     """)) {
            Region x = mem.allocate(8192);
            Region y = mem.allocate(8192);
            fillLongs(x, 1);
            fillLongs(y, 2);
            DeviceFaultException e = assertThrows(DeviceFaultException.class,
                    () -> mem.launch(1, p.kernel("poke", 1024L), 1, KernelArg.read(x), KernelArg.write(y)));
            assertTrue(e.getMessage().contains("region argument 1") && e.getMessage().contains("8192"), e.getMessage());
            DeviceFaultException ro = assertThrows(DeviceFaultException.class,
                    () -> mem.launch(1, p.kernel("poke", 3L), 1, KernelArg.read(x), KernelArg.read(y)));
            assertTrue(ro.getMessage().contains("declared READ"), ro.getMessage());
            checkLongs(x, 1);
            checkLongs(y, 2);
            assertTrue(mem.verify().isEmpty(), () -> String.join("\n", mem.verify()));
        }
    }

    /**
     * Found by a review of the driver: the device-side check compared only page numbers, so an
     * access past an argument's end in its last page, or before its start in its first (a negative
     * index), reached the bytes of whatever shared the page (here another argument of the same
     * region, read-only) with no fault; the emulated device refuses both. Now checked to the byte,
     * the whole element: one that starts inside and ends outside is refused too.
     */
    @Test
    void anAccessOutsideItsArgumentInsideItsFirstOrLastPageThrowsAndTouchesNothing() {
        try (OpenClDevice dev = OpenClFixture.device(4 * MiB);
             UnifiedMemory mem = UnifiedMemory.builder().device(dev).build();
             OpenClProgram p = dev.compile("""
                     __kernel void poke(HM_SPACE_PARAMS, HM_REGION(a), HM_REGION(b), const long at) {
                         *HM_WPTR(int, b, at) = 7;
                     }
                     __kernel void peek(HM_SPACE_PARAMS, HM_REGION(a), HM_REGION(b), const long at) {
                         *HM_WPTR(int, b, 0) = *HM_PTR(int, a, at);
                     }
                     __kernel void straddle(HM_SPACE_PARAMS, HM_REGION(a), HM_REGION(b)) {
                         *HM_WPTR(int, b, 0) = (int) *HM_PTR(long, a, 12);
                     }
                     """)) {
            Region r = mem.allocate(8192);
            fillLongs(r, 3);
            // a = bytes [0, 100) read-only, b = bytes [100, 200) written: one page holds both
            KernelArg a = KernelArg.of(r, 0, 100, Access.READ);
            KernelArg b = KernelArg.of(r, 100, 100, Access.WRITE);
            for (long at : new long[] {-1, 25, 1000}) {   // before b, just past its end, far past it
                DeviceFaultException e = assertThrows(DeviceFaultException.class,
                        () -> mem.launch(1, p.kernel("poke", at), 1, a, b), "b[" + at + "]");
                assertTrue(e.getMessage().contains("region argument 1") && e.getMessage().contains("100 bytes"), e.getMessage());
            }
            checkLongs(r, 3);   // the stores went to the scratch page, not to a's bytes or past b
            // reads: the launch fails naming the argument (b's first int is written by the same item meanwhile)
            DeviceFaultException read = assertThrows(DeviceFaultException.class,
                    () -> mem.launch(1, p.kernel("peek", 30L), 1, a, b), "a[30], at byte 120 of 100");
            assertTrue(read.getMessage().contains("region argument 0"), read.getMessage());
            // an element whose first byte is inside and last outside: bytes [96, 104) of 100
            DeviceFaultException across = assertThrows(DeviceFaultException.class,
                    () -> mem.launch(1, p.kernel("straddle"), 1, a, b));
            assertTrue(across.getMessage().contains("region argument 0"), across.getMessage());
            // the last whole element of a, bytes [96, 100), is inside: b's first int takes it
            mem.launch(1, p.kernel("peek", 24L), 1, a, b);
            try (HostView v = r.host(0, 8192, Access.READ)) {
                assertEquals(v.segment().get(ValueLayout.JAVA_INT_UNALIGNED, 96), v.segment().get(ValueLayout.JAVA_INT_UNALIGNED, 100));
            }
            assertTrue(mem.verify().isEmpty(), () -> String.join("\n", mem.verify()));
        }
    }

    /**
     * Found by a review of the driver: a tile of a tiled launch showed its kernel the page-table
     * entries of the whole argument, not only of the pages its items declared: a page another tile
     * used may still be mapped there, unpinned, while the next tile's prefetch evicts it and reuses
     * its frame, so an item reaching outside its window (inside the argument) read or wrote whatever
     * the frame held. Now only the window's entries go to the device, and such an access faults
     * naming the declared bytes. Here each tile's last item reads the first long of the next page.
     */
    @Test
    void anItemReachingOutsideItsTilesDeclaredWindowFaultsNamingTheWindow() {
        try (OpenClDevice dev = OpenClFixture.device(4 * MiB);
             UnifiedMemory mem = UnifiedMemory.builder().device(dev).build();
             OpenClProgram p = dev.compile("""
                     __kernel void next(HM_SPACE_PARAMS, HM_REGION(x), HM_REGION(y), const long step) {
                         ulong i = get_global_id(0);
                         *HM_WPTR(long, y, i) = *HM_PTR(long, x, i * 512 + step);
                     }
                     """)) {
            Region x = mem.allocate(16 * MiB);   // four times the device: the launch runs in tiles
            Region y = mem.allocate(16 * MiB / 4096 * 8);
            fillLongs(x, 4);
            long items = x.size() / 4096;
            KernelArg xs = KernelArg.read(x).perItem(4096);
            KernelArg ys = KernelArg.write(y).perItem(8);
            mem.launch(1, p.kernel("next", 511L), items, xs, ys);   // the last long of each item's own page
            try (HostView v = y.host(0, y.size(), Access.READ)) {
                for (long i = 0; i < items; i++) {
                    assertEquals(value(4, i * 512 + 511), v.segment().getAtIndex(ValueLayout.JAVA_LONG, i), "item " + i);
                }
            }
            DeviceFaultException e = assertThrows(DeviceFaultException.class,
                    () -> mem.launch(1, p.kernel("next", 512L), items, xs, ys));   // the next page: another tile's
            assertTrue(e.getMessage().contains("region argument 0") && e.getMessage().contains("declared (KernelArg.perItem)"),
                    e.getMessage());
            checkLongs(x, 4);
            assertTrue(mem.verify().isEmpty(), () -> String.join("\n", mem.verify()));
        }
    }

    @Test
    void capacityAboveOnePoolIsSplitIntoPoolsAndKernelsReachEveryPool() {
        OpenClFixture.needsOpenCl();
        try (OpenClDevice dev = OpenClDevice.builder().capacity(8 * MiB).maxPoolBytes(2 * MiB).build();
             UnifiedMemory mem = UnifiedMemory.builder().device(dev).build();
             OpenClProgram p = dev.compile("""
                     __kernel void inc(HM_SPACE_PARAMS, HM_REGION(x)) {
                         __global long *v = HM_WPTR(long, x, get_global_id(0));
                         *v = *v + 1;
                     }
                     """)) {
            assertEquals(4, dev.poolCount());
            Region x = mem.allocate(7 * MiB);
            fillLongs(x, 3);
            mem.launch(1, p.kernel("inc"), 7 * MiB / 8, KernelArg.readWrite(x));
            // 7 MiB resident in pools of 2 MiB: all four pools hold some of it
            assertEquals(7 * MiB / 4096, x.snapshot(0, 7 * MiB).countOn(1));
            try (HostView v = x.host(0, 7 * MiB, Access.READ)) {
                for (long i = 0; i < 7 * MiB / 8; i++) {
                    long want = value(3, i) + 1;
                    if (v.segment().getAtIndex(ValueLayout.JAVA_LONG, i) != want) {
                        assertEquals(want, v.segment().getAtIndex(ValueLayout.JAVA_LONG, i), "long " + i);
                    }
                }
            }
        }
    }

    /**
     * A CPU device with the host's memory (PoCL's) keeps its pools in host memory it shares and
     * moves pages by CPU copies; asked not to, or on another device, its pools are its own buffers
     * and pages move by OpenCL transfers. Either way a kernel sees what the host wrote, the host
     * what the kernel wrote, through migration, eviction to make room, and zero pages.
     */
    @Test
    void poolsShareTheHostsMemoryOnACpuDeviceAndAreTheDevicesOwnOnRequest() {
        OpenClFixture.needsOpenCl();
        for (boolean share : new boolean[] {true, false}) {
            try (OpenClDevice dev = OpenClDevice.builder().capacity(8 * MiB).maxPoolBytes(4 * MiB).sharedPools(share).build();
                 UnifiedMemory mem = UnifiedMemory.builder().device(dev).build();
                 OpenClProgram p = dev.compile("""
                         __kernel void inc(HM_SPACE_PARAMS, HM_REGION(x)) {
                             __global long *v = HM_WPTR(long, x, get_global_id(0));
                             *v = *v + 1;
                         }
                         """)) {
                if (!share) {
                    assertFalse(dev.sharesHostMemory(), "pools of its own when asked");
                } else if (dev.info().type().equals("CPU")) {
                    // PoCL's CPU device works in place (the CI machines' device): the test then covers the CPU copies
                    assertTrue(dev.sharesHostMemory() || !dev.info().platformName().contains("Portable"),
                            dev.info() + ": PoCL's CPU device shares its pools with the host");
                }
                Region a = mem.allocate(6 * MiB);
                Region b = mem.allocate(6 * MiB);
                Region zeros = mem.allocate(2 * MiB);
                fillLongs(a, 11);
                fillLongs(b, 12);
                mem.launch(1, p.kernel("inc"), 6 * MiB / 8, KernelArg.readWrite(a));
                mem.launch(1, p.kernel("inc"), 6 * MiB / 8, KernelArg.readWrite(b));   // a goes home to make room
                mem.launch(1, p.kernel("inc"), 2 * MiB / 8, KernelArg.readWrite(zeros));   // zero pages made on the device
                // one launch over 12 MiB on the 8 MiB device, tiled by its windows: the next tile's pages
                // move while a tile's kernel runs, and earlier tiles' go home to make room
                Region big = mem.allocate(12 * MiB);
                fillLongs(big, 13);
                mem.launch(1, p.kernel("inc"), 12 * MiB / 8, KernelArg.readWrite(big).perItem(8));
                for (Region r : new Region[] {a, b, zeros, big}) {
                    long seed = r == a ? 11 : r == b ? 12 : r == big ? 13 : -1;
                    try (HostView v = r.host(0, r.size(), Access.READ)) {
                        for (long i = 0; i < r.size() / 8; i++) {
                            long want = (seed < 0 ? 0 : value(seed, i)) + 1;
                            if (v.segment().getAtIndex(ValueLayout.JAVA_LONG, i) != want) {
                                assertEquals(want, v.segment().getAtIndex(ValueLayout.JAVA_LONG, i), "long " + i + ", shared " + share);
                            }
                        }
                    }
                }
                assertTrue(mem.verify().isEmpty(), () -> String.join("\n", mem.verify()));
            }
        }
    }

    @Test
    void populateBacksTheWholePoolWhenTheDeviceIsBuilt() throws Exception {
        OpenClFixture.needsOpenCl();
        long capacity = 128 * MiB;
        for (boolean share : new boolean[] {true, false}) {
            for (boolean populate : new boolean[] {false, true}) {
                long before = residentBytes();
                try (OpenClDevice dev = OpenClDevice.builder().capacity(capacity).sharedPools(share).populate(populate).build()) {
                    long grew = residentBytes() - before;
                    String what = "shared " + share + ", populate " + populate + ": resident memory grew by " + grew
                            + " bytes building a device of " + capacity;
                    if (dev.info().type().equals("CPU")) {
                        // a CPU device's memory is this process's (PoCL's, the CI machines'); a GPU's is not counted here
                        if (populate) {
                            assertTrue(grew >= capacity / 2, what);
                        } else {
                            assertTrue(grew < capacity / 4, what);
                        }
                    }
                    try (UnifiedMemory mem = UnifiedMemory.builder().device(dev).build()) {
                        // the filled pools still carry data both ways (the fill came after the shared pool's probe)
                        Region r = mem.allocate(capacity / 2);
                        fillLongs(r, 21);
                        r.advise(0, r.size(), Advice.prefetch(1));
                        r.advise(0, r.size(), Advice.prefetch(0));
                        try (HostView v = r.host(0, r.size(), Access.READ)) {
                            for (long i = 0; i < r.size() / 8; i += 511) {
                                assertEquals(value(21, i), v.segment().getAtIndex(ValueLayout.JAVA_LONG, i), what + ", long " + i);
                            }
                        }
                        assertTrue(mem.verify().isEmpty(), () -> String.join("\n", mem.verify()));
                    }
                }
            }
        }
    }

    /** This process's resident set, from /proc/self/status. */
    private static long residentBytes() throws java.io.IOException {
        for (String line : java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        }
        throw new IllegalStateException("no VmRSS in /proc/self/status");
    }

    @Test
    void aCopySubmittedWhileOrAfterTheDeviceClosesEndsInsteadOfWaitingForever() throws Exception {
        OpenClFixture.needsOpenCl();
        try (Arena arena = Arena.ofShared()) {
            MemorySegment page = arena.allocate(4096, 4096);
            for (int round = 0; round < 20; round++) {
                OpenClDevice dev = OpenClDevice.builder().capacity(2 * MiB).sharedPools(false).build();
                dev.hetmem.driver.CopyEngine copies = dev.copyEngine();   // pools of its own: copies are device transfers
                OpenClDevice.PlainBuffer buffer = dev.plainBuffer(4096);   // its transfers use the same copy queue
                java.util.concurrent.ConcurrentLinkedQueue<java.util.concurrent.CompletableFuture<Void>> futures =
                        new java.util.concurrent.ConcurrentLinkedQueue<>();
                java.util.concurrent.atomic.AtomicBoolean closed = new java.util.concurrent.atomic.AtomicBoolean();
                java.util.concurrent.atomic.AtomicReference<Throwable> broke = new java.util.concurrent.atomic.AtomicReference<>();
                Thread submitter = Thread.ofPlatform().uncaughtExceptionHandler((t, e) -> broke.set(e)).start(() -> {
                    // submits race the close, and go on for a while after it
                    int after = 0;
                    for (int i = 0; after < 20; i++) {
                        futures.add(copies.submit(onePage(page, i), 0, 1));
                        if (i % 8 == 0) {
                            // a copy within the device (relocation), waited for on this thread: it fails once
                            // the device closes, it must not reach the released queue
                            try {
                                dev.copyWithin(new int[] {i % 256}, new int[] {256 + i % 256}, new int[] {1}, 1);
                            } catch (IllegalStateException e) {
                                assertTrue(e.getMessage().contains("closed"), e.toString());
                            }
                            try {
                                buffer.write(page);
                            } catch (IllegalStateException e) {
                                assertTrue(e.getMessage().contains("closed"), e.toString());
                            }
                        }
                        if (closed.get()) {
                            after++;
                        }
                    }
                });
                Thread.sleep(round % 4);
                dev.close();
                closed.set(true);
                submitter.join(10_000);
                assertFalse(submitter.isAlive(), "the submitting thread is stuck");
                if (broke.get() != null) {
                    throw new AssertionError("the submitting thread failed", broke.get());
                }
                long failed = 0;
                for (java.util.concurrent.CompletableFuture<Void> f : futures) {
                    try {
                        f.get(10, java.util.concurrent.TimeUnit.SECONDS);   // a future left behind the waiter's end: TimeoutException
                    } catch (java.util.concurrent.ExecutionException e) {
                        failed++;
                        assertTrue(e.getCause().getMessage().contains("closed"), e.getCause().toString());
                    }
                }
                java.util.concurrent.ExecutionException after = assertThrows(java.util.concurrent.ExecutionException.class,
                        () -> copies.submit(onePage(page, 0), 0, 1).get(10, java.util.concurrent.TimeUnit.SECONDS));
                assertTrue(after.getCause() instanceof IllegalStateException && after.getCause().getMessage().contains("closed"),
                        after.getCause().toString());
                assertTrue(failed > 0, "some copies were submitted after the close");
                buffer.close();   // a buffer outlives its device's close: released on its own (the context lives until then)
            }
        }
    }

    private static dev.hetmem.driver.CopyBatch onePage(MemorySegment page, int i) {
        dev.hetmem.driver.CopyBatch b = new dev.hetmem.driver.CopyBatch();
        b.add((i & 1) == 0 ? dev.hetmem.driver.CopyBatch.TO_DEVICE : dev.hetmem.driver.CopyBatch.TO_HOST, page.address(), i % 512, 1);
        return b;
    }

    @Test
    void aLostDeviceLeavesHostDataIntactAndSaysSo() {
        try (OpenClDevice dev = OpenClFixture.device(8 * MiB);
             UnifiedMemory mem = UnifiedMemory.builder().device(dev).build();
             OpenClProgram p = dev.compile("""
                     __kernel void inc(HM_SPACE_PARAMS, HM_REGION(x)) {
                         __global long *v = HM_WPTR(long, x, get_global_id(0));
                         *v = *v + 1;
                     }
                     """)) {
            Region onDevice = mem.allocate(2 * MiB);
            Region onHost = mem.allocate(2 * MiB);
            fillLongs(onDevice, 4);
            fillLongs(onHost, 5);
            mem.launch(1, p.kernel("inc"), 2 * MiB / 8, KernelArg.readWrite(onDevice));
            dev.loseDevice();
            // a launch that needs onHost's pages on the device fails while moving them; they stay home, intact
            RuntimeException e = assertThrows(RuntimeException.class,
                    () -> mem.launch(1, p.kernel("inc"), 2 * MiB / 8, KernelArg.readWrite(onHost)));
            assertTrue(String.valueOf(e.getMessage()).contains("lost") || String.valueOf(e.getCause()).contains("CL_DEVICE_NOT_AVAILABLE"),
                    String.valueOf(e));
            checkLongs(onHost, 5);
            // what only the device held cannot come back: the read says why, and nothing else is harmed
            RuntimeException gone = assertThrows(RuntimeException.class, () -> onDevice.host(0, 4096, Access.READ).close());
            assertTrue(String.valueOf(gone.getCause()).contains("CL_DEVICE_NOT_AVAILABLE"), String.valueOf(gone));
            checkLongs(onHost, 5);
            assertTrue(mem.verify().isEmpty(), () -> String.join("\n", mem.verify()));
        }
    }

    static long value(long seed, long i) {
        long x = seed * 0x9E3779B97F4A7C15L + i;
        x ^= x >>> 31;
        return x * 0xBF58476D1CE4E5B9L;
    }

    static void fillLongs(Region r, long seed) {
        try (HostView v = r.host(0, r.size(), Access.WRITE)) {
            for (long i = 0; i < r.size() / 8; i++) {
                v.segment().setAtIndex(ValueLayout.JAVA_LONG, i, value(seed, i));
            }
        }
    }

    static void checkLongs(Region r, long seed) {
        try (HostView v = r.host(0, r.size(), Access.READ)) {
            for (long i = 0; i < r.size() / 8; i++) {
                if (v.segment().getAtIndex(ValueLayout.JAVA_LONG, i) != value(seed, i)) {
                    assertEquals(value(seed, i), v.segment().getAtIndex(ValueLayout.JAVA_LONG, i), "long " + i);
                }
            }
        }
    }

    /**
     * Interop: a context, device and queue this test made itself through the bindings (as LWJGL
     * or JOCL hand them out, as longs); hetmem runs region and plain kernels on them, keeps its own
     * reference while open, and leaves the test's own when closed (the test closes them after).
     */
    @Test
    void runsOnAContextAndQueueTheCallerMadeAndLeavesThemToIt() {
        OpenClFixture.needsOpenCl();
        ClLibrary cl = ClLibrary.get();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment platform = OpenClPlatforms.platforms(cl, a)[0];
            MemorySegment device = OpenClPlatforms.devices(cl, a, platform)[0];
            MemorySegment err = a.allocate(ValueLayout.JAVA_INT);
            MemorySegment devs = a.allocate(ValueLayout.ADDRESS);
            devs.set(ValueLayout.ADDRESS, 0, device);
            MemorySegment context = created(err, cl.createContext, MemorySegment.NULL, 1, devs,
                    MemorySegment.NULL, MemorySegment.NULL, err);
            MemorySegment queue = created(err, cl.createCommandQueue, context, device, 0L, err);
            assertThrows(IllegalArgumentException.class, () -> OpenClDevice.builder().existing(0, device.address(), queue.address()));
            long before = referenceCount(cl, queue, a);   // counts are the platform's business: compared, not assumed
            try (OpenClDevice dev = OpenClDevice.builder().existing(context.address(), device.address(), queue.address())
                    .capacity(4 * MiB).build();
                 UnifiedMemory mem = UnifiedMemory.builder().device(dev).build();
                 OpenClProgram p = dev.compile(ADD + TWICE)) {
                assertTrue(referenceCount(cl, queue, a) > before, "hetmem holds a reference of its own while open");
                int n = 4096;
                Region x = mem.allocate(4L * n);
                Region y = mem.allocate(4L * n);
                Region z = mem.allocate(4L * n);
                fillIndices(x, n);
                mem.launch(1, p.kernel("twice"), n, KernelArg.read(x), KernelArg.write(y));
                mem.launch(1, p.kernel("add"), n, KernelArg.read(x), KernelArg.read(y), KernelArg.write(z));
                try (HostView v = z.host(0, 4L * n, Access.READ)) {
                    for (int i = 0; i < n; i++) {
                        assertEquals(3f * i, v.segment().getAtIndex(ValueLayout.JAVA_FLOAT, i), "z[" + i + "]");
                    }
                }
                assertTrue(mem.verify().isEmpty(), () -> String.join("\n", mem.verify()));
            }
            // closed: the test's own references remain, and its context and queue still work
            assertEquals(before, referenceCount(cl, queue, a), "hetmem let go of its references only");
            MemorySegment buf = created(err, cl.createBuffer, context, ClLibrary.CL_MEM_READ_WRITE,
                    4096L, MemorySegment.NULL, err);
            assertEquals(ClLibrary.CL_SUCCESS, ClLibrary.call(cl.finish, queue));
            assertEquals(ClLibrary.CL_SUCCESS, ClLibrary.call(cl.releaseMemObject, buf));
            assertEquals(ClLibrary.CL_SUCCESS, ClLibrary.call(cl.releaseCommandQueue, queue));
            assertEquals(ClLibrary.CL_SUCCESS, ClLibrary.call(cl.releaseContext, context));
        }
    }

    /**
     * A device of four 2 MiB pools: a plain argument lies in one pool; one longer than a pool runs
     * tiled by its window and is refused, naming its size, without one.
     */
    @Test
    void plainArgumentsStayInsideOnePool() {
        OpenClFixture.needsOpenCl();
        try (OpenClDevice dev = OpenClDevice.builder().capacity(8 * MiB).maxPoolBytes(2 * MiB).build();
             UnifiedMemory mem = UnifiedMemory.builder().device(dev).build();
             OpenClProgram p = dev.compile(TWICE)) {
            assertEquals(4, dev.poolCount());
            int n = 768 * 1024 / 4 * 2;   // 1.5 MiB each: a and b do not fit one pool together
            Region a = mem.allocate(4L * n);
            Region b = mem.allocate(4L * n);
            fillIndices(a, n);
            mem.launch(1, p.kernel("twice"), n, KernelArg.read(a), KernelArg.write(b));
            for (Region r : List.of(a, b)) {
                long first = dev.probeFrame(r.address());
                long last = dev.probeFrame(r.address() + 4L * n - 4096);
                assertEquals(first / 512, last / 512, r + " lies in one pool (frames " + first + ".." + last + ")");
                assertEquals(first + (4L * n - 4096) / 4096, last, r + " in consecutive frames");
            }
            Region big = mem.allocate(3 * MiB);
            Region out = mem.allocate(3 * MiB);
            dev.hetmem.driver.DeviceMemoryException e = assertThrows(dev.hetmem.driver.DeviceMemoryException.class,
                    () -> mem.launch(1, p.kernel("twice"), 3 * MiB / 4, KernelArg.read(big), KernelArg.write(out)));
            assertTrue(e.getMessage().contains(String.valueOf(3 * MiB)) && e.getMessage().contains("KernelArg.perItem"),
                    e.getMessage());
            mem.launch(1, p.kernel("twice"), 3 * MiB / 4, KernelArg.read(big).perItem(4), KernelArg.write(out).perItem(4));
            try (HostView v = b.host(0, 4L * n, Access.READ)) {
                for (int i = 0; i < n; i++) {
                    assertEquals(2f * i, v.segment().getAtIndex(ValueLayout.JAVA_FLOAT, i), "b[" + i + "]");
                }
            }
            assertTrue(mem.verify().isEmpty(), () -> String.join("\n", mem.verify()));
        }
    }

    /**
     * Found by a review: the sub-buffers of plain arguments are kept for the next launch, at most
     * {@link SubBuffers#CAPACITY}; a launch with more plain arguments than that released a sub-buffer
     * it had already bound as one of its own arguments (the kernel then ran on a released buffer).
     * Every argument must get its own bytes, launch after launch.
     */
    @Test
    void aLaunchWithMorePlainArgumentsThanSubBuffersKeptRunsOnAllOfThem() {
        OpenClFixture.needsOpenCl();
        int count = SubBuffers.CAPACITY + 6;
        StringBuilder src = new StringBuilder("__kernel void many(");
        for (int j = 0; j < count; j++) {
            src.append(j == 0 ? "" : ", ").append("__global int *p").append(j);
        }
        src.append(") {\n size_t i = get_global_id(0);\n");
        for (int j = 0; j < count; j++) {
            src.append(" p").append(j).append("[i] += ").append(j + 1).append(";\n");
        }
        src.append("}\n");
        try (OpenClDevice dev = OpenClFixture.device(16 * MiB);
             UnifiedMemory mem = UnifiedMemory.builder().device(dev).build();
             OpenClProgram p = dev.compile(src.toString())) {
            int n = 1024;
            Region[] rs = new Region[count];
            KernelArg[] args = new KernelArg[count];
            for (int j = 0; j < count; j++) {
                rs[j] = mem.allocate(4L * n);
                args[j] = KernelArg.readWrite(rs[j]);
            }
            for (int round = 1; round <= 3; round++) {
                mem.launch(1, p.kernel("many"), n, args);
                for (int j = 0; j < count; j++) {
                    try (HostView v = rs[j].host(0, 4L * n, Access.READ)) {
                        for (int i = 0; i < n; i += 97) {
                            assertEquals(round * (j + 1), v.segment().getAtIndex(ValueLayout.JAVA_INT, i),
                                    "round " + round + ", argument " + j + ", item " + i);
                        }
                    }
                }
            }
            assertTrue(mem.verify().isEmpty(), () -> String.join("\n", mem.verify()));
        }
    }

    /**
     * Found by a review of the driver: a plain kernel run on another device's buffers was accepted,
     * although that buffer is closed under its own device's launch lock, not this one's (it could be
     * released while this launch binds it), and belongs to another OpenCL context.
     */
    @Test
    void aPlainRunOnAnotherDevicesBufferIsRefusedNamingBothDevices() {
        try (OpenClDevice one = OpenClFixture.device(4 * MiB);
             OpenClDevice two = OpenClFixture.device(4 * MiB);
             OpenClProgram p = PlainBuffers.compile(one, TWICE, "");
             OpenClDevice.PlainBuffer a = one.plainBuffer(4096);
             OpenClDevice.PlainBuffer b = one.plainBuffer(4096);
             OpenClDevice.PlainBuffer other = two.plainBuffer(4096)) {
            var e = assertThrows(IllegalArgumentException.class, () -> PlainBuffers.run(one, p.kernel("twice"), 1024, a, other));
            assertTrue(e.getMessage().contains("buffer 1") && e.getMessage().contains(two.name())
                    && e.getMessage().contains(one.name()), e.getMessage());
            assertThrows(NullPointerException.class, () -> PlainBuffers.run(one, p.kernel("twice"), 1024, a, null));
            PlainBuffers.run(one, p.kernel("twice"), 1024, a, b);   // its own device's buffers run
        }
    }

    /**
     * A plain buffer's misuses are refused by name (from a review): a read into a read-only segment
     * (OpenCL wrote through it: into a read-only file mapping, a fault that ends the JVM), a global
     * size below 1 (-1 reached OpenCL as 2^64 - 1 work items); an empty transfer moves nothing
     * (OpenCL answered it with a bare CL_INVALID_VALUE).
     */
    @Test
    void aPlainBuffersMisusesAreRefusedByName() {
        try (OpenClDevice dev = OpenClFixture.device(4 * MiB);
             OpenClProgram p = PlainBuffers.compile(dev, TWICE, "");
             OpenClDevice.PlainBuffer a = dev.plainBuffer(4096);
             OpenClDevice.PlainBuffer b = dev.plainBuffer(4096);
             Arena arena = Arena.ofConfined()) {
            MemorySegment src = arena.allocate(4096);
            src.fill((byte) 7);
            a.write(src);
            MemorySegment readOnly = arena.allocate(4096).asReadOnly();
            var e = assertThrows(IllegalArgumentException.class, () -> a.read(readOnly));
            assertTrue(e.getMessage().contains("read-only"), e.getMessage());
            assertEquals(0, readOnly.get(ValueLayout.JAVA_BYTE, 0), "nothing written through it");
            for (long bad : new long[] {0, -1}) {
                var g = assertThrows(IllegalArgumentException.class, () -> PlainBuffers.run(dev, p.kernel("twice"), bad, a, b));
                assertTrue(g.getMessage().contains("global size " + bad), g.getMessage());
            }
            a.write(MemorySegment.ofAddress(src.address()).reinterpret(0));
            a.read(arena.allocate(0));
            MemorySegment back = arena.allocate(4096);
            a.read(back);
            assertEquals(-1, src.mismatch(back), "the empty transfers moved nothing");
        }
    }

    /** A handle an OpenCL create call returns, after checking its error word. */
    private static MemorySegment created(MemorySegment err, java.lang.invoke.MethodHandle h, Object... args) {
        try {
            MemorySegment out = (MemorySegment) h.invokeWithArguments(args);
            assertEquals(ClLibrary.CL_SUCCESS, err.get(ValueLayout.JAVA_INT, 0));
            return out;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    private static long referenceCount(ClLibrary cl, MemorySegment queue, Arena a) {
        MemorySegment v = a.allocate(ValueLayout.JAVA_INT);
        assertEquals(ClLibrary.CL_SUCCESS, ClLibrary.call(cl.getCommandQueueInfo, queue, 0x1092, 4L, v, MemorySegment.NULL));
        return v.get(ValueLayout.JAVA_INT, 0);
    }
}
