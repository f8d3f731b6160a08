package dev.hetmem;

import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.device.emulated.EmulatedKernel;
import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.driver.DeviceKernel;

import java.lang.foreign.MemorySegment;

/** The core tests' kernels as Java code on the emulated device. */
final class EmulatedTestDevice implements TestDevice {
    private static final long PAGE = 4096;
    final EmulatedDevice device;

    EmulatedTestDevice(long capacity) {
        this.device = EmulatedDevice.builder().capacity(capacity).computeThreads(2).build();
    }

    @Override
    public DeviceDriver driver() {
        return device;
    }

    @Override
    public LaunchResult read(UnifiedMemory mem, Region r, long offset, long pages, MemorySegment dst) {
        long bytes = pages * PAGE;
        return mem.launch(device.node(), (EmulatedKernel) (a, i) -> a.arg(0).copyTo(0, dst, 0, bytes), 1,
                KernelArg.of(r, offset, bytes, Access.READ));
    }

    @Override
    public LaunchResult write(UnifiedMemory mem, Region r, long offset, long pages, MemorySegment src) {
        long bytes = pages * PAGE;
        return mem.launch(device.node(), (EmulatedKernel) (a, i) -> a.arg(0).copyFrom(src, 0, 0, bytes), 1,
                KernelArg.of(r, offset, bytes, Access.WRITE));
    }

    @Override
    public DeviceKernel noop() {
        return (EmulatedKernel) (a, i) -> {};
    }

    @Override
    public DeviceKernel addLongs(long delta) {
        return (EmulatedKernel) (a, i) -> a.arg(0).putLong(8 * i, a.arg(0).getLong(8 * i) + delta);
    }

    @Override
    public DeviceKernel putLong(long offset, long value) {
        return (EmulatedKernel) (a, i) -> a.arg(0).putLong(offset, value);
    }

    @Override
    public DeviceKernel incrementInto() {
        return (EmulatedKernel) (a, i) -> a.arg(1).putLong(8 * i, a.arg(0).getLong(8 * i) + 1);
    }

    @Override
    public DeviceKernel plainIncrementInto() {
        return EmulatedKernel.plain((a, i) -> a.plain(1).set(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, 8 * i,
                a.plain(0).get(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, 8 * i) + 1), 0, 1);
    }

    @Override
    public DeviceKernel addFloats() {
        return (EmulatedKernel) (a, i) -> a.arg(2).putFloat(4 * i, a.arg(0).getFloat(4 * i) + a.arg(1).getFloat(4 * i));
    }

    @Override
    public DeviceKernel threeArguments() {
        return (EmulatedKernel) (a, i) -> {
            a.arg(1).putLong(0, a.arg(0).getLong(2 * PAGE) + 1);
            a.arg(1).putLong(PAGE, a.arg(2).getLong(0) + 2);
        };
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
        return (EmulatedKernel) (a, i) -> a.arg(0).getAndAddInt(4 * (i % slots), 1);
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
