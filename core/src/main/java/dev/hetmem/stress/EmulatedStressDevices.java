package dev.hetmem.stress;

import dev.hetmem.Access;
import dev.hetmem.KernelArg;
import dev.hetmem.Region;
import dev.hetmem.UnifiedMemory;
import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.device.emulated.EmulatedKernel;
import dev.hetmem.driver.DeviceDriver;

import java.lang.foreign.MemorySegment;

import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;

/** The stress program's kernels as Java code on the emulated device: one work item per 4 KiB page. */
public final class EmulatedStressDevices implements StressDevices {
    /** A long as the page table's getLong reads it: little-endian, any alignment. */
    private static final java.lang.foreign.ValueLayout.OfLong LONG = java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED
            .withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);

    /** Compute threads of every emulated stress device: two, so that a launch's items run on two threads at once. */
    static final int COMPUTE_THREADS = 2;

    /** The emulated kind for the stress program. */
    public EmulatedStressDevices() {
    }

    @Override
    public String kind() {
        return "emulated";
    }

    @Override
    public DeviceDriver create(String name, long capacity) {
        return EmulatedDevice.builder().name(name).capacity(capacity).computeThreads(COMPUTE_THREADS).build();
    }

    @Override
    public void write(UnifiedMemory mem, int node, Region r, long offset, MemorySegment src, long bytes, boolean plain) {
        EmulatedKernel k = plain
                ? EmulatedKernel.plain((a, i) -> MemorySegment.copy(src, i * PAGE_BYTES, a.plain(0), i * PAGE_BYTES,
                        Math.min(PAGE_BYTES, bytes - i * PAGE_BYTES)), 0)
                : (a, i) -> a.arg(0).copyFrom(src, i * PAGE_BYTES, i * PAGE_BYTES, Math.min(PAGE_BYTES, bytes - i * PAGE_BYTES));
        mem.launch(node, k, Math.ceilDiv(bytes, PAGE_BYTES), KernelArg.of(r, offset, bytes, Access.WRITE));
    }

    @Override
    public void read(UnifiedMemory mem, int node, Region r, long offset, MemorySegment dst, long bytes, boolean plain) {
        EmulatedKernel k = plain
                ? EmulatedKernel.plain((a, i) -> MemorySegment.copy(a.plain(0), i * PAGE_BYTES, dst, i * PAGE_BYTES,
                        Math.min(PAGE_BYTES, bytes - i * PAGE_BYTES)), 0)
                : (a, i) -> a.arg(0).copyTo(i * PAGE_BYTES, dst, i * PAGE_BYTES, Math.min(PAGE_BYTES, bytes - i * PAGE_BYTES));
        mem.launch(node, k, Math.ceilDiv(bytes, PAGE_BYTES), KernelArg.of(r, offset, bytes, Access.READ));
    }

    @Override
    public void addToEach(UnifiedMemory mem, int node, Region r, long longs, long delta, boolean windows, boolean plain,
                          ItemsRun ran) {
        KernelArg arg = KernelArg.of(r, 0, longs * 8, Access.READ_WRITE);
        if (!plain) {
            ran.recording();   // ids are the longs' own in every tile (a plain pointer's restart at 0 in each)
        }
        EmulatedKernel k = plain
                ? EmulatedKernel.plain((a, i) -> a.plain(0).set(LONG, 8 * i, a.plain(0).get(LONG, 8 * i) + delta), 0)
                : (a, i) -> {
                    ran.checkFailure(i);
                    a.arg(0).putLong(8 * i, a.arg(0).getLong(8 * i) + delta);
                    ran.mark(i);
                };
        mem.launch(node, k, longs, windows ? arg.perItem(8) : arg);
    }

    @Override
    public boolean addToEachButLastPages(UnifiedMemory mem, int node, Region r, long granule, int granules, long delta,
                                         ItemsRun ran) {
        long perArg = (granule - PAGE_BYTES) / 8;
        KernelArg[] args = new KernelArg[granules];
        for (int j = 0; j < granules; j++) {
            args[j] = KernelArg.of(r, j * granule, granule - PAGE_BYTES, Access.READ_WRITE);
        }
        ran.recording();
        mem.launch(node, (EmulatedKernel) (a, i) -> {
            int j = (int) (i / perArg);
            long at = 8 * (i % perArg);
            a.arg(j).putLong(at, a.arg(j).getLong(at) + delta);
            ran.mark(i);
        }, perArg * granules, args);
        return true;
    }

    @Override
    public void pairSums(UnifiedMemory mem, int node, Region in, Region out, long longs) {
        EmulatedKernel k = EmulatedKernel.plain((a, i) -> a.plain(1).set(LONG, 8 * i,
                a.plain(0).get(LONG, 8 * i) + a.plain(0).get(LONG, 8 * i + 8)), 0, 1);
        mem.launch(node, k, longs - 1, KernelArg.of(in, 0, longs * 8, Access.READ).perItem(8, 16),
                KernelArg.of(out, 0, (longs - 1) * 8, Access.WRITE).perItem(8));
    }

    @Override
    public void incrementIntsExclusively(UnifiedMemory mem, int node, Region r, long offset, long bytes) {
        mem.launch(node, (EmulatedKernel) (a, i) -> a.arg(0).getAndAddInt(4 * i, 1), bytes / 4,
                KernelArg.of(r, offset, bytes, Access.EXCLUSIVE));
    }

    @Override
    public void failAllocation(DeviceDriver device, int after) {
        ((EmulatedDevice) device).failAllocation(after);
    }

    @Override
    public void failCopy(DeviceDriver device, int after) {
        ((EmulatedDevice) device).failCopy(after);
    }

    @Override
    public boolean throwsAtItems() {
        return true;
    }

    @Override
    public void failExecute(DeviceDriver device, int after) {
        ((EmulatedDevice) device).failExecute(after);
    }

    @Override
    public void refuseRunsOfAtLeast(DeviceDriver device, int pages) {
        ((EmulatedDevice) device).failRunsOfAtLeast(pages);
    }
}
