package dev.hetmem.cli;

import dev.hetmem.UnifiedMemory;
import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.limits.FreshMemory;
import dev.hetmem.limits.Interference;
import dev.hetmem.limits.PageCache;
import dev.hetmem.io.LoadOptions;
import dev.hetmem.io.LoadResult;
import dev.hetmem.io.LoadScheme;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;

/**
 * {@code hetmem bench load}: the direct-I/O loading table on this machine. Each file size is loaded with each
 * scheme to the host and to the emulated device, from a cold page cache; beside them, the disk's
 * own sequential read bandwidth measured by fio (O_DIRECT, 4 MiB blocks, queue depth 16) in the
 * same run. fio runs twice per load: into its usual 4 KiB-page buffers and, where huge pages can be
 * reserved (root), into huge-page buffers as hetmem's loader reads; the faster is the limit, because
 * a 4 MiB direct read into 4 KiB pages is split by the block layer's segment limit and the disk is
 * then measured below what it can do. Beside fio, the rate at which this machine backs fresh memory
 * (4 threads, {@code MADV_POPULATE_WRITE}, the same size): a load into new host pages is held to
 * the slower of the two, and host rows are reported against that lower floor (a load that reuses
 * the pages the populate measurement just gave back can beat it). Each case runs
 * three rounds, each with its own floors, measured right before its load: fio (the faster of its two
 * runs) and the populate rate. A row is the median round, with the slowest and fastest; its floor
 * columns ({@code fio_gbps}, {@code fio_small_pages_gbps}, {@code fio_huge_pages_gbps},
 * {@code populate_gbps}, {@code floor_gbps}) are the medians of the rounds' values, and
 * {@code of_fio} and {@code of_floor} the medians of each round's ratio to its own floors (rounds
 * with no reading left out); the limits object holds the best round's.
 */
final class LoadBench {
    private static final long MiB = 1L << 20;
    private static final int FIO_DEPTH = 16;
    /** fio's buffers at 4 MiB blocks and depth 16, in 2 MiB pages, with room for its alignment. */
    private static final long FIO_HUGE_PAGES = FIO_DEPTH * 2 + 4;
    /** Threads that populate fresh memory for the populate floor, as the loader's populating threads. */
    private static final int POPULATE_THREADS = 4;

    private LoadBench() {}

    static int run(List<String> argv, PrintStream out, PrintStream err) throws IOException {
        Args args = new Args(argv, Set.of("json", "quick"), Set.of("sizes", "dir", "plot"));
        String plot = Chart.plotOption(args);
        boolean json = args.flag("json");
        boolean given = args.value("sizes", null) != null;
        List<Long> sizes = new ArrayList<>(args.sizeList("sizes", args.flag("quick") ? "8M,1G" : "512K,8M,1G,3G"));
        // each size is a file written here and loaded to the host and to an emulated device (host memory
        // too) at once: refused up front beyond half of this machine's memory, not by the OOM killer (a
        // default size that does not fit a small machine is left out, saying so)
        long physical = HostMemory.physicalBytes();
        for (long v : List.copyOf(sizes)) {
            if (v < 1 || v > physical / 2) {
                if (given) {
                    throw new Args.UsageException("--sizes " + Sizes.shown(v) + " is outside [1, " + physical / 2 + "] bytes (half of this "
                            + "machine's " + physical + " bytes: a size is loaded to the host and to an emulated device at once)");
                }
                err.println("bench load: leaving out " + v + " bytes, more than half of this machine's " + physical + " bytes of memory");
                sizes.remove(Long.valueOf(v));
            }
        }
        if (sizes.isEmpty()) {
            throw new IllegalStateException("no size of this bench fits half of this machine's " + physical + " bytes of memory");
        }
        String dirOption = args.value("dir", "target/bench-load");
        Path dir;
        try {
            dir = Path.of(dirOption).toAbsolutePath();
        } catch (java.nio.file.InvalidPathException e) {
            throw new Args.UsageException("--dir " + Main.printable(dirOption) + ": not a folder name (" + e.getReason() + ")");
        }
        if (Files.exists(dir) && !Files.isDirectory(dir)) {
            throw new Args.UsageException("--dir " + Main.printable(dirOption) + ": that is a file, not a folder");
        }
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new Args.UsageException("--dir " + Main.printable(dirOption) + ": cannot make the folder ("
                    + (e.getMessage() == null ? "refused" : Main.printable(e.getMessage())) + ")");
        }
        long largest = sizes.stream().mapToLong(Long::longValue).max().orElseThrow();

