package dev.hetmem.cli;

import dev.hetmem.Access;
import dev.hetmem.CopyPath;
import dev.hetmem.HostView;
import dev.hetmem.MigrationMode;
import dev.hetmem.Region;
import dev.hetmem.UnifiedMemory;
import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.device.opencl.OpenClDevice;
import dev.hetmem.device.opencl.OpenClPlatforms;
import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.HostReleasePolicy;
import dev.hetmem.limits.NativeBuffer;

import java.io.PrintStream;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;

/**
 * {@code hetmem bench migrate}: the batched page migration tables on this machine. For each device (the emulated
 * one and, where a platform is installed, the first OpenCL device), page size, amount moved and
 * mode, a region's pages are migrated to the device and back, timing the whole
 * migration call (planning, unmapping, allocation, copies, mapping, and the host kernel's work of
 * releasing and populating frames). Beside each row: the plain copy of the same bytes by the same
 * number of threads, 2 MiB pieces, no memory management around it: the machine's own limit,
 * measured in the same run.
 *
 * <p>4 KiB rows move every other page, so no two copies can merge.
 */
final class MigrateBench {
    private static final long KiB = 1024;
    private static final long MiB = 1024 * KiB;
    private static final long GiB = 1024 * MiB;

    private record Mode(String name, MigrationMode migration, CopyPath path, int threads,
                        HostReleasePolicy release) {}

    private MigrateBench() {}

