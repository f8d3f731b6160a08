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
import dev.hetmem.driver.HostCopy;
import dev.hetmem.HostReleasePolicy;
import dev.hetmem.limits.Interference;
import dev.hetmem.limits.NativeBuffer;
import dev.hetmem.limits.StridedCopy;

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
 * number of threads, 2 MiB pieces, no memory management around it, with memcpy and with the
 * streaming copy hetmem's batches use ({@link HostCopy}): the faster is the machine's own limit,
 * measured in the same run.
 *
 * <p>4 KiB rows move every other page, so no two copies can merge. Beside them, the floors of that
 * pattern with no memory manager ({@link StridedCopy}): the strided copy alone, and with each
 * source page released as it goes. Each case runs in several rounds (every floor measured again
 * in each, right before the migrations); a row is the median round, with the slowest and fastest,
 * the host frames kept after it ({@code hostRetainBudget}: the default, 0 = released as each page
 * leaves, and in the {@code sustained} row a quarter of the bytes moved, so the background release
 * runs inside the timing) and the steal time and huge-page splits during the case. Before its
 * rounds, each case makes its own round trips, not counted, until the JIT is quiet
 * ({@link #warmCase}).
 */
final class MigrateBench {
    private static final long KiB = 1024;
    private static final long MiB = 1024 * KiB;
    private static final long GiB = 1024 * MiB;
    /** A case's own warm-up ends once no compilation finished for this long ({@link #warmCase}), or after --case-warmup-ms. */
    private static final long QUIET_NANOS = 500_000_000L;
    /** ... counting only compilations of more than this many milliseconds since the last one that counted. */
    private static final long QUIET_COMPILE_MILLIS = 20;

    /** {@code budget}: the host frames kept for release by the chunk; -1: a quarter of the bytes moved (the sustained row). */
    private record Mode(String name, MigrationMode migration, CopyPath path, int threads,
                        HostReleasePolicy release, long budget) {}

    private MigrateBench() {}

    static int run(List<String> argv, PrintStream out, PrintStream err) {
        Args args = new Args(argv, Set.of("json", "quick"), Set.of("sizes", "pages", "device", "plot", "warmup", "case-warmup-ms"));
        int warmupRounds = args.intValue("warmup", 40, 0, 1000);
        long caseWarmupNanos = args.intValue("case-warmup-ms", 4000, 0, 60_000) * 1_000_000L;
        String plot = Chart.plotOption(args);
        String deviceArg = args.value("device", "all");
        List<String> devices = switch (deviceArg) {
            case "emulated" -> List.of("emulated");
            case "opencl" -> List.of("opencl");
            case "all" -> List.of("emulated", "opencl");
            default -> throw new Args.UsageException("--device " + deviceArg + " must be emulated, opencl or all");
        };
        boolean quick = args.flag("quick");
        boolean json = args.flag("json");
        List<Long> pages = quick ? List.of(4 * KiB, 2 * MiB) : List.of(4 * KiB, 64 * KiB, 2 * MiB);
        List<Long> totals = quick ? List.of(256 * MiB) : List.of(16 * MiB, 256 * MiB, GiB);
        if (args.value("sizes", null) != null) {
            totals = args.sizeList("sizes", null);
        }
        // at its peak a 4 KiB case holds a size eight times over: the region (twice the size: every
        // other page moves), the plain copy's two buffers, the emulated device's pool and the strided
        // floor's source (twice) and pool. Refuse up front what this machine cannot hold, rather than
        // fail deep inside with a stack trace
        long physical = HostMemory.physicalBytes();
        for (long t : totals) {
            if (t < PAGE_BYTES || t > physical / 10) {
                throw new Args.UsageException("--sizes " + Sizes.shown(t) + " is outside [4096, " + physical / 10
                        + "] bytes (a tenth of this machine's " + physical + " bytes: a 4 KiB case holds a size eight times)");
            }
        }
        if (args.value("pages", null) != null) {
            pages = args.sizeList("pages", null);
            for (long p : pages) {
                if (p < PAGE_BYTES || p > 2 * MiB || Long.bitCount(p) != 1) {
                    throw new Args.UsageException("--pages: page size " + Sizes.shown(p) + " must be a power of two in [4K, 2M]");
                }
            }
        }
        for (long t : totals) {
            for (long p : pages) {
                if (t % p != 0) {
                    // checked before the warm-up: the case would fail after it, half-way through the table
                    throw new Args.UsageException("--sizes " + Sizes.shown(t) + " is not a multiple of the page size " + Sizes.shown(p)
                            + " (every size moves whole pages of every size in --pages)");
                }
            }
        }
        // after every option is checked: a usage error is one whatever this machine has
        String noOpenCl = OpenClPlatforms.unavailableReason();
        if (noOpenCl != null && devices.contains("opencl")) {
            if (deviceArg.equals("opencl")) {
                throw new IllegalStateException("--device opencl: " + noOpenCl);   // the machine's, not a usage error: exit 1
            }
            err.println("bench migrate: no OpenCL rows: " + noOpenCl);
            devices = List.of("emulated");
        }
        List<Mode> modes = new ArrayList<>();
        long kept = UnifiedMemory.DEFAULT_HOST_RETAIN_BUDGET;
        modes.add(new Mode("vanilla", MigrationMode.VANILLA, CopyPath.THREADS, 1, HostReleasePolicy.FREE, kept));
        if (quick) {
            modes.add(new Mode("batched", MigrationMode.BATCHED, CopyPath.THREADS, 2, HostReleasePolicy.FREE, kept));
        } else {
            for (int t : new int[] {1, 2, 4}) {
                modes.add(new Mode("batched", MigrationMode.BATCHED, CopyPath.THREADS, t, HostReleasePolicy.FREE, kept));
            }
            modes.add(new Mode("copy_engine", MigrationMode.BATCHED, CopyPath.ENGINE, 1, HostReleasePolicy.FREE, kept));
            modes.add(new Mode("batched", MigrationMode.BATCHED, CopyPath.THREADS, 2, HostReleasePolicy.DONTNEED, kept));
        }
        // frames released as each page leaves (the behaviour before chunks): the copy home then
        // writes fresh frames, where the rows above write the kept, warm ones
        modes.add(new Mode("batched", MigrationMode.BATCHED, CopyPath.THREADS, 2, HostReleasePolicy.FREE, 0));
        // 4 KiB only: four budgets' worth moved, so the background release runs inside the timing
        modes.add(new Mode("sustained", MigrationMode.BATCHED, CopyPath.THREADS, 2, HostReleasePolicy.FREE, -1));

        long warmupNanos = warmUp(warmupRounds);
        int cores = Runtime.getRuntime().availableProcessors();
        long largest = 0;   // the size the limits below were measured at
        // the limit: the plain copy beside the rows with the most threads a mode here has, up to 4
        int limitThreads = modes.stream().mapToInt(Mode::threads).filter(t -> t <= Math.min(cores, 4)).max().orElse(1);
        double copyLimit = 0;
        double memcpyLimit = 0;
        double streamingLimit = 0;
        double stridedLimit = 0;
        double stridedReleaseLimit = 0;
        long stridedSize = 0;   // the size the strided floors of the limit line were measured at
        List<Object> plainRows = new ArrayList<>();
        List<Map<String, Object>> rows = new ArrayList<>();
        for (String device : devices) {
        // OpenCL's per-command latency (tens of µs on PoCL) makes its vanilla rows slow: --quick moves 64 MiB
        // there, unless --sizes says what to move (it was ignored)
        List<Long> deviceTotals = quick && device.equals("opencl") && args.value("sizes", null) == null
                ? List.of(64 * MiB) : totals;
        // the limits come from each device's largest size (OpenCL's --quick moves less than the others)
        long deviceLargest = deviceTotals.stream().mapToLong(Long::longValue).max().orElseThrow();
        for (long page : pages) {
            for (long total : deviceTotals) {
                for (Mode mode : modes) {
                    boolean sustained = mode.budget < 0;
                    if (device.equals("opencl") && (mode.release != HostReleasePolicy.FREE || sustained)) {
                        continue;
                    }
                    if (sustained && page != 4 * KiB) {
                        continue;
                    }
                    Case c = measure(device, page, total, mode, rounds(total), caseWarmupNanos);
                    // the case's limit: the median round's faster copy, as each ratio below pairs a round's
                    // migration with that round's faster copy; each copy's own median beside it (the
                    // limit can pass both where the two take turns being faster)
                    double limit = median(c.plain);
                    double memcpy = median(c.memcpy);
                    double streamed = median(c.streamed);
                    if (total == deviceLargest && mode.threads == limitThreads && limit > copyLimit) {
                        // the numbers of the run's limit line, all from the one case that set it
                        copyLimit = limit;
                        memcpyLimit = memcpy;
                        streamingLimit = streamed;
                        largest = total;
                    }
                    if (page == 4 * KiB && total == deviceLargest && mode.threads == 2 && median(c.strided) > stridedLimit) {
                        stridedLimit = median(c.strided);
                        stridedReleaseLimit = median(c.stridedRelease);
                        stridedSize = total;
                    }
                    Map<String, Object> plainRow = new LinkedHashMap<>();
                    plainRow.put("total_bytes", total);
                    plainRow.put("threads", mode.threads);
                    plainRow.put("gbps", round(limit));
                    plainRow.put("memcpy_gbps", round(memcpy));
                    if (HostCopy.streamingAvailable()) {
                        plainRow.put("streaming_copy_gbps", round(streamed));
                    }
                    plainRows.add(plainRow);
                    for (int dir = 0; dir < 2; dir++) {
                        List<Map<String, Object>> runs = new ArrayList<>();
                        for (int i = 0; i < c.runs(); i++) {
                            Map<String, Object> run = new LinkedHashMap<>();
                            run.put("device", device);
                            run.put("direction", dir == 0 ? "to_device" : "to_host");
                            run.put("page_bytes", page);
                            run.put("total_bytes", total);
                            run.put("mode", mode.name);
                            run.put("threads", mode.threads);
                            run.put("host_release", mode.release.name().toLowerCase(java.util.Locale.ROOT));
                            run.put("host_retain_budget", c.budget);
                            run.put("gbps", round(dir == 0 ? c.toDevice[i] : c.toHost[i]));
                            run.put("correct", c.correct[i]);
                            runs.add(run);
                        }
                        Map<String, Object> row = MedianRow.of(runs, "gbps");
                        double gbps = (Double) row.get("gbps");
                        double[] moved = dir == 0 ? c.toDevice : c.toHost;
                        // each ratio the median of the rounds' own ratios, the floor measured right before the
                        // migration in that round: a slow spell of this machine then hits both sides of a ratio
                        double ofPlain = pairedMedian(moved, c.plain);
                        // the floor with per-page release stands beside rows that release host frames as they
                        // go: to the device with a budget below what moves (none to the host; a budget that
                        // holds everything keeps every frame, and a floor that releases would flatter the row)
                        boolean releases = dir == 0 && c.budget < total;
                        row.put("host_retained_bytes", c.retainedAfter[dir]);
                        row.put("plain_copy_gbps", round(limit));
                        row.put("of_plain_copy", round(ofPlain));
                        row.put("memcpy_gbps", round(memcpy));
                        row.put("of_memcpy", round(pairedMedian(moved, c.memcpy)));
                        if (HostCopy.streamingAvailable()) {
                            row.put("streaming_copy_gbps", round(streamed));
                        }
                        if (page == 4 * KiB) {
                            row.put("strided_copy_gbps", round(median(c.strided)));
                            row.put("of_strided_copy", round(pairedMedian(moved, c.strided)));
                            row.put("strided_release_gbps", round(median(c.stridedRelease)));
                            if (releases) {
                                row.put("of_strided_release", round(pairedMedian(moved, c.stridedRelease)));
                            }
                        }
                        row.put("warmup_trips", c.warmup[0]);
                        row.put("warmup_seconds", round(c.warmup[1] / 1e9));
                        row.put("steal_ms", c.interference.stealMillis());
                        row.put("thp_splits", c.interference.hugePageSplits());
                        rows.add(row);
                        err.printf("%-8s %-9s %4s pages %5s %-11s %d thr keep %-6s %6.2f GB/s [%.2f-%.2f] (%3.0f%% of plain copy%s)%n",
                                device, row.get("direction"), Sizes.format(page), Sizes.format(total), mode.name, mode.threads,
                                Sizes.format(c.budget), gbps, (Double) row.get("gbps_min"), (Double) row.get("gbps_max"),
                                100 * ofPlain, page == 4 * KiB
                                        ? String.format(", %3.0f%% of strided copy", 100 * pairedMedian(moved, c.strided))
                                        + (releases ? String.format(", %3.0f%% of strided copy with release",
                                                100 * pairedMedian(moved, c.stridedRelease)) : "") : "");
                    }
                }
            }
        }
        }
        Map<String, Object> root = new LinkedHashMap<>();
        root.put("bench", "migrate");
        Map<String, Object> limits = new LinkedHashMap<>();
        limits.put("plain_copy_gbps", round(copyLimit));
        limits.put("memcpy_gbps", round(memcpyLimit));
        if (HostCopy.streamingAvailable()) {
            limits.put("streaming_copy_gbps", round(streamingLimit));
        } else {
            limits.put("streaming_unavailable", HostCopy.streamingUnavailableReason());
        }
        if (stridedLimit > 0) {
            limits.put("strided_copy_gbps", round(stridedLimit));
            limits.put("strided_release_gbps", round(stridedReleaseLimit));
        }
        limits.put("plain_copy", plainRows);
        root.put("limits", limits);
        root.put("warmup_rounds", warmupRounds);
        root.put("warmup_seconds", round(warmupNanos / 1e9));
        root.put("rows", rows);
        BenchPlots.write(plot, root, err);
        long wrong = rows.stream().filter(r -> !(Boolean) r.get("correct")).count();
        if (wrong > 0) {
            err.println("bench migrate: data came back wrong in " + wrong + " of " + rows.size() + " rows (\"correct\":false)");
        }
        if (json) {
            out.println(Json.write(root));
        } else {
            out.printf("warm-up before the first case, not counted: %d rounds of 32 MiB of 4 KiB and 2 MiB migrations"
                    + " (emulated device) and strided copies, %.1f s; then each case its own round trips until the JIT"
                    + " is quiet (0.5 s without 20 ms of compilation), at most %.1f s%n", warmupRounds, warmupNanos / 1e9, caseWarmupNanos / 1e9);
            out.printf("plain copy (the limit), %s, %d threads: %.2f GB/s, the median round's faster of memcpy (median %.2f"
                    + " GB/s) and the streaming copy (%s) (each row: its own, measured beside it)%n", Sizes.format(largest),
                    limitThreads, copyLimit,
                    memcpyLimit, HostCopy.streamingAvailable() ? String.format("median %.2f GB/s", streamingLimit)
                            : "not available: " + HostCopy.streamingUnavailableReason());
            if (stridedLimit > 0) {
                out.printf("every other 4 KiB page, 2 threads, %s: strided copy %.2f GB/s, with per-page release %.2f GB/s%n",
                        Sizes.format(stridedSize), stridedLimit, stridedReleaseLimit);
            }
            out.printf("%-8s %-9s %5s %6s %-11s %7s %-8s %7s %9s %13s %7s %9s %9s %9s %11s %6s%n", "device", "direction", "page",
                    "moved", "mode", "threads", "release", "keep", "GB/s", "min-max", "of copy", "of memcpy", "of strid", "of s+rel",
                    "kept after", "splits");
            for (Map<String, Object> r : rows) {
                out.printf("%-8s %-9s %5s %6s %-11s %7d %-8s %7s %9.2f %13s %6.0f%% %8.0f%% %9s %9s %11s %6s%n", r.get("device"),
                        r.get("direction"), Sizes.format((Long) r.get("page_bytes")), Sizes.format((Long) r.get("total_bytes")),
                        r.get("mode"), (Integer) r.get("threads"), r.get("host_release"),
                        Sizes.format((Long) r.get("host_retain_budget")), (Double) r.get("gbps"),
                        String.format("%.2f-%.2f", (Double) r.get("gbps_min"), (Double) r.get("gbps_max")),
                        100 * (Double) r.get("of_plain_copy"), 100 * (Double) r.get("of_memcpy"), percent(r.get("of_strided_copy")),
                        percent(r.get("of_strided_release")),
                        Sizes.format((Long) r.get("host_retained_bytes")), r.get("thp_splits"));
            }
        }
        return wrong > 0 || BenchPlots.failed(root) ? 1 : 0;
    }

    private static String percent(Object ratio) {
        return ratio == null ? "-" : String.format("%.0f%%", 100 * (Double) ratio);
    }

    /**
     * {@code rounds} rounds of migrations of 32 MiB of 4 KiB pages (every other one) and of 2 MiB
     * pages to an emulated device and back, with a strided copy beside them, counting nothing: the
     * engine's and the floors' code is compiled by then, as in a program that has run a while
     * (the engine's code is the same whatever the device; OpenCL's driver is warmed by its own
     * cases' rounds). Without it the first cases ran at a third to a half of their later rate
     * (this machine, 256 MiB of 4 KiB pages: 0.8-4.4 GB/s in the first five rounds of a fresh JVM,
     * 7-11 GB/s after fifteen).
     *
     * @return the nanoseconds it took
     */
    private static long warmUp(int rounds) {
        long t0 = System.nanoTime();
        if (rounds == 0) {
            return 0;
        }
        long bytes = 32 * MiB;
        DeviceDriver dev = EmulatedDevice.builder().capacity(2 * bytes).populate(true).build();
        try (UnifiedMemory mem = UnifiedMemory.builder().device(dev).copyThreads(2).build()) {
            Region small = mem.allocate(2 * bytes, 4 * KiB);
            Region huge = mem.allocate(bytes, 2 * MiB);
            try (HostView v = small.host(0, small.size(), Access.WRITE); HostView w = huge.host(0, huge.size(), Access.WRITE)) {
                v.segment().fill((byte) 1);
                w.segment().fill((byte) 2);
            }
            long[] scattered = new long[(int) (bytes / PAGE_BYTES)];
            for (int i = 0; i < scattered.length; i++) {
                scattered[i] = 2L * i * PAGE_BYTES;
            }
            long[] blocks = new long[(int) (bytes / (2 * MiB))];
            for (int i = 0; i < blocks.length; i++) {
                blocks[i] = i * 2 * MiB;
            }
            for (int round = 0; round < rounds; round++) {
                mem.prefetch(small, scattered, PAGE_BYTES, 1);
                mem.prefetch(small, scattered, PAGE_BYTES, 0);
                mem.prefetch(huge, blocks, 2 * MiB, 1);
                mem.prefetch(huge, blocks, 2 * MiB, 0);
                StridedCopy.gbps(4 * MiB, 2, round % 2 == 0);
            }
        }
        return System.nanoTime() - t0;
    }

    private static int rounds(long total) {
        return total >= GiB ? 3 : 5;
    }

    /** The median of the ratios a[i] / b[i], each round's own. */
    private static double pairedMedian(double[] a, double[] b) {
        double[] r = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            r[i] = a[i] / b[i];
        }
        return median(r);
    }

    /** The median; of an even number of values, the lower of the two middle ones (as {@link MedianRow#of}). */
    private static double median(double[] v) {
        double[] s = v.clone();
        java.util.Arrays.sort(s);
        return s[(s.length - 1) / 2];
    }

    private static double round(double v) {
        return Math.round(v * 1000) / 1000.0;
    }

    /**
     * One case's rounds: GB/s to the device and back, the plain copy of the same bytes by the same
     * threads, and for 4 KiB pages the strided-copy floors, each measured in every round right
     * before the migrations, so that noise from other tenants hits all alike; the bytes of host
     * frames kept after the last round's move to the device and back; what disturbed the case.
     */
    private record Case(long budget, double[] toDevice, double[] toHost, double[] plain, double[] memcpy,
                        double[] streamed, double[] strided, double[] stridedRelease, boolean[] correct,
                        long[] retainedAfter, long[] warmup, Interference interference) {
        int runs() {
            return toDevice.length;
        }
    }

    /** Migrates {@code total} bytes of pages of size {@code page} to the device and back, {@code rounds} times. */
    private static Case measure(String device, long page, long total, Mode mode, int rounds, long warmupNanos) {
        boolean sparse = page == 4 * KiB;
        long regionBytes = sparse ? 2 * total : total;
        long count = total / page;
        long[] offsets = new long[(int) count];
        for (int i = 0; i < count; i++) {
            offsets[i] = (sparse ? 2L * i : i) * page;
        }
        long budget = mode.budget < 0 ? Math.max(PAGE_BYTES, total / 4) : mode.budget;
        DeviceDriver dev = device.equals("opencl")
                ? OpenClDevice.builder().capacity(Math.max(2 * MiB, total)).build()
                : EmulatedDevice.builder().capacity(total).populate(true).build();
        // the same page backing as the migration's ends: regions and the device pool ask for huge pages
        try (NativeBuffer copySrc = NativeBuffer.allocate(total, true, 1);
             NativeBuffer copyDst = NativeBuffer.allocate(total, true, 2);
             UnifiedMemory mem = UnifiedMemory.builder().device(dev).copyThreads(mode.threads)
                     .migrationMode(mode.migration).copyPath(mode.path).hostReleasePolicy(mode.release)
                     .hostRetainBudget(budget).build()) {
            Region r = mem.allocate(regionBytes, page);
            try (HostView v = r.host(0, regionBytes, Access.WRITE)) {
                for (long o = 0; o < regionBytes; o += PAGE_BYTES) {
                    v.segment().set(ValueLayout.JAVA_LONG, o, o * 31 + 7);
                }
            }
            long[] warm = warmCase(mem, r, offsets, page, warmupNanos);
            Case c = new Case(budget, new double[rounds], new double[rounds], new double[rounds], new double[rounds],
                    new double[rounds], new double[rounds], new double[rounds], new boolean[rounds], new long[2], warm,
                    Interference.now());
            for (int round = 0; round < rounds; round++) {
                // the limit: the faster of memcpy and the streaming copy hetmem's batches use (which moves
                // more on machines where memcpy's stores read each destination line in first)
                c.memcpy[round] = NativeBuffer.plainCopyGbps(copyDst, copySrc, mode.threads);
                c.streamed[round] = HostCopy.streamingAvailable()
                        ? NativeBuffer.streamingCopyGbps(copyDst, copySrc, mode.threads) : 0;
                c.plain[round] = Math.max(c.memcpy[round], c.streamed[round]);
                if (sparse) {
                    c.strided[round] = StridedCopy.gbps(total, mode.threads, false);
                    c.stridedRelease[round] = StridedCopy.gbps(total, mode.threads, true);
                }
                long t0 = System.nanoTime();
                long moved = mem.prefetch(r, offsets, page, 1);
                // the background release this move set off (kept frames past the budget) is part of its
                // work: the time runs until the kept bytes are back within the budget (it used to stop at
                // the prefetch's return, a budget's worth of release after it, which the next row paid)
                awaitWithinBudget(mem, budget);
                long t1 = System.nanoTime();
                c.retainedAfter[0] = mem.stats().node(0).retainedBytes();
                long t2 = System.nanoTime();
                long back = mem.prefetch(r, offsets, page, 0);
                long t3 = System.nanoTime();
                c.retainedAfter[1] = mem.stats().node(0).retainedBytes();
                if (moved * PAGE_BYTES != total || back * PAGE_BYTES != total) {
                    throw new IllegalStateException("moved " + moved + " and " + back + " pages, expected " + total / PAGE_BYTES);
                }
                c.toDevice[round] = total / (double) (t1 - t0);
                c.toHost[round] = total / (double) (t3 - t2);
                c.correct[round] = cameBack(r, offsets, page);
            }
            // the case's interference: what happened since the reading the record was made with
            return new Case(budget, c.toDevice, c.toHost, c.plain, c.memcpy, c.streamed, c.strided, c.stridedRelease,
                    c.correct, c.retainedAfter, warm, Interference.now().since(c.interference));
        }
    }

    /** Waits until the host frames kept are within {@code budget} again (the background release caught up). */
    private static void awaitWithinBudget(UnifiedMemory mem, long budget) {
        long deadline = System.nanoTime() + 60_000_000_000L;
        while (mem.stats().node(0).retainedBytes() > budget) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("the kept host frames stayed above the budget of " + budget
                        + " bytes for 60 s after a move");
            }
            java.util.concurrent.locks.LockSupport.parkNanos(200_000);   // stats() is not free: a poll now and then
        }
    }

    /**
     * The case's own round trips, not counted, until the JIT has been quiet for {@link #QUIET_NANOS}
     * (no more than {@link #QUIET_COMPILE_MILLIS} of compilation finished meanwhile), at most
     * {@code maxNanos} (none if 0): returns the round
     * trips made and the nanoseconds they took. The JVM-wide warm-up ({@link #warmUp}) compiles the
     * engine, but a case that takes a path the warm-up did not (another list's class at a call
     * site, a branch never taken before) deoptimizes a compiled method, and C2 compiles the
     * engine's largest methods again in 0.1-0.6 s each, on one of this machine's two cores: the
     * first rounds of each case then read a quarter to a half of the later ones (256 MiB of 4 KiB
     * pages to the device: 2.1, 5.6, 5.1, 9.2, 13.0 GB/s in five rounds, MigrationEngine.ensure
     * compiled again during the first three).
     */
    private static long[] warmCase(UnifiedMemory mem, Region r, long[] offsets, long page, long maxNanos) {
        if (maxNanos == 0) {
            return new long[] {0, 0};
        }
        java.lang.management.CompilationMXBean jit = java.lang.management.ManagementFactory.getCompilationMXBean();
        long start = System.nanoTime();
        long quietSince = start;
        long compiled = jit.isCompilationTimeMonitoringSupported() ? jit.getTotalCompilationTime() : -1;
        long trips = 0;
        while (true) {
            mem.prefetch(r, offsets, page, 1);
            mem.prefetch(r, offsets, page, 0);
            trips++;
            long now = System.nanoTime();
            long c = compiled < 0 ? -1 : jit.getTotalCompilationTime();
            if (c - compiled > QUIET_COMPILE_MILLIS) {   // small compilations go on for long: only big ones count
                compiled = c;
                quietSince = now;
            }
            if (now - quietSince >= QUIET_NANOS || now - start >= maxNanos) {
                return new long[] {trips, now - start};
            }
        }
    }

    /** The data made the round trip intact (spot check, one long per moved page). */
    private static boolean cameBack(Region r, long[] offsets, long page) {
        try (HostView v = r.host(0, r.size(), Access.READ)) {
            for (long off : offsets) {
                for (long o = off; o < off + page; o += PAGE_BYTES) {
                    if (v.segment().get(ValueLayout.JAVA_LONG, o) != o * 31 + 7) {
                        return false;
                    }
                }
            }
        }
        return true;
    }
}
