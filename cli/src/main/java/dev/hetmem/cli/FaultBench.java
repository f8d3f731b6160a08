package dev.hetmem.cli;

import dev.hetmem.Access;
import dev.hetmem.Advice;
import dev.hetmem.HostFaultMode;
import dev.hetmem.HostView;
import dev.hetmem.KernelArg;
import dev.hetmem.Region;
import dev.hetmem.UnifiedMemory;
import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.device.emulated.EmulatedKernel;
import dev.hetmem.limits.FaultLimits;

import java.io.PrintStream;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;

/**
 * {@code hetmem bench fault}: what bringing one granule home costs, by path (a host view opened on
 * a device-resident page, a plain load through the userfaultfd view, a device fault before a
 * kernel), beside limits measured in the same run: the bare userfaultfd round trip (a read of
 * a missing page, a handler installing the zero page), the same with the page copied in (what the
 * fault service does, without its bookkeeping) and the kernel's own minor fault.
 */
final class FaultBench {
    private static final long MiB = 1L << 20;

    private FaultBench() {}

    private record Row(String path, long granule, long[] samples) {}

    static int run(List<String> argv, PrintStream out, PrintStream err) {
        Args args = new Args(argv, Set.of("json", "quick"), Set.of("plot"));
        String plot = Chart.plotOption(args);
        boolean quick = args.flag("quick");
        int small = quick ? 1000 : 4000;
        int large = quick ? 40 : 150;
        long warmNanos = (quick ? 1_000 : 3_000) * 1_000_000L;
        var uffd = FaultLimits.userfaultfdUnavailableReason();
        if (uffd.isPresent()) {
            err.println("userfaultfd rows left out: " + uffd.get());
        }
        List<String> paths = uffd.isEmpty() ? List.of("host_view", "userfaultfd", "device") : List.of("host_view", "device");
        // each path is first run untimed for a while: the timed samples measure the compiled code a
        // program that faults often runs, not the interpreter (C2 needs about 10^5 faults on 2 cores)
        for (long g : new long[] {PAGE_BYTES, 2 * MiB}) {
            for (String path : paths) {
                long t0 = System.nanoTime();
                int passes = 0;
                do {
                    sample(path, g, g == PAGE_BYTES ? small : large);
                    passes++;
                } while (System.nanoTime() - t0 < warmNanos);
                err.printf("%-11s %8d B granule warmed up (%d passes)%n", path, g, passes);
            }
        }
        // the limits right beside the rows they divide, so that the same noise hits both: the bare
        // round trip alternates with the 4 KiB userfaultfd row in blocks (a wake-up on this virtual
        // machine costs 5 or 18 µs depending on whether the faulting CPU went idle, and which one a
        // run gets drifts over seconds)
        long raw = -1;
        long minor = median(FaultLimits.measure(FaultLimits.Kind.MINOR_FAULT, small));
        long rawCopy = -1;
        List<Row> rows = new ArrayList<>();
        for (long g : new long[] {PAGE_BYTES, 2 * MiB}) {
            for (String path : paths) {
                int n = g == PAGE_BYTES ? small : large;
                long[] samples;
                if (path.equals("userfaultfd") && g == PAGE_BYTES) {
                    long[][] three = alternating(n);
                    raw = median(three[0]);
                    rawCopy = median(three[1]);
                    samples = three[2];
                } else {
                    samples = sample(path, g, n);
                }
                rows.add(new Row(path, g, samples));
                err.printf("%-11s %8d B granule measured%n", path, g);
            }
        }
        Map<String, Object> root = new LinkedHashMap<>();
        root.put("bench", "fault");
        Map<String, Object> limits = new LinkedHashMap<>();
        limits.put("uffd_raw_ns", raw);
        limits.put("minor_fault_ns", minor);
        limits.put("uffd_raw_copy_ns", rawCopy);
        root.put("limits", limits);
        List<Map<String, Object>> list = new ArrayList<>();
        for (Row r : rows) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("path", r.path);
            m.put("granule_bytes", r.granule);
            m.put("median_ns", median(r.samples));
            m.put("p99_ns", percentile(r.samples, 0.99));
            list.add(m);
        }
        root.put("rows", list);
        BenchPlots.write(plot, root, err);
        if (args.flag("json")) {
            out.println(Json.write(root));
        } else {
            out.printf("limits: bare userfaultfd round trip %s (page copied in: %s), kernel minor fault %d ns (medians)%n",
                    raw < 0 ? "n/a" : raw + " ns", rawCopy < 0 ? "n/a" : rawCopy + " ns", minor);
            out.printf("%-12s %10s %12s %12s %14s %16s%n", "path", "granule", "median ns", "p99 ns", "median / uffd",
                    "/ uffd copy");
            for (Row r : rows) {
                long med = median(r.samples);
                out.printf("%-12s %10d %12d %12d %14s %16s%n", r.path, r.granule, med, percentile(r.samples, 0.99),
                        raw > 0 ? String.format("%.2fx", med / (double) raw) : "-",
                        rawCopy > 0 ? String.format("%.2fx", med / (double) rawCopy) : "-");
            }
        }
        return BenchPlots.failed(root) ? 1 : 0;
    }

    /** How many alternating blocks the bare round trip and the 4 KiB userfaultfd row are measured in. */
    private static final int RAW_BLOCKS = 10;

    /**
     * The bare round trips (zero page, page copied in) and the 4 KiB userfaultfd path, {@code n} samples
     * each, measured in {@link #RAW_BLOCKS} alternating blocks.
     */
    private static long[][] alternating(int n) {
        long[][] out = {new long[n], new long[n], new long[n]};
        for (int b = 0; b < RAW_BLOCKS; b++) {
            int from = n * b / RAW_BLOCKS;
            int count = n * (b + 1) / RAW_BLOCKS - from;
            System.arraycopy(FaultLimits.measure(FaultLimits.Kind.UFFD_ANONYMOUS, count), 0, out[0], from, count);
            System.arraycopy(FaultLimits.measure(FaultLimits.Kind.UFFD_COPY, count), 0, out[1], from, count);
            System.arraycopy(sample("userfaultfd", PAGE_BYTES, count), 0, out[2], from, count);
        }
        return out;
    }

    private static long[] sample(String path, long granule, int n) {
        return switch (path) {
            case "host_view" -> hostView(granule, n);
            case "userfaultfd" -> userfaultfd(granule, n);
            case "device" -> device(granule, n);
            default -> throw new IllegalArgumentException(path);
        };
    }

    private static UnifiedMemory memory(long granule, HostFaultMode mode, long bytes) {
        return UnifiedMemory.builder().copyThreads(1).granularity(granule).hostFaults(mode)
                .device(EmulatedDevice.builder().capacity(Math.max(64 * MiB, 2 * bytes)).build()).build();
    }

    /**
     * Opening a one-page host view over a granule that is on the device (the view brings it home).
     * The region is a whole number of huge pages, so that every sample lands in the same kind of
     * host memory: pages past a region's last 2 MiB boundary get small pages, each faulted in on
     * its own (2-3 µs here), and with 1000 samples of 4 KiB those were half the region (488 pages
     * past 2 MiB), which moved the median to the slow side.
     */
    private static long[] hostView(long granule, int n) {
        long bytes = Math.ceilDiv(granule * n, 2 * MiB) * 2 * MiB;
        try (UnifiedMemory mem = memory(granule, HostFaultMode.HOST_VIEWS, bytes)) {
            Region r = mem.allocate(bytes);
            mem.advise(r, 0, bytes, new Advice.Prefetch(1));
            long[] t = new long[n];
            for (int i = 0; i < n; i++) {
                long t0 = System.nanoTime();
                try (HostView v = r.host(i * granule, PAGE_BYTES, Access.READ)) {
                    v.segment().get(JAVA_LONG, 0);
                }
                t[i] = System.nanoTime() - t0;
            }
            return t;
        }
    }

    /** A plain load through the userfaultfd view of a page on the device. */
    private static long[] userfaultfd(long granule, int n) {
        long bytes = granule * n;
        try (UnifiedMemory mem = memory(granule, HostFaultMode.USERFAULTFD, bytes)) {
            Region r = mem.allocate(bytes);
            MemorySegment s = r.segment();
            for (long o = 0; o < bytes; o += PAGE_BYTES) {
                s.set(JAVA_LONG, o, o);
            }
            mem.advise(r, 0, bytes, new Advice.Prefetch(1));
            long[] t = new long[n];
            long sum = 0;
            for (int i = 0; i < n; i++) {
                long t0 = System.nanoTime();
                // fences keep the compiled loop from moving the load (and its fault) out of the timed window
                VarHandle.fullFence();
                sum += s.get(JAVA_LONG, i * granule);
                VarHandle.fullFence();
                t[i] = System.nanoTime() - t0;
            }
            if (sum != expectedSum(granule, n)) {
                throw new IllegalStateException("userfaultfd loads read wrong data");
            }
            return t;
        }
    }

    private static long expectedSum(long granule, int n) {
        long s = 0;
        for (int i = 0; i < n; i++) {
            s += i * granule;
        }
        return s;
    }

    /** A kernel launch whose one argument is a host-resident granule: the device fault moves it first. */
    private static long[] device(long granule, int n) {
        long bytes = granule * n;
        try (UnifiedMemory mem = memory(granule, HostFaultMode.HOST_VIEWS, bytes)) {
            Region r = mem.allocate(bytes);
            try (HostView v = r.host(0, bytes, Access.WRITE)) {
                v.segment().fill((byte) 1);
            }
            EmulatedKernel nothing = (a, item) -> { };
            long[] t = new long[n];
            for (int i = 0; i < n; i++) {
                long t0 = System.nanoTime();
                mem.launch(1, nothing, 1, KernelArg.of(r, i * granule, PAGE_BYTES, Access.READ));
                t[i] = System.nanoTime() - t0;
            }
            return t;
        }
    }

    static long median(long[] samples) {
        return percentile(samples, 0.5);
    }

    static long percentile(long[] samples, double q) {
        long[] s = samples.clone();
        Arrays.sort(s);
        return s[(int) Math.min(s.length - 1, Math.floor(q * s.length))];
    }
}
