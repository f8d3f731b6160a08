package dev.hetmem.cli;

import dev.hetmem.UnifiedMemory;
import dev.hetmem.device.opencl.OpenClDevice;
import dev.hetmem.device.opencl.OpenClProgram;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The four ordinary kernels (plain pointers, nothing about pages) run unchanged on regions, with
 * only the host code written for hetmem: on data a quarter of the device (one launch, resident)
 * and three times the device (tiled by their windows), each checked against a CPU computation,
 * and the same source on plain buffers by the explicit double-buffered program.
 */
class OrdinaryKernelsTest {
    private static final long DEVICE = 8L << 20;

    @ParameterizedTest
    @EnumSource(OrdinaryKernels.Kind.class)
    void runsUnchangedOnRegionsThatFitAndOnThreeTimesTheDevice(OrdinaryKernels.Kind kind) {
        CommandLineTest.needsOpenCl();
        try (OpenClDevice dev = OpenClDevice.builder().capacity(DEVICE).build();
             UnifiedMemory mem = UnifiedMemory.builder().device(dev).build();
             OpenClProgram p = dev.compile(OrdinaryKernels.SOURCE)) {
            for (long bytes : new long[] {DEVICE / 4, 3 * DEVICE}) {
                OrdinaryKernels.Problem pr = OrdinaryKernels.Problem.ofBytes(kind, bytes);
                long[] nanos = new long[1];
                long[] moved = new long[2];
                float[] got = OrdinaryKernels.onRegions(mem, 1, p, pr, nanos, moved);
                assertEquals(0, pr.wrong(got), kind + " on regions, " + pr.bytes() + " bytes");
                if (bytes > DEVICE) {
                    assertTrue(mem.stats().node(1).evictions() > 0, "the data went through the device in tiles");
                    // what the explicit program moves: each input in once, each output home once. Tiles move
                    // that and the pages their windows share (a stencil's halo rows): not whole granules around
                    // plain windows, nor a shared page twice because it was placed in the wrong tile's run
                    long explicit = 0;
                    for (OrdinaryKernels.Array a : pr.arrays()) {
                        explicit += a.bytes() * ((a.access().reads() ? 1 : 0) + (a.access().writes() ? 1 : 0));
                    }
                    assertTrue(moved[0] <= explicit * 11 / 10, kind + " moved " + moved[0] + " bytes where the explicit program moves "
                            + explicit);
                }
                float[] plain = OrdinaryKernels.explicit(dev, p, pr, DEVICE / 4, nanos);
                assertEquals(0, pr.wrong(plain), kind + " by the explicit program, " + pr.bytes() + " bytes");
            }
            assertEquals(java.util.List.of(), mem.verify());
        }
    }
}