    static int run(List<String> argv, PrintStream out, PrintStream err) {
        Args args = new Args(argv, Set.of("json", "quick"), Set.of("sizes", "pages", "device", "plot"));
        String plot = Chart.plotOption(args);
        String deviceArg = args.value("device", "all");
        List<String> devices = switch (deviceArg) {
            case "emulated" -> List.of("emulated");
            case "opencl" -> List.of("opencl");
            case "all" -> List.of("emulated", "opencl");
            default -> throw new Args.UsageException("--device " + deviceArg + " must be emulated, opencl or all");
        };
        String noOpenCl = OpenClPlatforms.unavailableReason();
        if (noOpenCl != null && devices.contains("opencl")) {
            if (deviceArg.equals("opencl")) {
                throw new Args.UsageException("--device opencl: " + noOpenCl);
            }
            err.println("bench migrate: no OpenCL rows: " + noOpenCl);
            devices = List.of("emulated");
        }
        boolean quick = args.flag("quick");
        boolean json = args.flag("json");
        List<Long> pages = quick ? List.of(4 * KiB, 2 * MiB) : List.of(4 * KiB, 64 * KiB, 2 * MiB);
        List<Long> totals = quick ? List.of(256 * MiB) : List.of(16 * MiB, 256 * MiB, GiB);
        if (args.value("sizes", null) != null) {
            totals = parseList(args.value("sizes", null));
        }
        // each size is held twice in host memory (the region and the plain-copy buffers): refuse
        // up front what this machine cannot hold, rather than fail deep inside with a stack trace
        long physical = ((com.sun.management.OperatingSystemMXBean)
                java.lang.management.ManagementFactory.getOperatingSystemMXBean()).getTotalMemorySize();
        for (long t : totals) {
            if (t < PAGE_BYTES || t > physical / 4) {
                throw new Args.UsageException("--sizes " + t + " is outside [4096, " + physical / 4
                        + "] bytes (a quarter of this machine's " + physical + " bytes: each size is held twice)");
            }
        }
        if (args.value("pages", null) != null) {
            pages = parseList(args.value("pages", null));
            for (long p : pages) {
                if (p < PAGE_BYTES || p > 2 * MiB || Long.bitCount(p) != 1) {
                    throw new Args.UsageException("page size " + p + " must be a power of two in [4K, 2M]");
                }
            }
        }
        List<Mode> modes = new ArrayList<>();
        modes.add(new Mode("vanilla", MigrationMode.VANILLA, CopyPath.THREADS, 1, HostReleasePolicy.FREE));
        if (quick) {
            modes.add(new Mode("batched", MigrationMode.BATCHED, CopyPath.THREADS, 2, HostReleasePolicy.FREE));
        } else {
            for (int t : new int[] {1, 2, 4}) {
                modes.add(new Mode("batched", MigrationMode.BATCHED, CopyPath.THREADS, t, HostReleasePolicy.FREE));
            }
            modes.add(new Mode("copy_engine", MigrationMode.BATCHED, CopyPath.ENGINE, 1, HostReleasePolicy.FREE));
            modes.add(new Mode("batched", MigrationMode.BATCHED, CopyPath.THREADS, 2, HostReleasePolicy.DONTNEED));
        }

        int cores = Runtime.getRuntime().availableProcessors();
        long largest = totals.stream().mapToLong(Long::longValue).max().orElseThrow();
        int limitThreads = Math.min(cores, 4);
        double memcpyLimit = 0;
        List<Object> plainRows = new ArrayList<>();
        List<Map<String, Object>> rows = new ArrayList<>();
        for (String device : devices) {
        // OpenCL's per-command latency (tens of µs on PoCL) makes its vanilla rows slow: --quick moves 64 MiB there
        List<Long> deviceTotals = quick && device.equals("opencl") ? List.of(64 * MiB) : totals;
        for (long page : pages) {
            for (long total : deviceTotals) {
                for (Mode mode : modes) {
                    if (device.equals("opencl") && mode.release != HostReleasePolicy.FREE) {
                        continue;
                    }
                    double[] gbps = measure(device, page, total, mode);
                    double limit = gbps[2];
                    if (total == largest && mode.threads == limitThreads) {
                        memcpyLimit = Math.max(memcpyLimit, limit);
                    }
                    Map<String, Object> plainRow = new LinkedHashMap<>();
                    plainRow.put("total_bytes", total);
                    plainRow.put("threads", mode.threads);
                    plainRow.put("gbps", round(limit));
                    plainRows.add(plainRow);
                    for (int dir = 0; dir < 2; dir++) {
                        Map<String, Object> row = new LinkedHashMap<>();
                        row.put("device", device);
                        row.put("direction", dir == 0 ? "to_device" : "to_host");
                        row.put("page_bytes", page);
                        row.put("total_bytes", total);
                        row.put("mode", mode.name);
                        row.put("threads", mode.threads);
                        row.put("gbps", round(gbps[dir]));
                        row.put("host_release", mode.release.name().toLowerCase());
                        row.put("plain_copy_gbps", round(limit));
                        row.put("of_plain_copy", round(gbps[dir] / limit));
                        rows.add(row);
                        err.printf("%-8s %-9s %4s pages %5s %-11s %d thr %-8s %6.2f GB/s (%3.0f%% of plain copy)%n",
                                device, row.get("direction"), Sizes.format(page), Sizes.format(total), mode.name, mode.threads,
                                mode.release.name().toLowerCase(), gbps[dir], 100 * gbps[dir] / limit);
                    }
                }
            }
        }
        }
        Map<String, Object> root = new LinkedHashMap<>();
        root.put("bench", "migrate");
        Map<String, Object> limits = new LinkedHashMap<>();
        limits.put("memcpy_gbps", round(memcpyLimit));
        limits.put("plain_copy", plainRows);
        root.put("limits", limits);
        root.put("rows", rows);
        BenchPlots.write(plot, root, err);   // first: a failure then leaves one JSON object, the error
        if (json) {
            out.println(Json.write(root));
        } else {
            out.printf("plain copy (the limit), %s, %d threads: %.2f GB/s (each row: its own, measured beside it)%n",
                    Sizes.format(largest), limitThreads, memcpyLimit);
            out.printf("%-8s %-9s %5s %6s %-11s %7s %-8s %9s %7s%n", "device", "direction", "page", "moved", "mode", "threads",
                    "release", "GB/s", "of copy");
            for (Map<String, Object> r : rows) {
                out.printf("%-8s %-9s %5s %6s %-11s %7d %-8s %9.2f %6.0f%%%n", r.get("device"), r.get("direction"),
                        Sizes.format((Long) r.get("page_bytes")), Sizes.format((Long) r.get("total_bytes")), r.get("mode"),
                        (Integer) r.get("threads"), r.get("host_release"), (Double) r.get("gbps"),
                        100 * (Double) r.get("of_plain_copy"));
            }
        }
        return 0;
    }

