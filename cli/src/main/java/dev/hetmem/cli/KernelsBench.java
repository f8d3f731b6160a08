package dev.hetmem.cli;

import dev.hetmem.UnifiedMemory;
import dev.hetmem.device.opencl.OpenClDevice;
import dev.hetmem.device.opencl.OpenClPlatforms;
import dev.hetmem.device.opencl.OpenClProgram;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * {@code hetmem bench kernels}: ordinary OpenCL kernels (plain pointers, written as for plain
 * buffers: SAXPY, a tiled SGEMM with local memory, a 2-D stencil, a work-group reduction) on data
 * larger than the device. Two programs run each, in alternation, in rounds: {@code one_launch}, the
 * kernel unchanged on regions in one hetmem launch (plain arguments, tiled by declared windows),
 * and {@code explicit}, the double-buffered program a user writes today on plain buffers. Rows
 * give GB/s of data (inputs and outputs, each once) from the start until the results are in host
 * memory, median of the rounds with min and max, each checked against a CPU computation;
 * {@code ratio}: one_launch over explicit, the median of each round's ratio of the two (with
 * {@code ratio_min} and {@code ratio_max}); and what hetmem migrated (bytes both ways) and evicted
 * in the median round. Warm-up rounds ({@code --warmup}, default 2) run first and are not counted:
 * until the JIT has compiled the engine's paths, on the same two cores, hetmem's runs measure the
 * compiler as much as the memory manager.
 */
final class KernelsBench {
    private static final long MiB = 1L << 20;

    private KernelsBench() {}