        boolean toWrite = false;
        for (long size : sizes) {
            Path p = dir.resolve("load-" + size + ".bin");
            toWrite |= !(Files.isRegularFile(p) && Files.size(p) == size);
        }
        if (toWrite) {
            // probed before anything is written: a folder such as /proc is made (it is there) and then
            // refuses its first file, which said only that file's path
            String why = Chart.whyNotWritable(dir);
            if (why != null) {
                throw new Args.UsageException("--dir " + Main.printable(dirOption) + ": the test files cannot be written there ("
                        + why + ")");
            }
        }
        List<Path> files = new ArrayList<>();
        for (long size : sizes) {
            files.add(testFile(dir, size, err));
        }
        Fio disk = ensureFio(err) ? new Fio(err) : null;
        double bestFio = 0;
        double bestPopulate = 0;

        List<Map<String, Object>> rows = new ArrayList<>();
        long capacity = Math.max(EmulatedDevice.DEFAULT_CAPACITY, (largest + (2 * MiB) - 1) & -(2 * MiB));
        try (UnifiedMemory mem = UnifiedMemory.builder()
                .device(EmulatedDevice.builder().capacity(capacity).populate(true).build()).build()) {
            for (int i = 0; i < sizes.size(); i++) {
                long size = sizes.get(i);
                Path file = files.get(i);
                int rounds = 3;   // a median with a spread on either side
                for (int node = 0; node <= 1; node++) {
                    for (LoadScheme scheme : LoadScheme.values()) {
                        // this disk is shared and its speed swings widely: fio runs right before each load,
                        // both from a cold cache, and each load is compared with the fio runs of its own
                        // round, not with the best of all rounds (a median load held to the best fio run of
                        // three read 77-79% of fio; round by round, the next run read 91-100%)
                        double[] fioSmall = new double[rounds];
                        double[] fioHuge = new double[rounds];
                        double[] populate = new double[rounds];
                        LoadResult[] byRound = new LoadResult[rounds];
                        boolean cold = true;
                        boolean correct = true;
                        Interference before = Interference.now();
                        for (int round = 0; round < rounds; round++) {
                            if (disk != null) {
                                fioSmall[round] = disk.smallPages(file, size);
                                fioHuge[round] = disk.hugePages(file, size);
                            }
                            // the other floor of a load into new host pages: how fast this machine
                            // backs fresh memory (4 threads, MADV_POPULATE_WRITE, the same size)
                            populate[round] = FreshMemory.populateGbps(size, POPULATE_THREADS);
                            cold &= dropCache(file);
                            LoadResult r = mem.load(file, node, LoadOptions.defaults().withScheme(scheme));
                            correct &= sameAsFile(r.region(), file, size);   // after the clock: a sample of its pages
                            r.region().free();
                            byRound[round] = r;
                        }
                        Interference disturbed = Interference.now().since(before);
                        List<LoadResult> results = new ArrayList<>(List.of(byRound));
                        results.sort(java.util.Comparator.comparingDouble(LoadResult::gbps));
                        LoadResult best = results.get(results.size() / 2);   // the median round stands for the case
                        double[] fioRound = new double[rounds];
                        double[] floorRound = new double[rounds];
                        double[] ofFio = new double[rounds];
                        double[] ofFloor = new double[rounds];
                        for (int round = 0; round < rounds; round++) {
                            fioRound[round] = Math.max(fioSmall[round], fioHuge[round]);
                            // a load to the host is held to the slower of the disk and fresh memory
                            floorRound[round] = node == 0 && populate[round] > 0
                                    ? (fioRound[round] > 0 ? Math.min(fioRound[round], populate[round]) : populate[round])
                                    : fioRound[round];
                            ofFio[round] = fioRound[round] > 0 ? byRound[round].gbps() / fioRound[round] : 0;
                            ofFloor[round] = floorRound[round] > 0 ? byRound[round].gbps() / floorRound[round] : 0;
                        }
                        double populateGbps = median(populate);
                        double fio = median(fioRound);
                        double floor = median(floorRound);
                        bestFio = Math.max(bestFio, size == largest ? max(fioRound) : 0);
                        bestPopulate = Math.max(bestPopulate, size == largest ? populateGbps : 0);
                        Map<String, Object> row = new LinkedHashMap<>();
                        row.put("file_bytes", size);
                        row.put("scheme", scheme.name().toLowerCase(Locale.ROOT));
                        row.put("target", node == 0 ? "host" : "device");
                        row.put("seconds", Math.round(best.seconds() * 1e6) / 1e6);
                        row.put("gbps", Math.round(best.gbps() * 1000) / 1000.0);
                        row.put("gbps_min", Math.round(results.getFirst().gbps() * 1000) / 1000.0);
                        row.put("gbps_max", Math.round(results.getLast().gbps() * 1000) / 1000.0);
                        row.put("runs", results.size());
                        row.put("peak_extra_host_bytes", best.peakExtraHostBytes());
                        row.put("cold", cold);
                        row.put("correct", correct);
                        row.put("direct", best.direct());
                        if (best.allocationNanos() > 0) {
                            row.put("allocation_seconds", Math.round(best.allocationNanos() / 1e3) / 1e6);
                        }
                        if (fio > 0) {
                            row.put("fio_gbps", Math.round(fio * 1000) / 1000.0);
                            row.put("fio_small_pages_gbps", Math.round(median(fioSmall) * 1000) / 1000.0);
                            if (median(fioHuge) > 0) {
                                row.put("fio_huge_pages_gbps", Math.round(median(fioHuge) * 1000) / 1000.0);
                            }
                            row.put("of_fio", Math.round(median(ofFio) * 1000) / 1000.0);
                        }
                        if (populateGbps > 0) {
                            row.put("populate_gbps", Math.round(populateGbps * 1000) / 1000.0);
                        }
                        if (floor > 0) {
                            row.put("floor_gbps", Math.round(floor * 1000) / 1000.0);
                            row.put("of_floor", Math.round(median(ofFloor) * 1000) / 1000.0);
                        }
                        row.put("steal_ms", disturbed.stealMillis());
                        row.put("thp_splits", disturbed.hugePageSplits());
                        rows.add(row);
                        err.printf("%6s %-10s to %-6s %8.3f s %7.3f GB/s [%.3f-%.3f]%s%s extra host %s%s%s%n", Sizes.format(size),
                                row.get("scheme"), row.get("target"), best.seconds(), best.gbps(), results.getFirst().gbps(),
                                results.getLast().gbps(),
                                fio > 0 ? String.format(" (fio beside it %.3f huge pages, %.3f small: %3.0f%%)", median(fioHuge),
                                        median(fioSmall), 100 * median(ofFio)) : "",
                                node == 0 && floor > 0 ? String.format(" (populate %.3f GB/s; %3.0f%% of the lower floor)",
                                        populateGbps, 100 * median(ofFloor)) : "",
                                ProgressBar.human(best.peakExtraHostBytes()),
                                best.allocationNanos() > 0 ? String.format(", pages populated in %.3f s", best.allocationNanos() / 1e9) : "",
                                cold ? "" : " [warm cache]");
                    }
                }
            }
        }
        Double fioLimit = disk != null ? bestFio : null;
        Map<String, Object> root = new LinkedHashMap<>();
        root.put("bench", "load");
        Map<String, Object> limits = new LinkedHashMap<>();
        limits.put("fio_gbps", fioLimit);
        limits.put("fio_huge_pages", disk != null && disk.huge);
        limits.put("populate_gbps", Math.round(bestPopulate * 1000) / 1000.0);
        root.put("limits", limits);
        root.put("rows", rows);
        BenchPlots.write(plot, root, err);
        if (json) {
            out.println(Json.write(root));
        } else {
            out.printf("disk sequential read (fio, O_DIRECT, 4 MiB blocks, queue depth 16, %s, %s, best beside the loads): %s%n",
                    Sizes.format(largest), disk != null && disk.huge ? "huge-page and 4 KiB buffers" : "4 KiB buffers only",
                    fioLimit == null ? "not measured (fio missing)" : String.format("%.3f GB/s", fioLimit));
            out.printf("fresh memory populated (4 threads, MADV_POPULATE_WRITE, %s, beside the loads): %.3f GB/s%n",
                    Sizes.format(largest), bestPopulate);
            out.printf("%6s %-10s %-6s %9s %11s %8s %13s %9s %9s %8s %8s %12s %5s%n", "size", "scheme", "target", "seconds", "allocation",
                    "GB/s", "min-max", "fio GB/s", "populate", "of fio", "of floor", "extra host", "cold");
            for (Map<String, Object> r : rows) {
                out.printf("%6s %-10s %-6s %9.3f %11s %8.3f %13s %9s %9s %8s %8s %12s %5s%n", Sizes.format((Long) r.get("file_bytes")),
                        r.get("scheme"), r.get("target"), (Double) r.get("seconds"),
                        r.containsKey("allocation_seconds") ? String.format("%.3f", (Double) r.get("allocation_seconds")) : "-",
                        (Double) r.get("gbps"), String.format("%.3f-%.3f", (Double) r.get("gbps_min"), (Double) r.get("gbps_max")),
                        r.containsKey("fio_gbps") ? String.format("%.3f", (Double) r.get("fio_gbps")) : "-",
                        r.containsKey("populate_gbps") ? String.format("%.3f", (Double) r.get("populate_gbps")) : "-",
                        r.containsKey("of_fio") ? String.format("%.0f%%", 100 * (Double) r.get("of_fio")) : "-",
                        r.containsKey("of_floor") ? String.format("%.0f%%", 100 * (Double) r.get("of_floor")) : "-",
                        ProgressBar.human((Long) r.get("peak_extra_host_bytes")), r.get("cold"));
            }
            for (Map<String, Object> r : rows) {
                if (!(Boolean) r.get("correct")) {
                    out.printf("WRONG: a %s load of %s to the %s did not read as the file%n", r.get("scheme"),
                            Sizes.format((Long) r.get("file_bytes")), r.get("target"));
                }
            }
        }
        long kept = 0;
        for (Path f : files) {
            kept += Files.size(f);
        }
        // kept on purpose (writing gigabytes is slower than the bench): said, so that the space is not lost unawares
        err.println("bench load: the test files (" + Sizes.format(kept) + ") stay in " + Main.printable(dir.toString())
                + " for the next run; delete the folder to have the space back");
        return rows.stream().allMatch(r -> (Boolean) r.get("correct")) && !BenchPlots.failed(root) ? 0 : 1;
    }

    /** Whether 64 pages spread over the loaded region (the first and the last among them) read as the file does. */
    private static boolean sameAsFile(dev.hetmem.Region region, Path file, long size) throws IOException {
        if (region.size() != size) {
            return false;
        }
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            for (int i = 0; i < 64; i++) {
                long off = i == 63 ? Math.max(0, size - PAGE_BYTES) : (size / 64 * i) & -PAGE_BYTES;
                int len = (int) Math.min(PAGE_BYTES, size - off);
                ByteBuffer want = ByteBuffer.allocate(len);
                while (want.hasRemaining() && ch.read(want, off + want.position()) >= 0) {
                    // a short read goes on from where it stopped
                }
                byte[] got;
                try (dev.hetmem.HostView v = region.host(off, len, dev.hetmem.Access.READ)) {
                    got = v.segment().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
                }
                if (!java.util.Arrays.equals(got, want.array())) {
                    return false;
                }
            }
        }
        return true;
    }

    /** A file of {@code size} random bytes, written once and kept for later runs. */
    private static Path testFile(Path dir, long size, PrintStream err) throws IOException {
        Path p = dir.resolve("load-" + size + ".bin");
        if (Files.exists(p) && Files.size(p) == size) {
            return p;
        }
        err.printf("writing %s test file %s%n", Sizes.format(size), Main.printable(p.toString()));
        byte[] block = new byte[(int) Math.min(size, 8 * MiB)];
        new SplittableRandom(size).nextBytes(block);
        // written under a temporary name and moved into place whole: a full disk or a Ctrl-C leaves no
        // partial file (up to gigabytes) under the name a later run would take for a finished one
        Chart.replaceWhole(p, partial -> {
            try (FileChannel ch = FileChannel.open(partial, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                long left = size;
                long pos = 0;
                while (left > 0) {
                    int n = (int) Math.min(block.length, left);
                    // vary each block so nothing below can deduplicate or compress it away
                    block[(int) (pos / block.length % block.length)] ^= 1;
                    ByteBuffer b = ByteBuffer.wrap(block, 0, n);
                    while (b.hasRemaining()) {
                        ch.write(b, pos + (n - b.remaining()));
                    }
                    pos += n;
                    left -= n;
                }
                ch.force(true);
            }
        });
        return p;
    }

    /** The median of the positive values (the upper one of an even count; 0 if none is): a round with no reading is left out. */
    private static double median(double[] v) {
        double[] sorted = java.util.Arrays.stream(v).filter(x -> x > 0).sorted().toArray();
        return sorted.length == 0 ? 0 : sorted[sorted.length / 2];
    }

    private static double max(double[] v) {
        double m = 0;
        for (double x : v) {
            m = Math.max(m, x);
        }
        return m;
    }

    /** Drops the file from the page cache: the whole cache when root, else the file's pages. */
    private static boolean dropCache(Path file) {
        try {
            new ProcessBuilder("sync").start().waitFor(60, TimeUnit.SECONDS);
            Files.writeString(Path.of("/proc/sys/vm/drop_caches"), "1");
            return true;
        } catch (IOException | InterruptedException e) {
            if (e instanceof InterruptedException) {
                Thread.currentThread().interrupt();
            }
        }
        try {
            return PageCache.drop(file);
        } catch (IOException e) {
            return false;
        }
    }

    private static final Pattern BW = Pattern.compile("\"bw_bytes\"\\s*:\\s*(\\d+)");

    /** fio measures the disk's limit; installs it when missing and allowed (root with apt-get). */
    private static boolean ensureFio(PrintStream err) {
        if (onPath("fio")) {
            return true;
        }
        if (onPath("apt-get") && "root".equals(System.getProperty("user.name"))) {
            err.println("fio is missing: installing it (apt-get install -y fio)");
            try {
                Process p = new ProcessBuilder("apt-get", "install", "-y", "-q", "fio").redirectErrorStream(true).start();
                p.getInputStream().transferTo(java.io.OutputStream.nullOutputStream());
                p.waitFor(300, TimeUnit.SECONDS);
            } catch (IOException | InterruptedException e) {
                if (e instanceof InterruptedException) {
                    Thread.currentThread().interrupt();
                }
            }
        }
        if (!onPath("fio")) {
            err.println("fio is not installed (apt-get install fio): the disk's limit is not measured");
            return false;
        }
        return true;
    }

    /** The disk's limit, by fio, into both kinds of buffer; each read from a cold cache. */
    private static final class Fio {
        private final PrintStream err;
        /** Whether huge pages could be reserved so far; once not, fio reads into 4 KiB pages only. */
        boolean huge = true;

        Fio(PrintStream err) {
            this.err = err;
        }

        double smallPages(Path file, long size) {
            dropCache(file);
            return fioOnce(file, size, "malloc", err);
        }

        /** 0 when huge pages cannot be had. */
        double hugePages(Path file, long size) {
            if (!huge) {
                return 0;
            }
            // the pool grows only around fio's run: held during the loads, it would leave the kernel
            // less room for the regions' own huge pages
            try (HugePageReservation pool = HugePageReservation.tryReserve(FIO_HUGE_PAGES, err)) {
                if (!pool.held()) {
                    err.println("fio reads into 4 KiB pages only from now on: " + pool.whyNot());
                    huge = false;
                    return 0;
                }
                dropCache(file);
                return fioOnce(file, size, "shmhuge", err);
            }
        }
    }

    /**
     * One fio sequential read of the whole file: O_DIRECT, 4 MiB blocks (less for smaller files), queue
     * depth 16, into buffers of fio's {@code iomem} kind ({@code malloc}, or {@code shmhuge} for huge pages).
     */
    private static double fioOnce(Path file, long size, String iomem, PrintStream err) {
        if (size < PAGE_BYTES) {
            return 0;   // too small for a direct read of one block: no limit to compare with
        }
        long bs = Math.max(PAGE_BYTES, Math.min(4L << 20, size & -PAGE_BYTES));
        try {
            Process p = new ProcessBuilder("fio", "--name=seqread", "--filename=" + file, "--rw=read", "--direct=1",
                    "--bs=" + bs, "--iodepth=" + FIO_DEPTH, "--ioengine=libaio", "--readonly", "--size=" + (size & -PAGE_BYTES),
                    "--iomem=" + iomem,
                    "--output-format=json").start();
            String outText = new String(p.getInputStream().readAllBytes());
            p.waitFor(600, TimeUnit.SECONDS);
            Matcher m = BW.matcher(outText);
            if (!m.find()) {
                err.println("fio gave no bandwidth: " + outText.lines().limit(3).toList());
                return 0;
            }
            return Long.parseLong(m.group(1)) / 1e9;
        } catch (IOException | InterruptedException e) {
            if (e instanceof InterruptedException) {
                Thread.currentThread().interrupt();
            }
            err.println("fio failed: " + e.getMessage());
            return 0;
        }
    }

    private static boolean onPath(String tool) {
        for (String d : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
            if (Files.isExecutable(Path.of(d, tool))) {
                return true;
            }
        }
        return false;
    }
}
