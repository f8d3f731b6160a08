package dev.hetmem.device.opencl;

import dev.hetmem.driver.DeviceFaultException;

import dev.hetmem.Access;
import dev.hetmem.HostView;
import dev.hetmem.KernelArg;
import dev.hetmem.LaunchResult;
import dev.hetmem.Region;
import dev.hetmem.UnifiedMemory;
import org.junit.jupiter.api.Test;

import java.lang.foreign.ValueLayout;
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
            // the scalar the kernel declares is missing
            OpenClException e = assertThrows(OpenClException.class,
                    () -> mem.launch(1, p.kernel("scale"), 1024, KernelArg.readWrite(x)));
            assertEquals("CL_INVALID_KERNEL_ARGS", e.codeName(), e.getMessage());
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
            assertTrue(extra.getMessage().contains("no parameter for scalar 5"), extra.getMessage());
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
}