    private static List<Long> parseList(String s) {
        List<Long> out = new ArrayList<>();
        for (String part : s.split(",")) {
            out.add(Sizes.parse(part));
        }
        return out;
    }

    private static double round(double v) {
        return Math.round(v * 1000) / 1000.0;
    }

    /**
     * Migrates {@code total} bytes of pages of size {@code page} to the device and back; returns
     * GB/s to the device, to the host, and of the plain copy of the same bytes by the same number
     * of threads, each the best of several rounds, the plain copy measured in each round right
     * before the migrations so that noise from other tenants hits both alike.
     */
    private static double[] measure(String device, long page, long total, Mode mode) {
        boolean sparse = page == 4 * KiB;
        long regionBytes = sparse ? 2 * total : total;
        long count = total / page;
        long[] offsets = new long[(int) count];
        for (int i = 0; i < count; i++) {
            offsets[i] = (sparse ? 2L * i : i) * page;
        }
        DeviceDriver dev = device.equals("opencl")
                ? OpenClDevice.builder().capacity(Math.max(2 * MiB, total)).build()
                : EmulatedDevice.builder().capacity(total).populate(true).build();
        double[] best = new double[3];
        // the same page backing as the migration's ends: regions and the device pool ask for huge pages
        try (NativeBuffer copySrc = NativeBuffer.allocate(total, true, 1);
             NativeBuffer copyDst = NativeBuffer.allocate(total, true, 2)) {
            return measureWith(dev, copySrc, copyDst, page, total, regionBytes, offsets, mode, best);
        }
    }

    private static double[] measureWith(DeviceDriver dev, NativeBuffer copySrc, NativeBuffer copyDst, long page, long total,
                                        long regionBytes, long[] offsets, Mode mode, double[] best) {
        try (UnifiedMemory mem = UnifiedMemory.builder().device(dev).copyThreads(mode.threads)
                .migrationMode(mode.migration).copyPath(mode.path).hostReleasePolicy(mode.release).build()) {
            Region r = mem.allocate(regionBytes, page);
            try (HostView v = r.host(0, regionBytes, Access.WRITE)) {
                for (long o = 0; o < regionBytes; o += PAGE_BYTES) {
                    v.segment().set(ValueLayout.JAVA_LONG, o, o * 31 + 7);
                }
            }
            int rounds = total >= GiB ? 2 : total >= 256 * MiB ? 3 : 5;
            for (int round = 0; round < rounds; round++) {
                best[2] = Math.max(best[2], NativeBuffer.plainCopyGbps(copyDst, copySrc, mode.threads));
                long t0 = System.nanoTime();
                long moved = mem.prefetch(r, offsets, page, 1);
                long t1 = System.nanoTime();
                long back = mem.prefetch(r, offsets, page, 0);
                long t2 = System.nanoTime();
                if (moved * PAGE_BYTES != total || back * PAGE_BYTES != total) {
                    throw new IllegalStateException("moved " + moved + " and " + back + " pages, expected " + total / PAGE_BYTES);
                }
                best[0] = Math.max(best[0], total / (double) (t1 - t0));
                best[1] = Math.max(best[1], total / (double) (t2 - t1));
            }
            // the data made the round trip intact (spot check, one long per moved page)
            try (HostView v = r.host(0, regionBytes, Access.READ)) {
                for (long off : offsets) {
                    for (long o = off; o < off + page; o += PAGE_BYTES) {
                        if (v.segment().get(ValueLayout.JAVA_LONG, o) != o * 31 + 7) {
                            throw new IllegalStateException("page at " + o + " came back wrong");
                        }
                    }
                }
            }
        }
        return best;
    }
}