    static int run(List<String> argv, PrintStream out, PrintStream err) {
        Args args = new Args(argv, Set.of("json", "quick"), Set.of("device-mib", "factor", "reps", "warmup", "kernels", "plot"));
        List<OrdinaryKernels.Kind> kinds = new ArrayList<>();
        String kernels = args.value("kernels", "saxpy,sgemm,stencil,reduce");
        for (String k : kernels.split(",", -1)) {
            if (k.isBlank()) {
                throw new Args.UsageException("--kernels " + kernels + ": an empty item (expected names separated by commas, "
                        + "of saxpy, sgemm, stencil, reduce)");
            }
            kinds.add(java.util.Arrays.stream(OrdinaryKernels.Kind.values()).filter(x -> x.kernelName().equals(k.strip()))
                    .findFirst().orElseThrow(() -> new Args.UsageException("--kernels: no kernel '" + k.strip()
                            + "' (have: saxpy, sgemm, stencil, reduce)")));
        }
        String plot = Chart.plotOption(args);
        long mib = args.countValue("device-mib", 32, 8, 4096);
        long capacity = mib * MiB;
        double factor = args.decimalValue("factor", 3, 0.1, 16);
        long reps = args.countValue("reps", args.flag("quick") ? 3 : 5, 1, 100);
        // refused before the device is built: the run holds the data several times over on the host (the
        // regions, the explicit program's copy, the CPU's reference in Java arrays of at most 2^31 floats)
        long data = (long) (factor * capacity);
        long physical = HostMemory.physicalBytes();
        if (data > physical / 4) {
            throw new Args.UsageException("--factor " + factor + " of --device-mib " + mib + " is " + data + " bytes of data, more "
                    + "than a quarter of this machine's " + physical + " bytes of memory (the run holds it several times)");
        }
        for (OrdinaryKernels.Kind kind : kinds) {
            for (OrdinaryKernels.Array a : OrdinaryKernels.Problem.ofBytes(kind, data).arrays()) {
                if (a.bytes() / 4 > Integer.MAX_VALUE - 8) {
                    throw new Args.UsageException("--factor " + factor + " of --device-mib " + mib + " makes an array of "
                            + kind.kernelName() + " " + a.bytes() + " bytes, more than the CPU reference's largest array ("
                            + 4L * (Integer.MAX_VALUE - 8) + " bytes)");
                }
            }
        }
        int warmup = args.intValue("warmup", args.flag("quick") ? 1 : 2, 0, 20);
        String why = OpenClPlatforms.unavailableReason();
        if (why != null) {
            throw new IllegalStateException("bench kernels needs OpenCL: " + why);   // the machine's: exit 1
        }
        CopyLimits limits = CopyLimits.measure(256 * MiB, false);
        List<Map<String, Object>> rows = new ArrayList<>();
        try (OpenClDevice dev = OpenClDevice.builder().capacity(capacity).populate(true).build();
             UnifiedMemory mem = UnifiedMemory.builder().device(dev).build();
             OpenClProgram program = dev.compile(OrdinaryKernels.SOURCE)) {
            for (OrdinaryKernels.Kind kind : kinds) {
                OrdinaryKernels.Problem pr = OrdinaryKernels.Problem.ofBytes(kind, (long) (factor * capacity));
                float[] expected = pr.expected();   // the CPU's result, computed once
                List<Map<String, Object>> regions = new ArrayList<>();
                List<Map<String, Object>> explicit = new ArrayList<>();
                // the two programs alternate, so that a noisy second of this shared machine hits both
                // warm-up rounds first, their results not counted: the JIT compiles the engine's paths (far
                // more code than the explicit program's) on the cores the programs run on; a wrong result
                // there still makes the row wrong
                boolean[] warmWrong = new boolean[2];
                for (int round = -warmup; round < reps; round++) {
                    long[] moved = new long[2];
                    Map<String, Object> r = runOnce(pr, expected, "one_launch", factor,
                            n -> OrdinaryKernels.onRegions(mem, 1, program, pr, n, moved));
                    r.put("migrated_bytes", moved[0]);
                    r.put("evictions", moved[1]);
                    regions.add(r);
                    Map<String, Object> e = runOnce(pr, expected, "explicit", factor,
                            n -> OrdinaryKernels.explicit(dev, program, pr, capacity / 4, n));
                    e.put("migrated_bytes", 0L);   // copied by hand: nothing migrates
                    e.put("evictions", 0L);
                    if (round < 0) {
                        regions.removeLast();
                        warmWrong[0] |= !(Boolean) r.get("correct");
                        warmWrong[1] |= !(Boolean) e.get("correct");
                        continue;
                    }
                    explicit.add(e);
                }
                Map<String, Object> r = MedianRow.of(regions, "gbps");
                Map<String, Object> e = MedianRow.of(explicit, "gbps");
                r.put("correct", (Boolean) r.get("correct") && !warmWrong[0]);
                e.put("correct", (Boolean) e.get("correct") && !warmWrong[1]);
                MedianRow.putPairedRatio(r, "ratio", regions, explicit);
                MedianRow.putPairedRatio(e, "ratio", explicit, explicit);   // 1.0, with the same fields as the other row
                rows.add(r);
                rows.add(e);
                for (Map<String, Object> row : List.of(r, e)) {
                    err.printf("%-8s %-11s %7.3f GB/s (%d runs, %.3f-%.3f)  ratio %.3f (%.3f-%.3f)  migrated %s  evictions %d  %s%n",
                            row.get("kernel"), row.get("mode"), (Double) row.get("gbps"), (Integer) row.get("runs"),
                            (Double) row.get("gbps_min"), (Double) row.get("gbps_max"), (Double) row.get("ratio"),
                            (Double) row.get("ratio_min"), (Double) row.get("ratio_max"),
                            ProgressBar.human((Long) row.get("migrated_bytes")), (Long) row.get("evictions"),
                            (Boolean) row.get("correct") ? "correct" : "WRONG");
                }
            }
        }
        Map<String, Object> root = BenchRoot.of("kernels", limits, capacity, rows);
        if (!BenchRoot.emit(root, plot, args, out, err)) {
            out.printf("%s; OpenCL device of %s; data %.1fx the device%n", limits.text(), ProgressBar.human(capacity), factor);
            out.printf("%-8s %-11s %12s %9s %17s %7s %13s %7s%n", "kernel", "mode", "data", "GB/s", "min-max", "ratio", "min-max",
                    "correct");
            for (Map<String, Object> r : rows) {
                out.printf("%-8s %-11s %12s %9.3f %8.3f-%-8.3f %7.3f %6.3f-%-6.3f %7s%n", r.get("kernel"), r.get("mode"),
                        ProgressBar.human((Long) r.get("data_bytes")), (Double) r.get("gbps"), (Double) r.get("gbps_min"),
                        (Double) r.get("gbps_max"), (Double) r.get("ratio"), (Double) r.get("ratio_min"), (Double) r.get("ratio_max"),
                        r.get("correct"));
            }
        }
        return rows.stream().allMatch(r -> (Boolean) r.get("correct")) && !BenchPlots.failed(root) ? 0 : 1;
    }

    /** A program run that times itself into {@code nanos[0]} and returns the output. */
    @FunctionalInterface
    private interface Timed {
        float[] run(long[] nanos);
    }

    private static Map<String, Object> runOnce(OrdinaryKernels.Problem pr, float[] expected, String mode, double factor,
                                               Timed program) {
        long[] nanos = new long[1];
        float[] got = program.run(nanos);
        Map<String, Object> row = new LinkedHashMap<>();
        row.put("kernel", pr.kind().kernelName());
        row.put("mode", mode);
        row.put("data_factor", factor);
        row.put("data_bytes", pr.bytes());
        row.put("gbps", Math.round(pr.bytes() / (double) nanos[0] * 1000) / 1000.0);
        row.put("nanos", nanos[0]);
        row.put("correct", OrdinaryKernels.wrong(got, expected) == 0);
        return row;
    }
}
