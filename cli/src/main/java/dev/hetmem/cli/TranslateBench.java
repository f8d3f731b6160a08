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
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;


/**
 * {@code hetmem bench translate}: what reaching region data costs on OpenCL, against plain
 * buffers. HMM's example matrix product (mulmat.cl) runs three ways, in alternation so that noise
 * hits all alike: {@code plain_buffer}, the source built with -DHM_PLAIN on plain buffers (the
 * baseline); {@code region_translated}, through regions and the device page table; and
 * {@code region_plain}, the -DHM_PLAIN build run unchanged on regions passed as plain arguments
 * (their pages placed in consecutive device frames). The regions are resident (no faults; only the
 * kernel, and for regions its page-table upload or sub-buffers, is timed). Rows: GFLOP/s, median
 * of the runs with min and max, and {@code ratio}: the median over rounds of the mode's time over
 * plain_buffer's in the same round (1.0 = as fast as plain buffers), with {@code ratio_min} and
 * {@code ratio_max}. A round runs the three modes back to back, so the ratio compares runs a few
 * milliseconds apart: this shared machine's speed moves 2x within minutes, which a ratio of two
 * medians taken over the whole run carries into the result. The three results are checked
 * against each other.
 */
final class TranslateBench {
    private TranslateBench() {}

    private static final List<String> MODES = List.of("plain_buffer", "region_translated", "region_plain");

    static int run(List<String> argv, PrintStream out, PrintStream err) {
        Args args = new Args(argv, Set.of("json", "quick"), Set.of("size", "runs", "plot"));
        String plot = Chart.plotOption(args);
        List<Integer> sizes = new ArrayList<>();
        if (args.value("size", null) != null) {
            sizes.add(args.intValue("size", 0, 16, 8192));
        } else {
            sizes.addAll(args.flag("quick") ? List.of(512, 1024) : List.of(512, 1024, 2048));
        }
        // enough runs that each size takes about a second a mode: a 10 ms kernel is at the mercy of one
        // noisy moment of this shared machine, a 1 s one much less
        int fixedRuns = args.intValue("runs", 0, 0, 1000);
        String why = OpenClPlatforms.unavailableReason();
        if (why != null) {
            throw new IllegalStateException("bench translate needs OpenCL: " + why);   // the machine's: exit 1
        }
        List<Map<String, Object>> rows = new ArrayList<>();
        boolean identical = true;
        String device = "";
        for (int m : sizes) {
            int runs = fixedRuns > 0 ? fixedRuns : args.flag("quick") ? 3 : m <= 512 ? 101 : m <= 1024 ? 25 : 7;
            Size s = size(m, runs, err);
            rows.addAll(s.rows);
            identical &= s.identical;
            device = s.device;
        }
        Map<String, Object> o = new LinkedHashMap<>();
        o.put("bench", "translate");
        o.put("device", device);
        o.put("rows", rows);
        o.put("results_identical", identical);
        BenchPlots.write(plot, o, err);
        if (args.flag("json")) {
            out.println(Json.write(o));
        } else {
            out.printf("mulMat on %s, median of alternating runs (min-max); ratio: time against plain buffers in the same round, "
                    + "median of the rounds (min-max)%n", device);
            out.printf("%6s %-18s %5s %9s %19s %7s %13s%n", "m", "mode", "runs", "GFLOP/s", "min-max", "ratio", "min-max");
            for (Map<String, Object> r : rows) {
                out.printf("%6d %-18s %5d %9.2f %9.2f-%-9.2f %7.3f %6.3f-%-6.3f%n", (Integer) r.get("m"), r.get("mode"),
                        (Integer) r.get("runs"), (Double) r.get("gflops"), (Double) r.get("gflops_min"), (Double) r.get("gflops_max"),
                        (Double) r.get("ratio"), (Double) r.get("ratio_min"), (Double) r.get("ratio_max"));
            }
            out.printf("results: %s%n", identical ? "identical in all three modes" : "DIFFER between modes");
        }
        return identical && !BenchPlots.failed(o) ? 0 : 1;
    }

    /** The rows of one matrix size, and whether its three results agreed. */
    private record Size(List<Map<String, Object>> rows, boolean identical, String device) {}

