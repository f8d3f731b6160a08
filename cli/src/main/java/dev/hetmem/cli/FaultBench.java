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
import dev.hetmem.fault.FaultService;

import java.io.PrintStream;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * {@code hetmem bench fault}: what bringing one granule home costs, by path (a host view opened on
 * a device-resident page, a plain load through the userfaultfd view, a device fault before a
 * kernel), beside two limits measured in the same run: the bare userfaultfd round trip (a read of
 * a missing page, a handler installing the zero page) and the kernel's own minor fault.
 */
final class FaultBench {
    private static final long PAGE = 4096;
    private static final long MiB = 1L << 20;

    private FaultBench() {}

    private record Row(String path, long granule, long[] samples) {}

    static int run(List<String> argv, PrintStream out, PrintStream err) {
        Args args = new Args(argv, Set.of("json", "quick"), Set.of());
        boolean quick = args.flag("quick");
        int small = quick ? 1000 : 4000;
        int large = quick ? 40 : 150;
        var uffd = FaultService.unavailableReason();
        long raw = -1;
        long minor = median(FaultService.benchLimit(true, small));
        if (uffd.isEmpty()) {
            raw = median(FaultService.benchLimit(false, small));
        } else {
            err.println("userfaultfd rows left out: " + uffd.get());
        }
        List<Row> rows = new ArrayList<>();
        for (long g : new long[] {PAGE, 2 * MiB}) {
            int n = g == PAGE ? small : large;
            rows.add(new Row("host_view", g, hostView(g, n)));
            err.printf("host_view   %8d B granule done%n", g);
            if (uffd.isEmpty()) {
                rows.add(new Row("userfaultfd", g, userfaultfd(g, n)));
                err.printf("userfaultfd %8d B granule done%n", g);
            }
            rows.add(new Row("device", g, device(g, n)));
            err.printf("device      %8d B granule done%n", g);
        }
        if (args.flag("json")) {
            Map<String, Object> root = new LinkedHashMap<>();
            root.put("bench", "fault");
            Map<String, Object> limits = new LinkedHashMap<>();
            limits.put("uffd_raw_ns", raw);
            limits.put("minor_fault_ns", minor);
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
            out.println(Json.write(root));
        } else {
            out.printf("limits: bare userfaultfd round trip %s, kernel minor fault %d ns (medians)%n",
                    raw < 0 ? "n/a" : raw + " ns", minor);
            out.printf("%-12s %10s %12s %12s %14s%n", "path", "granule", "median ns", "p99 ns", "median / uffd");
            for (Row r : rows) {
                long med = median(r.samples);
                out.printf("%-12s %10d %12d %12d %14s%n", r.path, r.granule, med, percentile(r.samples, 0.99),
                        raw > 0 ? String.format("%.2fx", med / (double) raw) : "-");
            }
        }
        return 0;
    }

    private static UnifiedMemory memory(long granule, HostFaultMode mode, long bytes) {
        return UnifiedMemory.builder().copyThreads(1).granularity(granule).hostFaults(mode)
                .device(EmulatedDevice.builder().capacity(Math.max(64 * MiB, 2 * bytes)).build()).build();
    }

    /** Opening a one-page host view over a granule that is on the device (the view brings it home). */
    private static long[] hostView(long granule, int n) {
        long bytes = granule * n;
        try (UnifiedMemory mem = memory(granule, HostFaultMode.HOST_VIEWS, bytes)) {
            Region r = mem.allocate(bytes);
            mem.advise(r, 0, bytes, new Advice.Prefetch(1));
            long[] t = new long[n];
            for (int i = 0; i < n; i++) {
                long t0 = System.nanoTime();
                try (HostView v = r.host(i * granule, PAGE, Access.READ)) {
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
            for (long o = 0; o < bytes; o += PAGE) {
                s.set(JAVA_LONG, o, o);
            }
            mem.advise(r, 0, bytes, new Advice.Prefetch(1));
            long[] t = new long[n];
            long sum = 0;
            for (int i = 0; i < n; i++) {
                long t0 = System.nanoTime();
                sum += s.get(JAVA_LONG, i * granule);
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
                mem.launch(1, nothing, 1, KernelArg.of(r, i * granule, PAGE, Access.READ));
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
