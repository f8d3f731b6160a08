package dev.hetmem;

import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.driver.CopyBatch;
import dev.hetmem.driver.DeviceContext;
import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.driver.DeviceKernel;
import dev.hetmem.driver.KernelBinding;
import dev.hetmem.driver.VaRanges;

import java.util.List;

/**
 * An emulated device behind the plain driver interface, for tests that change one thing about a
 * real driver (how it copies, whether the host can read its memory) and keep the rest. Optional
 * parts of the interface it does not forward keep their defaults: the host cannot read its frames
 * unless a subclass says so.
 */
class WrappedDevice implements DeviceDriver {
    final EmulatedDevice inner;
    private final String name;

    WrappedDevice(String name, long capacity) {
        this.inner = MemoryFixture.emulated(capacity);
        this.name = name;
    }

    public String kind() { return "wrapped"; }
    public String name() { return name; }
    public long memoryBytes() { return inner.memoryBytes(); }
    public void attach(DeviceContext c) { inner.attach(c); }
    public void copy(CopyBatch b, int from, int to) { inner.copy(b, from, to); }
    public void map(long va, int frame, int pages, boolean w) { inner.map(va, frame, pages, w); }
    public void unmap(long va, long pages) { inner.unmap(va, pages); }
    public void protect(long va, long pages, boolean w) { inner.protect(va, pages, w); }
    public void invalidate(VaRanges ranges) { inner.invalidate(ranges); }
    public int probe(long va) { return inner.probe(va); }
    public long probeFrame(long va) { return inner.probeFrame(va); }
    public void execute(DeviceKernel k, long n, List<KernelBinding> a) { inner.execute(k, n, a); }
    public void close() { inner.close(); }
}
