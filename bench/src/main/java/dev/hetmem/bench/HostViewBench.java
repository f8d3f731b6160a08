package dev.hetmem.bench;

import dev.hetmem.Access;
import dev.hetmem.Advice;
import dev.hetmem.HostView;
import dev.hetmem.Region;
import dev.hetmem.UnifiedMemory;
import dev.hetmem.device.emulated.EmulatedDevice;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.Blackhole;

import java.lang.foreign.ValueLayout;
import java.util.concurrent.TimeUnit;

import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;

/**
 * The cost of a host view: opening and closing one on pages already resident on the host (the
 * fast path every host access pays), and on a page that is on the device (a host fault that
 * migrates its 4 KiB granule home).
 *
 * <p>Run: {@code ./hetmem jmh HostViewBench}
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
@State(Scope.Thread)
public class HostViewBench {
    @Param({"4096", "2097152"})
    long viewBytes;

    UnifiedMemory mem;
    Region region;
    Region small;
    long offset;

    @Setup(Level.Trial)
    public void setUp() {
        mem = UnifiedMemory.builder().device(EmulatedDevice.builder().capacity(64L << 20).build()).build();
        region = mem.allocate(64L << 20);
        try (HostView v = region.host(0, region.size(), Access.WRITE)) {
            v.segment().fill((byte) 1);
        }
        small = mem.allocate(1L << 20, PAGE_BYTES);
        try (HostView v = small.host(0, small.size(), Access.WRITE)) {
            v.segment().fill((byte) 2);
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        mem.close();
    }

    /** Open, read one long, close: pages already home. */
    @Benchmark
    public long viewOfResidentPages() {
        offset = (offset + viewBytes) & ((64L << 20) - 1);
        try (HostView v = region.host(offset, viewBytes, Access.READ)) {
            return v.segment().get(ValueLayout.JAVA_LONG, 0);
        }
    }

    @State(Scope.Thread)
    public static class OnDevice {
        long page;
    }

    /** Move one 4 KiB page to the device (untimed), then time the view that faults it home. */
    @Benchmark
    @BenchmarkMode(Mode.SampleTime)
    public void viewOfDevicePage4K(OnDevice s, Blackhole bh) {
        s.page = (s.page + 1) & 255;
        long off = s.page * PAGE_BYTES;
        small.advise(off, PAGE_BYTES, Advice.prefetch(1));
        long t0 = System.nanoTime();
        try (HostView v = small.host(off, PAGE_BYTES, Access.READ)) {
            bh.consume(v.segment().get(ValueLayout.JAVA_LONG, 0));
        }
        bh.consume(System.nanoTime() - t0);
    }
}
