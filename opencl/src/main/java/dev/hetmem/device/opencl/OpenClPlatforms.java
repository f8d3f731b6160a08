package dev.hetmem.device.opencl;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import static dev.hetmem.device.opencl.ClLibrary.call;
import static dev.hetmem.device.opencl.ClLibrary.check;
import static java.lang.foreign.ValueLayout.ADDRESS;

/** Finds the OpenCL platforms and devices installed here. */
public final class OpenClPlatforms {
    /** CL_PLATFORM_NOT_FOUND_KHR: the ICD loader found no platform. */
    private static final int PLATFORM_NOT_FOUND = -1001;

    private OpenClPlatforms() {}

    /**
     * Every device of every platform; an empty list when the loader is installed but no platform is.
     * Throws {@link OpenClUnavailableException} when the loader itself is missing. Each call asks
     * OpenCL again.
     *
     * @return the devices in platform order, then in order within each platform; empty when no
     *         platform is installed
     * @throws OpenClUnavailableException if the OpenCL ICD loader ({@code libOpenCL.so.1}) is
     *         missing or lacks an OpenCL 1.2 function
     * @throws OpenClException if an OpenCL query fails
     */
    public static List<OpenClDeviceInfo> devices() {
        ClLibrary cl = ClLibrary.get();
        List<OpenClDeviceInfo> out = new ArrayList<>();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment[] platforms = platforms(cl, a);
            for (int p = 0; p < platforms.length; p++) {
                MemorySegment[] devices = devices(cl, a, platforms[p]);
                String pname = string(cl, platforms[p], ClLibrary.CL_PLATFORM_NAME, true);
                String pversion = string(cl, platforms[p], ClLibrary.CL_PLATFORM_VERSION, true);
                for (int d = 0; d < devices.length; d++) {
                    MemorySegment dev = devices[d];
                    out.add(new OpenClDeviceInfo(p, d, pname, pversion,
                            string(cl, dev, ClLibrary.CL_DEVICE_NAME, false).strip(),
                            typeName(deviceLong(cl, dev, ClLibrary.CL_DEVICE_TYPE)),
                            string(cl, dev, ClLibrary.CL_DEVICE_VERSION, false),
                            deviceLong(cl, dev, ClLibrary.CL_DEVICE_GLOBAL_MEM_SIZE),
                            deviceLong(cl, dev, ClLibrary.CL_DEVICE_MAX_MEM_ALLOC_SIZE),
                            (int) deviceInt(cl, dev, ClLibrary.CL_DEVICE_MAX_COMPUTE_UNITS)));
                }
            }
        }
        return out;
    }

    /**
     * Why no OpenCL device can be used here, or null when at least one can.
     *
     * @return a message that says what is missing (the ICD loader, or any platform) and how to
     *         install it; null when {@link #devices()} finds at least one device
     * @throws OpenClException if an OpenCL query fails
     */
    public static String unavailableReason() {
        try {
            return devices().isEmpty()
                    ? "no OpenCL platform is installed (the ICD loader found none in /etc/OpenCL/vendors): "
                            + "install one, e.g. 'apt-get install pocl-opencl-icd' (PoCL runs OpenCL on the CPU)"
                    : null;
        } catch (OpenClUnavailableException e) {
            return e.getMessage();
        }
    }

    static MemorySegment[] platforms(ClLibrary cl, Arena a) {
        MemorySegment count = a.allocate(ValueLayout.JAVA_INT);
        int rc = call(cl.getPlatformIDs, 0, MemorySegment.NULL, count);
        if (rc == PLATFORM_NOT_FOUND) {
            return new MemorySegment[0];
        }
        check("clGetPlatformIDs", rc);
        int n = count.get(ValueLayout.JAVA_INT, 0);
        if (n == 0) {
            return new MemorySegment[0];
        }
        MemorySegment ids = a.allocate(ADDRESS, n);
        check("clGetPlatformIDs", call(cl.getPlatformIDs, n, ids, MemorySegment.NULL));
        MemorySegment[] out = new MemorySegment[n];
        for (int i = 0; i < n; i++) {
            out[i] = ids.getAtIndex(ADDRESS, i);
        }
        return out;
    }

    static MemorySegment[] devices(ClLibrary cl, Arena a, MemorySegment platform) {
        MemorySegment count = a.allocate(ValueLayout.JAVA_INT);
        int rc = call(cl.getDeviceIDs, platform, ClLibrary.CL_DEVICE_TYPE_ALL, 0, MemorySegment.NULL, count);
        if (rc == -1) { // CL_DEVICE_NOT_FOUND: a platform without devices
            return new MemorySegment[0];
        }
        check("clGetDeviceIDs", rc);
        int n = count.get(ValueLayout.JAVA_INT, 0);
        MemorySegment ids = a.allocate(ADDRESS, Math.max(1, n));
        check("clGetDeviceIDs", call(cl.getDeviceIDs, platform, ClLibrary.CL_DEVICE_TYPE_ALL, n, ids, MemorySegment.NULL));
        MemorySegment[] out = new MemorySegment[n];
        for (int i = 0; i < n; i++) {
            out[i] = ids.getAtIndex(ADDRESS, i);
        }
        return out;
    }

    static String string(ClLibrary cl, MemorySegment handle, int param, boolean platform) {
        String fn = platform ? "clGetPlatformInfo" : "clGetDeviceInfo";
        var h = platform ? cl.getPlatformInfo : cl.getDeviceInfo;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment size = a.allocate(ValueLayout.JAVA_LONG);
            check(fn, call(h, handle, param, 0L, MemorySegment.NULL, size));
            long n = size.get(ValueLayout.JAVA_LONG, 0);
            MemorySegment buf = a.allocate(Math.max(1, n));
            check(fn, call(h, handle, param, n, buf, MemorySegment.NULL));
            return buf.getString(0, StandardCharsets.UTF_8);
        }
    }

    static long deviceLong(ClLibrary cl, MemorySegment device, int param) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(ValueLayout.JAVA_LONG);
            check("clGetDeviceInfo", call(cl.getDeviceInfo, device, param, 8L, v, MemorySegment.NULL));
            return v.get(ValueLayout.JAVA_LONG, 0);
        }
    }

    static long deviceInt(ClLibrary cl, MemorySegment device, int param) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(ValueLayout.JAVA_INT);
            check("clGetDeviceInfo", call(cl.getDeviceInfo, device, param, 4L, v, MemorySegment.NULL));
            return Integer.toUnsignedLong(v.get(ValueLayout.JAVA_INT, 0));
        }
    }

    private static String typeName(long type) {
        if ((type & 4) != 0) {
            return "GPU";
        }
        if ((type & 8) != 0) {
            return "accelerator";
        }
        if ((type & 2) != 0) {
            return "CPU";
        }
        return "other";
    }
}
