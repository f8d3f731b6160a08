package dev.hetmem.device.opencl;

import dev.hetmem.Access;
import dev.hetmem.KernelArg;
import dev.hetmem.Region;
import dev.hetmem.UnifiedMemory;
import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.stress.ItemsRun;
import dev.hetmem.stress.StressDevices;

import java.lang.foreign.MemorySegment;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The stress program's kernels in OpenCL C: one work item per 8 bytes, copying between a region
 * argument and a plain buffer staged by the host.
 */
public final class OpenClStressDevices implements StressDevices {
    private static final String SOURCE = """
            __kernel void copyOut(HM_SPACE_PARAMS, HM_REGION(src), __global long *dst) {
                size_t i = get_global_id(0);
                dst[i] = *HM_PTR(long, src, i);
            }

            __kernel void copyIn(HM_SPACE_PARAMS, HM_REGION(dst), __global const long *src) {
                size_t i = get_global_id(0);
                *HM_WPTR(long, dst, i) = src[i];
            }

            __kernel void incrementInts(HM_SPACE_PARAMS, HM_REGION(x)) {
                atomic_inc(HM_WPTR(int, x, get_global_id(0)));
            }

            __kernel void addEach(HM_SPACE_PARAMS, HM_REGION(x), long delta) {
                size_t i = get_global_id(0);
                *HM_WPTR(long, x, i) = *HM_PTR(long, x, i) + delta;
            }

            __kernel void copyOutPlain(__global const long *src, __global long *dst) {
                size_t i = get_global_id(0);
                dst[i] = src[i];
            }

            __kernel void copyInPlain(__global long *dst, __global const long *src) {
                size_t i = get_global_id(0);
                dst[i] = src[i];
            }

            __kernel void addEachPlain(__global long *x, long delta) {
                size_t i = get_global_id(0);
                x[i] += delta;
            }

            __kernel void pairSumsPlain(__global const long *x, __global long *y) {
                size_t i = get_global_id(0);
                y[i] = x[i] + x[i + 1];
            }
            """;

    private final Map<OpenClDevice, OpenClProgram> programs = new ConcurrentHashMap<>();

    /** The OpenCL kind for the stress program (found by the service loader, or made directly). */
    public OpenClStressDevices() {
    }

    @Override
    public String kind() {
        return "opencl";
    }

    @Override
    public String unavailableReason() {
        return OpenClPlatforms.unavailableReason();
    }

    @Override
    public DeviceDriver create(String name, long capacity) {
        // the driver's pools are whole 2 MiB chunks
        // pools in shared host memory or the device's own buffers, by the run's device size and the
        // device's place in it (so a seed replays the same way): both ways of moving pages are stressed
        long chunks = Math.ceilDiv(capacity, 2L << 20);
        OpenClDevice.Builder b = OpenClDevice.builder().name(name).capacity(chunks * (2L << 20))
                .sharedPools(((chunks + name.hashCode()) & 1) == 0);
        // one pool, four equal ones, or pools of 11 chunks and a shorter last one, by the device's place in
        // the run: runs, copies and plain arguments' frames meet pool boundaries, and a device's contiguous
        // stretch is shorter than its memory (a PoCL device's one allocation may be as large as its memory,
        // and gave one pool always)
        long pools = Math.floorMod(name.hashCode() + 2L, 3);   // stress-d1: 11-chunk pools, d2: one, d3: quarters
        long quarter = Math.ceilDiv(chunks, 4);   // a device has at most 4 pools
        if (pools == 1 && chunks >= 8) {
            b.maxPoolBytes(quarter * (2L << 20));
        } else if (pools == 2 && chunks > 11) {
            b.maxPoolBytes(Math.max(11, quarter) * (2L << 20));
        }
        OpenClDevice d = b.build();
        try {
            programs.put(d, d.compile(SOURCE));
        } catch (RuntimeException | Error e) {
            try {
                d.close();   // its pools, context and copy thread: nothing else holds them yet
            } catch (RuntimeException | Error again) {
                e.addSuppressed(again);
            }
            throw e;
        }
        return d;
    }

    @Override
    public void refuseRunsOfAtLeast(DeviceDriver device, int pages) {
        ((OpenClDevice) device).failRunsOfAtLeast(pages);
    }

    /** OpenCL buffers are not host memory the fault service could read in place. */
    @Override
    public boolean supportsUserfaultfd() {
        return false;
    }

    @Override
    public void forget(DeviceDriver device) {
        programs.remove(device);
    }

    private static OpenClDevice device(UnifiedMemory mem, int node) {
        return (OpenClDevice) mem.driver(node);
    }

    @Override
    public void write(UnifiedMemory mem, int node, Region r, long offset, MemorySegment src, long bytes, boolean plain) {
        OpenClDevice d = device(mem, node);
        try (OpenClDevice.PlainBuffer buf = d.plainBuffer(bytes)) {
            buf.write(src.asSlice(0, bytes));
            mem.launch(node, programs.get(d).kernel(plain ? "copyInPlain" : "copyIn", buf), bytes / 8, KernelArg.of(r, offset, bytes, Access.WRITE));
        }
    }

    @Override
    public void read(UnifiedMemory mem, int node, Region r, long offset, MemorySegment dst, long bytes, boolean plain) {
        OpenClDevice d = device(mem, node);
        try (OpenClDevice.PlainBuffer buf = d.plainBuffer(bytes)) {
            mem.launch(node, programs.get(d).kernel(plain ? "copyOutPlain" : "copyOut", buf), bytes / 8, KernelArg.of(r, offset, bytes, Access.READ));
            buf.read(dst.asSlice(0, bytes));
        }
    }

    @Override
    public void addToEach(UnifiedMemory mem, int node, Region r, long longs, long delta, boolean windows, boolean plain,
                          ItemsRun ran) {
        // its items are not recorded (that would take a buffer of flags beside): a failure part-way is
        // checked as a prefix of the tiles
        OpenClDevice d = device(mem, node);
        KernelArg arg = KernelArg.of(r, 0, longs * 8, Access.READ_WRITE);
        mem.launch(node, programs.get(d).kernel(plain ? "addEachPlain" : "addEach", delta), longs, windows ? arg.perItem(8) : arg);
    }

    @Override
    public void pairSums(UnifiedMemory mem, int node, Region in, Region out, long longs) {
        mem.launch(node, programs.get(device(mem, node)).kernel("pairSumsPlain"), longs - 1,
                KernelArg.of(in, 0, longs * 8, Access.READ).perItem(8, 16), KernelArg.of(out, 0, (longs - 1) * 8, Access.WRITE).perItem(8));
    }

    @Override
    public void incrementIntsExclusively(UnifiedMemory mem, int node, Region r, long offset, long bytes) {
        mem.launch(node, programs.get(device(mem, node)).kernel("incrementInts"), bytes / 4,
                KernelArg.of(r, offset, bytes, Access.EXCLUSIVE));
    }

    @Override
    public void failAllocation(DeviceDriver device, int after) {
        ((OpenClDevice) device).failAllocation(after);
    }

    @Override
    public void failCopy(DeviceDriver device, int after) {
        ((OpenClDevice) device).failCopy(after);
    }

    @Override
    public void failExecute(DeviceDriver device, int after) {
        ((OpenClDevice) device).failExecute(after);
    }
}
