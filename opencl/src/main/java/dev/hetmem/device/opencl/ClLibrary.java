package dev.hetmem.device.opencl;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.charset.StandardCharsets;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The OpenCL functions hetmem calls, bound through the foreign function API to the ICD loader
 * (libOpenCL.so.1), which dispatches to whichever platforms are installed. Only OpenCL 1.2 entry
 * points are used, so any platform from 1.2 on works. The handles are immutable and the library is
 * loaded once per JVM (loading it twice would only bump the loader's reference count).
 */
final class ClLibrary {
    static final int CL_SUCCESS = 0;
    static final int CL_TRUE = 1;
    static final int CL_FALSE = 0;
    static final int CL_PLATFORM_VERSION = 0x0901;
    static final int CL_PLATFORM_NAME = 0x0902;
    static final int CL_PLATFORM_VENDOR = 0x0903;
    static final long CL_DEVICE_TYPE_ALL = 0xFFFFFFFFL;
    static final int CL_DEVICE_TYPE = 0x1000;
    static final int CL_DEVICE_MAX_COMPUTE_UNITS = 0x1002;
    static final int CL_DEVICE_LOCAL_MEM_SIZE = 0x1023;
    static final int CL_DEVICE_MAX_MEM_ALLOC_SIZE = 0x1010;
    static final int CL_DEVICE_GLOBAL_MEM_SIZE = 0x101F;
    static final int CL_DEVICE_QUEUE_PROPERTIES = 0x102A;
    static final int CL_DEVICE_NAME = 0x102B;
    static final int CL_DEVICE_VERSION = 0x102F;
    static final long CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE = 1;
    static final long CL_MEM_READ_WRITE = 1;
    static final long CL_MEM_USE_HOST_PTR = 8;
    static final int CL_DEVICE_HOST_UNIFIED_MEMORY = 0x1035;
    static final long CL_MEM_READ_ONLY = 4;
    static final int CL_PROGRAM_BUILD_LOG = 0x1183;
    static final int CL_EVENT_COMMAND_EXECUTION_STATUS = 0x11D3;
    static final int CL_DEVICE_NOT_AVAILABLE = -2;
    static final int CL_DEVICE_MEM_BASE_ADDR_ALIGN = 0x1019;
    static final int CL_BUFFER_CREATE_TYPE_REGION = 0x1220;
    static final int CL_QUEUE_CONTEXT = 0x1090;
    static final int CL_QUEUE_DEVICE = 0x1091;
    static final int CL_QUEUE_PROPERTIES = 0x1093;

    private static final String SONAME = "libOpenCL.so.1";

    final MethodHandle getPlatformIDs;
    final MethodHandle getPlatformInfo;
    final MethodHandle getDeviceIDs;
    final MethodHandle getDeviceInfo;
    final MethodHandle createContext;
    final MethodHandle releaseContext;
    final MethodHandle createCommandQueue;
    /** For a context, device and queue the caller made: the queue checked, both kept while in use. */
    final MethodHandle getCommandQueueInfo;
    final MethodHandle retainContext;
    final MethodHandle retainCommandQueue;
    final MethodHandle releaseCommandQueue;
    final MethodHandle createBuffer;
    final MethodHandle releaseMemObject;
    /** clCreateSubBuffer: a plain region argument, as a window of a pool buffer. */
    final MethodHandle createSubBuffer;
    final MethodHandle enqueueReadBuffer;
    final MethodHandle enqueueWriteBuffer;
    final MethodHandle enqueueFillBuffer;
    /** clEnqueueCopyBuffer: frames copied within the device (a plain argument gathered into consecutive frames). */
    final MethodHandle enqueueCopyBuffer;
    final MethodHandle enqueueNDRangeKernel;
    final MethodHandle waitForEvents;
    final MethodHandle getEventInfo;
    final MethodHandle releaseEvent;
    final MethodHandle flush;
    final MethodHandle finish;
    final MethodHandle createProgramWithSource;
    final MethodHandle buildProgram;
    final MethodHandle getProgramBuildInfo;
    final MethodHandle releaseProgram;
    final MethodHandle createKernel;
    /** clGetKernelArgInfo: a kernel parameter's declared type and name (programs built with -cl-kernel-arg-info). */
    final MethodHandle getKernelArgInfo;
    final MethodHandle setKernelArg;
    final MethodHandle releaseKernel;

    private ClLibrary(SymbolLookup lib) {
        Linker linker = Linker.nativeLinker();
        Binder b = (name, fd) -> linker.downcallHandle(lib.find(name).orElseThrow(
                () -> new OpenClUnavailableException(SONAME + " has no " + name + ": the ICD loader is not OpenCL 1.2")), fd);
        FunctionDescriptor handleToInt = FunctionDescriptor.of(JAVA_INT, ADDRESS);
        getPlatformIDs = b.bind("clGetPlatformIDs", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
        getPlatformInfo = b.bind("clGetPlatformInfo", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG, ADDRESS, ADDRESS));
        getDeviceIDs = b.bind("clGetDeviceIDs", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT, ADDRESS, ADDRESS));
        getDeviceInfo = b.bind("clGetDeviceInfo", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG, ADDRESS, ADDRESS));
        createContext = b.bind("clCreateContext", FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        releaseContext = b.bind("clReleaseContext", handleToInt);
        createCommandQueue = b.bind("clCreateCommandQueue", FunctionDescriptor.of(ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS));
        releaseCommandQueue = b.bind("clReleaseCommandQueue", handleToInt);
        getCommandQueueInfo = b.bind("clGetCommandQueueInfo", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG, ADDRESS,
                ADDRESS));
        retainContext = b.bind("clRetainContext", handleToInt);
        retainCommandQueue = b.bind("clRetainCommandQueue", handleToInt);
        createBuffer = b.bind("clCreateBuffer", FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS, ADDRESS));
        releaseMemObject = b.bind("clReleaseMemObject", handleToInt);
        createSubBuffer = b.bind("clCreateSubBuffer", FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, ADDRESS, ADDRESS));
        FunctionDescriptor transfer = FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG,
                ADDRESS, JAVA_INT, ADDRESS, ADDRESS);
        enqueueReadBuffer = b.bind("clEnqueueReadBuffer", transfer);
        enqueueWriteBuffer = b.bind("clEnqueueWriteBuffer", transfer);
        enqueueFillBuffer = b.bind("clEnqueueFillBuffer", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG,
                JAVA_LONG, JAVA_LONG, JAVA_INT, ADDRESS, ADDRESS));
        enqueueCopyBuffer = b.bind("clEnqueueCopyBuffer", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG,
                JAVA_LONG, JAVA_LONG, JAVA_INT, ADDRESS, ADDRESS));
        enqueueNDRangeKernel = b.bind("clEnqueueNDRangeKernel", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT,
                ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS));
        waitForEvents = b.bind("clWaitForEvents", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS));
        getEventInfo = b.bind("clGetEventInfo", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG, ADDRESS, ADDRESS));
        releaseEvent = b.bind("clReleaseEvent", handleToInt);
        flush = b.bind("clFlush", handleToInt);
        finish = b.bind("clFinish", handleToInt);
        createProgramWithSource = b.bind("clCreateProgramWithSource", FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_INT, ADDRESS,
                ADDRESS, ADDRESS));
        buildProgram = b.bind("clBuildProgram", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        getProgramBuildInfo = b.bind("clGetProgramBuildInfo", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, JAVA_LONG,
                ADDRESS, ADDRESS));
        releaseProgram = b.bind("clReleaseProgram", handleToInt);
        createKernel = b.bind("clCreateKernel", FunctionDescriptor.of(ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        setKernelArg = b.bind("clSetKernelArg", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG, ADDRESS));
        getKernelArgInfo = b.bind("clGetKernelArgInfo", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_LONG,
                ADDRESS, ADDRESS));
        releaseKernel = b.bind("clReleaseKernel", handleToInt);
    }

    @FunctionalInterface
    private interface Binder {
        MethodHandle bind(String name, FunctionDescriptor fd);
    }

    /** The bound library, or {@link OpenClUnavailableException} saying why there is none. */
    static ClLibrary get() {
        if (Holder.LIBRARY != null) {
            return Holder.LIBRARY;
        }
        throw new OpenClUnavailableException(Holder.REASON);
    }

    private static final class Holder {
        static final ClLibrary LIBRARY;
        static final String REASON;

        static {
            ClLibrary lib = null;
            String reason = null;
            try {
                lib = new ClLibrary(SymbolLookup.libraryLookup(SONAME, Arena.global()));
            } catch (IllegalArgumentException e) {
                reason = "the OpenCL ICD loader (" + SONAME + ") is not installed: install it and a platform, e.g. "
                        + "'apt-get install ocl-icd-libopencl1 pocl-opencl-icd' (PoCL runs OpenCL on the CPU)";
            } catch (OpenClUnavailableException e) {
                reason = e.getMessage();
            }
            LIBRARY = lib;
            REASON = reason;
        }
    }

    /** Throws {@link OpenClException} naming {@code call} unless {@code code} is CL_SUCCESS. */
    static void check(String call, int code) {
        if (code != CL_SUCCESS) {
            throw new OpenClException(call, code, null);
        }
    }

    static void check(String call, int code, String detail) {
        if (code != CL_SUCCESS) {
            throw new OpenClException(call, code, detail);
        }
    }

    static MemorySegment cString(Arena arena, String s) {
        return arena.allocateFrom(s, StandardCharsets.UTF_8);
    }

    /** Calls a method handle that returns cl_int, turning the JVM's Throwable into an unchecked one. */
    static int call(MethodHandle h, Object... args) {
        try {
            return (int) h.invokeWithArguments(args);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }
}
