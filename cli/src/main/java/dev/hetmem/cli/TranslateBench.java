package dev.hetmem.cli;

import dev.hetmem.Access;
import dev.hetmem.HostView;
import dev.hetmem.KernelArg;
import dev.hetmem.LaunchResult;
import dev.hetmem.Region;
import dev.hetmem.UnifiedMemory;
import dev.hetmem.device.opencl.OpenClDevice;
import dev.hetmem.device.opencl.OpenClKernel;
import dev.hetmem.device.opencl.OpenClPlatforms;
import dev.hetmem.device.opencl.OpenClProgram;
import dev.hetmem.device.opencl.PlainBuffers;

import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;

import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;

/**
 * {@code hetmem bench translate}: what reaching region data through the device page table costs
 * on OpenCL. HMM's example matrix product (mulmat.cl) runs through regions, resident on the device
 * (no faults, only the kernel and its page-table upload are timed), and the same source built with
 * -DHM_PLAIN on plain buffers; runs alternate so that noise hits both alike. Both results are
 * checked against each other.
 */
final class TranslateBench {
    private TranslateBench() {}

    static int run(List<String> argv, PrintStream out, PrintStream err) {
        Args args = new Args(argv, Set.of("json", "quick"), Set.of("size", "runs", "plot"));
        String plot = Chart.plotOption(args);
        int m = args.intValue("size", args.flag("quick") ? 512 : 1024, 16, 16384);
        int runs = args.intValue("runs", args.flag("quick") ? 5 : 9, 1, 1000);
        if (m < 16 || m > 8192) {
            throw new Args.UsageException("--size " + m + " must be in [16, 8192]");
        }
        if (runs < 1 || runs > 1000) {
            throw new Args.UsageException("--runs " + runs + " must be in [1, 1000]");
        }
        String why = OpenClPlatforms.unavailableReason();
        if (why != null) {
            throw new Args.UsageException("bench translate needs OpenCL: " + why);
        }
        long bytes = 4L * m * m;
        long capacity = Math.ceilDiv(3 * bytes, 2L << 20) * (2L << 20) + (4L << 20);
        try (OpenClDevice dev = OpenClDevice.builder().capacity(capacity).build();
             UnifiedMemory mem = UnifiedMemory.builder().device(dev).build();
             OpenClProgram regions = dev.compile(MulMatCl.SOURCE);
             OpenClProgram plain = PlainBuffers.compile(dev, MulMatCl.SOURCE, "");
             Arena arena = Arena.ofConfined();
             OpenClDevice.PlainBuffer pr = dev.plainBuffer(bytes);
             OpenClDevice.PlainBuffer pa = dev.plainBuffer(bytes);
             OpenClDevice.PlainBuffer pb = dev.plainBuffer(bytes)) {
            Region r = mem.allocate(bytes);
            Region a = mem.allocate(bytes);
            Region b = mem.allocate(bytes);
            MemorySegment ha = arena.allocate(bytes, 64);
            MemorySegment hb = arena.allocate(bytes, 64);
            SplittableRandom rnd = new SplittableRandom(42);
            for (long i = 0; i < (long) m * m; i++) {
                ha.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) rnd.nextDouble(-1, 1));
                hb.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) rnd.nextDouble(-1, 1));
            }
            try (HostView va = a.host(0, bytes, Access.WRITE); HostView vb = b.host(0, bytes, Access.WRITE)) {
                va.segment().copyFrom(ha);
                vb.segment().copyFrom(hb);
            }
            pa.write(ha);
            pb.write(hb);
            OpenClKernel kr = regions.kernel("mulMat", m);
            OpenClKernel kp = plain.kernel("mulMat", m);
            long global = MulMatCl.globalSize(m);
            KernelArg[] kargs = {KernelArg.write(r), KernelArg.read(a), KernelArg.read(b)};
            // warm-up: faults the regions in, and lets the OpenCL compiler finish both kernels
            mem.launch(1, kr, global, kargs);
            PlainBuffers.run(dev, kp, global, pr, pa, pb);
            long[] regionNanos = new long[runs];
            long[] plainNanos = new long[runs];
            for (int i = 0; i < runs; i++) {
                LaunchResult res = mem.launch(1, kr, global, kargs);
                if (res.faults() != 0) {
                    throw new IllegalStateException("regions were not resident: " + res);
                }
                regionNanos[i] = res.kernelNanos();
                long t0 = System.nanoTime();
                PlainBuffers.run(dev, kp, global, pr, pa, pb);
                plainNanos[i] = System.nanoTime() - t0;
            }
            MemorySegment plainResult = arena.allocate(bytes, 64);
            pr.read(plainResult);
            long differ = 0;
            try (HostView vr = r.host(0, bytes, Access.READ)) {
                for (long i = 0; i < (long) m * m; i++) {
                    if (vr.segment().getAtIndex(ValueLayout.JAVA_FLOAT, i) != plainResult.getAtIndex(ValueLayout.JAVA_FLOAT, i)) {
                        differ++;
                    }
                }
            }
            double region = median(regionNanos) / 1e6;
            double plainMs = median(plainNanos) / 1e6;
            double flops = 2.0 * m * m * m;
            Map<String, Object> o = new LinkedHashMap<>();
            o.put("bench", "translate");
            o.put("device", dev.name());
            o.put("m", m);
            o.put("runs", runs);
            o.put("regions_ms", region);
            o.put("plain_ms", plainMs);
            o.put("ratio", Math.round(region / plainMs * 1000) / 1000.0);
            o.put("plain_gflops", Math.round(flops / plainMs / 1e6 * 100) / 100.0);
            o.put("results_identical", differ == 0);
            BenchPlots.write(plot, o, err);   // first: a failure then leaves one JSON object, the error
            if (args.flag("json")) {
                out.println(Json.write(o));
            } else {
                out.printf("mulMat m=%d on %s, median of %d alternating runs%n", m, dev.name(), runs);
                out.printf("  plain buffers          : %8.2f ms (%.2f GFLOP/s)%n", plainMs, flops / plainMs / 1e6);
                out.printf("  regions (page table)   : %8.2f ms (upload of %d entries included)%n", region, 3 * bytes / PAGE_BYTES);
                out.printf("  translation costs      : %.3fx (goal: at most 1.25x)%n", region / plainMs);
                out.printf("  results                : %s%n", differ == 0 ? "identical" : differ + " elements differ");
            }
            return differ == 0 ? 0 : 1;
        }
    }

    private static double median(long[] v) {
        long[] s = v.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2.0;
    }
}