    private static Size size(int m, int runs, PrintStream err) {
        long bytes = 4L * m * m;
        long capacity = Math.ceilDiv(4 * bytes, 2L << 20) * (2L << 20) + (8L << 20);   // r, r2, a and b resident together
        try (OpenClDevice dev = OpenClDevice.builder().capacity(capacity).build();
             UnifiedMemory mem = UnifiedMemory.builder().device(dev).build();
             OpenClProgram regions = dev.compile(MulMatCl.SOURCE);
             OpenClProgram plainOnRegions = dev.compile(MulMatCl.SOURCE, "-DHM_PLAIN");
             OpenClProgram plain = PlainBuffers.compile(dev, MulMatCl.SOURCE, "");
             Arena arena = Arena.ofConfined();
             OpenClDevice.PlainBuffer pr = dev.plainBuffer(bytes);
             OpenClDevice.PlainBuffer pa = dev.plainBuffer(bytes);
             OpenClDevice.PlainBuffer pb = dev.plainBuffer(bytes)) {
            Region r = mem.allocate(bytes);
            Region r2 = mem.allocate(bytes);
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
            OpenClKernel kpr = plainOnRegions.kernel("mulMat", m);
            OpenClKernel kp = plain.kernel("mulMat", m);
            long global = MulMatCl.globalSize(m);
            KernelArg[] translated = {KernelArg.write(r), KernelArg.read(a), KernelArg.read(b)};
            KernelArg[] placed = {KernelArg.write(r2), KernelArg.read(a), KernelArg.read(b)};
            // warm-up: brings the regions in (the plain ones placed in consecutive frames), and lets
            // the OpenCL compiler finish the kernels
            mem.launch(1, kr, global, translated);
            mem.launch(1, kpr, global, placed);
            PlainBuffers.run(dev, kp, global, pr, pa, pb);
            long[][] nanos = new long[3][runs];
            for (int i = 0; i < runs; i++) {
                long t0 = System.nanoTime();
                PlainBuffers.run(dev, kp, global, pr, pa, pb);
                nanos[0][i] = System.nanoTime() - t0;
                nanos[1][i] = resident(mem.launch(1, kr, global, translated));
                nanos[2][i] = resident(mem.launch(1, kpr, global, placed));
            }
            MemorySegment plainResult = arena.allocate(bytes, 64);
            pr.read(plainResult);
            boolean identical = same(r, plainResult, m) && same(r2, plainResult, m);
            double flops = 2.0 * m * m * m;
            List<Map<String, Object>> rows = new ArrayList<>();
            for (int k = 0; k < MODES.size(); k++) {
                long[] sorted = nanos[k].clone();
                Arrays.sort(sorted);
                double[] ratios = new double[runs];
                for (int i = 0; i < runs; i++) {
                    ratios[i] = (double) nanos[k][i] / nanos[0][i];
                }
                Arrays.sort(ratios);
                Map<String, Object> row = new LinkedHashMap<>();
                row.put("m", m);
                row.put("mode", MODES.get(k));
                row.put("gflops", round(flops / median(nanos[k])));
                row.put("gflops_min", round(flops / sorted[sorted.length - 1]));
                row.put("gflops_max", round(flops / sorted[0]));
                row.put("ratio", Math.round(median(ratios) * 1000) / 1000.0);
                row.put("ratio_min", Math.round(ratios[0] * 1000) / 1000.0);
                row.put("ratio_max", Math.round(ratios[runs - 1] * 1000) / 1000.0);
                row.put("runs", runs);
                row.put("correct", identical);
                rows.add(row);
                err.printf("m=%d %-18s %8.2f GFLOP/s (%.2f-%.2f)  ratio %.3f (%.3f-%.3f)%n", m, MODES.get(k), (Double) row.get("gflops"),
                        (Double) row.get("gflops_min"), (Double) row.get("gflops_max"), (Double) row.get("ratio"),
                        (Double) row.get("ratio_min"), (Double) row.get("ratio_max"));
            }
            return new Size(rows, identical, dev.name());
        }
    }

    /** A launch's kernel time, after checking it ran on resident regions. */
    private static long resident(LaunchResult res) {
        if (res.faults() != 0) {
            throw new IllegalStateException("regions were not resident: " + res);
        }
        return res.kernelNanos();
    }

    private static boolean same(Region r, MemorySegment expected, int m) {
        try (HostView vr = r.host(0, 4L * m * m, Access.READ)) {
            return vr.segment().mismatch(expected) == -1;
        }
    }

    private static double round(double gflopsTimesNanos) {
        return Math.round(gflopsTimesNanos * 100) / 100.0;
    }

    private static double median(long[] v) {
        long[] s = v.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2.0;
    }

    /** The median of sorted values. */
    private static double median(double[] sorted) {
        int n = sorted.length;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0;
    }
}
