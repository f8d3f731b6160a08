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
    /** The emulated kind for the stress program. */
    public EmulatedStressDevices() {
    }

    @Override
    public String kind() {
        return "emulated";
    }

    @Override
    public DeviceDriver create(String name, long capacity) {
        return EmulatedDevice.builder().name(name).capacity(capacity).computeThreads(2).build();
    }

    @Override
    public void write(UnifiedMemory mem, int node, Region r, long offset, MemorySegment src, long bytes) {
        mem.launch(node, (EmulatedKernel) (a, i) -> a.arg(0).copyFrom(src, i * PAGE_BYTES, i * PAGE_BYTES, Math.min(PAGE_BYTES, bytes - i * PAGE_BYTES)),
                Math.ceilDiv(bytes, PAGE_BYTES), KernelArg.of(r, offset, bytes, Access.WRITE));
    }

    @Override
    public void read(UnifiedMemory mem, int node, Region r, long offset, MemorySegment dst, long bytes) {
        mem.launch(node, (EmulatedKernel) (a, i) -> a.arg(0).copyTo(i * PAGE_BYTES, dst, i * PAGE_BYTES, Math.min(PAGE_BYTES, bytes - i * PAGE_BYTES)),
                Math.ceilDiv(bytes, PAGE_BYTES), KernelArg.of(r, offset, bytes, Access.READ));
    }

    @Override
    public void addToEach(UnifiedMemory mem, int node, Region r, long longs, long delta, boolean windows) {
        KernelArg arg = KernelArg.of(r, 0, longs * 8, Access.READ_WRITE);
        mem.launch(node, (EmulatedKernel) (a, i) -> a.arg(0).putLong(8 * i, a.arg(0).getLong(8 * i) + delta), longs,
                windows ? arg.perItem(8) : arg);
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
}
