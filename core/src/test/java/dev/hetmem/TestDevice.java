package dev.hetmem;

import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.driver.DeviceKernel;

import java.lang.foreign.MemorySegment;
import java.util.ServiceLoader;

/**
 * The device a core test runs on, with the few kernels core tests need written for it. The core
 * suite runs on the emulated device in the core module and, through its test jar, on the OpenCL
 * device in the opencl module (system property {@code hetmem.test.device=opencl}); tests that are
 * about one driver carry the tag "emulated" and run only there.
 */
public interface TestDevice {
    /** The device kind this JVM's core tests run on. */
    static String kind() {
        return System.getProperty("hetmem.test.device", "emulated");
    }

    /** A device of the kind under test with {@code capacity} bytes of memory. */
    static TestDevice create(long capacity) {
        String kind = kind();
        if (kind.equals("emulated")) {
            return new EmulatedTestDevice(capacity);
        }
        for (Factory f : ServiceLoader.load(Factory.class)) {
            if (f.kind().equals(kind)) {
                TestDevice d = f.create(capacity);
                if (!d.driver().kind().equals(kind)) {
                    throw new IllegalStateException("factory for " + kind + " made a " + d.driver().kind() + " device");
                }
                return d;
            }
        }
        throw new IllegalStateException("no test device of kind " + kind + " on the test class path");
    }

    /** Makes devices of one kind; found with {@link ServiceLoader}. */
    public interface Factory {
        String kind();

        TestDevice create(long capacity);
    }

    DeviceDriver driver();

    /** dmirror's READ: faults {@code pages} pages at {@code offset} onto this device and copies them to {@code dst}. */
    LaunchResult read(UnifiedMemory mem, Region r, long offset, long pages, MemorySegment dst);

    /** dmirror's WRITE: faults the pages onto this device writable and copies {@code src} into them. */
    LaunchResult write(UnifiedMemory mem, Region r, long offset, long pages, MemorySegment src);

    /** One region argument; touches nothing. */
    DeviceKernel noop();

    /** Item i adds {@code delta} to long i of argument 0. */
    DeviceKernel addLongs(long delta);

    /** Stores {@code value} at byte {@code offset} of argument 0 (one item). */
    DeviceKernel putLong(long offset, long value);

    /** Item i: long i of argument 1 = long i of argument 0 + 1. */
    DeviceKernel incrementInto();

    /**
     * As {@link #incrementInto}, written as for plain buffers: both arguments reached by plain
     * pointers (an ordinary OpenCL kernel, an emulated kernel on {@code KernelArgs.plain}).
     */
    DeviceKernel plainIncrementInto();

    /** Item i: float i of argument 2 = float i of argument 0 + float i of argument 1. */
    DeviceKernel addFloats();

    /** One item: arg1[0] = arg0[2 pages] + 1 and arg1[1 page] = arg2[0] + 2 (longs, offsets in bytes). */
    DeviceKernel threeArguments();

    /** Item i adds 1 to int (i % slots) of argument 0 with a device atomic. */
    DeviceKernel atomicCount(int slots);

    void failAllocation(int after);

    /** The device refuses to back runs of {@code frames} frames or more from now on (0: disarmed). */
    void failRunsOfAtLeast(int frames);

    void failCopy(int after);

    /** The kernel run after the next {@code after} ones fails before any item runs (-1 disarms). */
    void failExecute(int after);

    long invalidations();
}
