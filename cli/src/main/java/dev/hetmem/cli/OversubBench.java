package dev.hetmem.cli;

import dev.hetmem.Access;
import dev.hetmem.Advice;
import dev.hetmem.HostView;
import dev.hetmem.KernelArg;
import dev.hetmem.Region;
import dev.hetmem.Stats;
import dev.hetmem.UnifiedMemory;
import dev.hetmem.device.emulated.DeviceBuffer;
import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.device.emulated.EmulatedKernel;

import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicLong;

import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;

/**
 * {@code hetmem bench oversub}: a device kernel sweeping a data set larger than the device (GMEM's
 * host DRAM as the device's swap). Each access is a kernel launch summing the longs of one
 * piece of the data set (a 2 MiB tile, or a 4 KiB page for the random pattern); the sum is checked
 * against the host's. Modes: hetmem on faults alone, with the next piece prefetched asynchronously,
 * on faults with thrashing control off, and the explicit program written today: the data set in
 * plain host memory, each piece copied into a device buffer by hand, double-buffered. The
 * one-launch modes run the whole sweep as a single launch whose item k sums piece k: "one_launch"
 * with no hint (the device faults pieces in while the kernel runs), "one_launch_windows" with a
 * per-item window declared (sequential only: the launch runs tile by tile, the next tile prefetched);
 * the "_no_thrash_control" modes turn thrashing control off. Every kernel sums its piece staged 32
 * KiB at a time ({@link #sumLongs}). Cases run in rounds, after warm-up runs of each case that are
 * not counted whenever its JVMs start (none with {@code --warmup 0}): at least {@code --warmup} (default 3), at least
 * {@link CaseJvm#WARM_UP_NANOS} of them, and on until the JVM's JIT is quiet, as in
 * {@code bench decode} ({@link CaseJvm#warmUp}; at most {@link CaseJvm#MAX_WARM_UP_NANOS},
 * {@link CaseJvm#QUICK_MAX_WARM_UP_NANOS} with {@code --quick}; rows say how long, {@code warmup_s},
 * and whether the JIT was seen quiet, {@code jit_quiet}), one case after another; one run only for a
 * case whose first run took over a second. With the floor of 1.5 s alone the engine's per-launch
 * paths were not compiled yet (a launch per piece runs a few hundred launches in it): one launch with
 * windows read 0.60 of the explicit program, faults 0.52, where warmed up until quiet they read 0.94
 * and 0.73 (one run a round, a {@code --quick} run each). {@code --modes} runs some modes only (without explicit, rows have no
 * {@code of_explicit}). Each case runs in a JVM of its own, a new one every round
 * ({@code --jvm-per-round}, the default) that first warms up, while this one alternates the cases of
 * one factor and pattern, {@code --runs-per-round} runs of each (default 3) in serpentine order
 * (A B C C B A ...), round by round ({@link CaseJvm} says why; a new JVM every round because a case's
 * speed depends on which JVM it got, its JIT's choices); {@code --jvm-per-case} keeps one JVM per
 * case for all its rounds, {@code --same-jvm} runs them all here, grouped the same way. A row is the
 * median run with its spread, and {@code of_explicit} the median of each run's ratio to the explicit
 * program's run beside it (same factor, pattern, round and slot), with {@code of_explicit_min} and
 * {@code _max}.
 */
final class OversubBench {
    private static final long MiB = 1L << 20;
    private static final long TILE = 2 * MiB;
    /** How many pieces ahead the prefetch mode asks for. */
    private static final int PREFETCH_AHEAD = 2;
    /** Every mode, for --modes. */
    private static final List<String> MODES = List.of("faults", "prefetch", "explicit", "faults_no_thrash_control",
            "one_launch", "one_launch_no_thrash_control", "one_launch_windows");

    /** Every access pattern. */
    private static final List<String> PATTERNS = List.of("sequential", "random", "hot_cold");
    /** The internal option that makes this JVM serve one case for its parent (see CaseJvm). */
    private static final String SERVE_OPTION = "serve-case";

    private OversubBench() {}

    private record Case(double factor, String pattern, String mode) {
        /** A case from its {@link #key}, {@code factor/pattern/mode}. */
        static Case parse(String key) {
            String[] p = key.split("/", -1);
            if (p.length != 3 || !MODES.contains(p[2]) || !PATTERNS.contains(p[1])) {
                throw new Args.UsageException("--" + SERVE_OPTION + " " + key + ": expected factor/pattern/mode");
            }
            double factor = CaseJvm.factor(SERVE_OPTION, key, p[0]);
            return new Case(factor, p[1], p[2]);
        }

        String key() {
            return factor + "/" + pattern + "/" + mode;
        }
    }

    /** Closes the runners (their JVMs end; null stands for a case not run this round) and empties the list. */
    private static void closeAll(List<CaseRunner> runners) {
        try {
            for (CaseRunner r : runners) {
                if (r != null) {
                    r.close();
                }
            }
        } finally {
            runners.clear();
        }
    }

    private static CaseRunner inThisJvm(Case c, long capacity) {
        return CaseRunner.inThisJvm(() -> runCase(c, capacity));
    }

    private static CaseRunner inItsOwnJvm(Case c, long capacity) {
        CaseJvm jvm = CaseJvm.start("factor " + c.factor + " " + c.pattern + " " + c.mode,
                List.of("bench", "oversub", "--" + SERVE_OPTION, c.key(), "--capacity", Long.toString(capacity)));
        return jvm.runner(5, (f, warm) -> row(c, Double.parseDouble(f[0]), Long.parseLong(f[1]), Long.parseLong(f[2]),
                Long.parseLong(f[3]), Boolean.parseBoolean(f[4])));
    }

    /**
     * The child's side ({@link CaseJvm#serve}): runs {@code c} once per request, answering with
     * {@code row gbps nanos migrated_bytes evictions correct}.
     */
    private static int serve(Case c, long capacity, PrintStream out) {
        return CaseJvm.serve(out, warm -> {
            Map<String, Object> r = runCase(c, capacity);
            return r.get("gbps") + " " + r.get("nanos") + " " + r.get("migrated_bytes") + " " + r.get("evictions") + " "
                    + r.get("correct");
        });
    }

    static int run(List<String> argv, PrintStream out, PrintStream err) {
        Args args = new Args(argv, CaseJvm.withJvmPolicies("json", "quick"), CaseJvm.withInternal(Set.of("capacity", "reps", "warmup",
                "runs-per-round", "plot", "modes"), SERVE_OPTION));
        String plot = Chart.plotOption(args);
        long capacity = args.longValue("capacity", 64 * MiB);
        if (capacity < 16 * MiB || capacity % TILE != 0) {
            throw new Args.UsageException("--capacity " + Sizes.shown(capacity) + " must be a multiple of 2M, at least 16M");
        }
        // a case holds its data set (up to 3x the device) on the host beside the device's populated memory
        long physical = HostMemory.physicalBytes();
        if (capacity > physical / 8) {
            throw new Args.UsageException("--capacity " + Sizes.shown(capacity) + " is more than an eighth of this machine's " + physical
                    + " bytes (a case holds up to three times the device beside the device itself)");
        }
        if (args.value(SERVE_OPTION, null) != null) {
            return serve(Case.parse(args.value(SERVE_OPTION, null)), capacity, out);
        }
        String policy = CaseJvm.jvmPolicy(args, "--jvm-per-round");
        boolean sameJvm = policy.equals("--same-jvm");
        boolean jvmPerRound = policy.equals("--jvm-per-round");
        List<Case> cases = new ArrayList<>();
        if (args.flag("quick")) {
            for (String m : List.of("faults", "prefetch", "explicit", "one_launch", "one_launch_windows")) {
                cases.add(new Case(2, "sequential", m));
            }
            cases.add(new Case(2, "random", "faults"));
            cases.add(new Case(2, "random", "faults_no_thrash_control"));
            cases.add(new Case(2, "random", "one_launch"));
            cases.add(new Case(2, "random", "one_launch_no_thrash_control"));
            cases.add(new Case(2, "random", "explicit"));
        } else {
            for (double f : new double[] {0.5, 1.5, 2, 3}) {
                for (String p : PATTERNS) {
                    for (String m : List.of("faults", "prefetch", "explicit", "faults_no_thrash_control", "one_launch",
                            "one_launch_no_thrash_control")) {
                        cases.add(new Case(f, p, m));
                    }
                    if (p.equals("sequential")) {
                        cases.add(new Case(f, p, "one_launch_windows"));   // declared windows: sequential only
                    }
                }
            }
        }
        String modes = args.value("modes", null);
        if (modes != null) {
            List<String> wanted = List.of(modes.split(",", -1));
            for (String m : wanted) {
                if (!MODES.contains(m)) {
                    throw new Args.UsageException("--modes: unknown mode '" + m + "' (have: " + String.join(", ", MODES) + ")");
                }
            }
            cases.removeIf(c -> !wanted.contains(c.mode));
            if (cases.isEmpty()) {
                throw new Args.UsageException("--modes " + modes + ": no case of those modes in this run"
                        + (args.flag("quick") ? " (--quick has no random one_launch_windows or hot_cold cases)" : ""));
            }
        }
        long reps = args.countValue("reps", 5, 1, 100);
        int warmup = args.intValue("warmup", 3, 0, 20);
        int runsPerRound = args.intValue("runs-per-round", 3, 1, 20);
        // every JVM warmed up until its JIT is quiet, as bench decode's: CaseJvm.QUIET_NANOS says why
        CaseJvm.WarmUpLimits warmUpLimits = args.flag("quick") ? CaseJvm.WarmUpLimits.QUICK : CaseJvm.WarmUpLimits.BENCH;
        CopyLimits limits = CopyLimits.measure(256 * MiB, false);
        // bySlot.get(i).get(slot): case i's run in that slot (a round's runs, one slot each), null where its
        // time budget skipped it
        List<List<Map<String, Object>>> bySlot = new ArrayList<>();
        CaseJvm.WarmUps[] warmUps = new CaseJvm.WarmUps[cases.size()];
        java.util.Arrays.setAll(warmUps, i -> new CaseJvm.WarmUps());
        long[] spent = new long[cases.size()];
        for (int i = 0; i < cases.size(); i++) {
            bySlot.add(new ArrayList<>());
        }
        // one factor and pattern at a time: its modes, each in a JVM of its own (CaseJvm says why)
        // unless --same-jvm, run in rounds, so that they are measured side by side and a noisy second
        // of this shared machine hits them alike; first warm-up rounds, not counted (the JIT compiles
        // the engine's paths meanwhile; a wrong result there still makes the row wrong), then rounds
        // until each case has run reps times runs-per-round or used its time budget (the slow random
        // cases run two or three times)
        for (int g = 0; g < cases.size(); ) {
            int end = g;
            while (end < cases.size() && cases.get(end).factor == cases.get(g).factor
                    && cases.get(end).pattern.equals(cases.get(g).pattern)) {
                end++;
            }
            List<CaseRunner> runners = new ArrayList<>();
            try {
                for (int round = 0; round < reps; round++) {
                    if (runners.isEmpty() || jvmPerRound) {
                        // new JVMs (every round unless --jvm-per-case or --same-jvm), warmed up first
                        closeAll(runners);
                        for (int i = g; i < end; i++) {
                            boolean needed = round == 0 || spent[i] <= REPEAT_BUDGET_NANOS;
                            runners.add(!needed ? null : sameJvm ? inThisJvm(cases.get(i), capacity)
                                    : inItsOwnJvm(cases.get(i), capacity));
                        }
                        for (int i = g; i < end; i++) {
                            // a slow case (random, no thrashing control) is warm after one run
                            if (runners.get(i - g) != null) {
                                warmUps[i].add(CaseJvm.warmUp(runners.get(i - g), warmup, REPEAT_BUDGET_NANOS, warmUpLimits));
                            }
                        }
                    }
                    // several runs of each case, interleaved in serpentine order (A B C C B A ...): a run of
                    // the sequential cases is 10-50 ms, and this machine's slow spells hit runs taken side by
                    // side alike; a slot pairs each case's run with the explicit program's beside it
                    for (int k = 0; k < runsPerRound; k++) {
                        for (int j = g; j < end; j++) {
                            int i = k % 2 == 0 ? j : g + end - 1 - j;
                            if ((round > 0 || k > 0) && spent[i] > REPEAT_BUDGET_NANOS) {
                                bySlot.get(i).add(null);
                                continue;
                            }
                            Map<String, Object> r = runners.get(i - g).run();
                            bySlot.get(i).add(r);
                            spent[i] += (Long) r.get("nanos");   // the sweep's time: a run's set-up is not the case's cost
                        }
                    }
                }
            } finally {
                closeAll(runners);
            }
            // progress: the rows themselves come once every case has run (their medians and ratios)
            err.printf("bench oversub: factor %.1f %s measured (%d of %d cases)%n", cases.get(g).factor, cases.get(g).pattern,
                    end, cases.size());
            g = end;
        }
        List<Map<String, Object>> rows = new ArrayList<>();
        for (int i = 0; i < cases.size(); i++) {
            Case c = cases.get(i);
            Map<String, Object> row = MedianRow.of(bySlot.get(i).stream().filter(Objects::nonNull).toList(), "gbps");
            warmUps[i].putInto(row);
            int e = cases.indexOf(new Case(c.factor, c.pattern, "explicit"));
            if (e >= 0) {
                // each run's ratio to the explicit program's run of the same slot (beside it), where both ran
                List<Map<String, Object>> mine = new ArrayList<>();
                List<Map<String, Object>> theirs = new ArrayList<>();
                for (int slot = 0; slot < bySlot.get(i).size(); slot++) {
                    if (bySlot.get(i).get(slot) != null && bySlot.get(e).get(slot) != null) {
                        mine.add(bySlot.get(i).get(slot));
                        theirs.add(bySlot.get(e).get(slot));
                    }
                }
                MedianRow.putPairedRatio(row, "of_explicit", mine, theirs);
            }
            rows.add(row);
            err.printf("factor %.1f %-10s %-28s %7.3f GB/s (%d runs, %.3f-%.3f)%s  migrated %s  evictions %d  %s  %s%n", c.factor,
                    c.pattern, c.mode, (Double) row.get("gbps"), (Integer) row.get("runs"), (Double) row.get("gbps_min"),
                    (Double) row.get("gbps_max"), row.containsKey("of_explicit")
                            ? String.format("  of explicit %.3f (%.3f-%.3f)", (Double) row.get("of_explicit"),
                            (Double) row.get("of_explicit_min"), (Double) row.get("of_explicit_max")) : "",
                    ProgressBar.human((Long) row.get("migrated_bytes")), (Long) row.get("evictions"),
                    (Boolean) row.get("correct") ? "correct" : "WRONG", warmUps[i].text());
        }
        Map<String, Object> root = BenchRoot.of("oversub", limits, capacity, rows);
        if (!BenchRoot.emit(root, plot, args, out, err)) {
            out.printf("%s; emulated device of %s%n", limits.text(), ProgressBar.human(capacity));
            out.printf("%6s %-10s %-28s %9s %11s %14s %9s %7s%n", "factor", "pattern", "mode", "GB/s", "of explicit", "migrated",
                    "evictions", "correct");
            for (Map<String, Object> r : rows) {
                out.printf("%6.1f %-10s %-28s %9.3f %11s %14s %9d %7s%n", (Double) r.get("ws_factor"), r.get("pattern"), r.get("mode"),
                        (Double) r.get("gbps"), r.containsKey("of_explicit") ? String.format("%.3f", (Double) r.get("of_explicit")) : "-",
                        ProgressBar.human((Long) r.get("migrated_bytes")), (Long) r.get("evictions"), r.get("correct"));
            }
        }
        return rows.stream().allMatch(r -> (Boolean) r.get("correct")) && !BenchPlots.failed(root) ? 0 : 1;
    }

    /**
     * A case whose runs so far took longer than this (their sweeps, not their set-up: a 64 MiB
     * device populated, the data set written) is not repeated: the random cases without thrashing
     * control take about half a second a run.
     */
    private static final long REPEAT_BUDGET_NANOS = 1_000_000_000L;


    /** The long at index i of the data set. */
    static long value(long i) {
        return i * 0x9E3779B97F4A7C15L + 12345;
    }

    /** The pieces accessed, as byte offsets, and each piece's size. */
    private record Accesses(long[] offsets, long size) {}

    private static Accesses accesses(String pattern, long bytes) {
        SplittableRandom rnd = new SplittableRandom(42);
        switch (pattern) {
            case "sequential" -> {
                long[] o = new long[(int) (bytes / TILE)];
                for (int i = 0; i < o.length; i++) {
                    o[i] = i * TILE;
                }
                return new Accesses(o, TILE);
            }
            case "random" -> {
                // as many 4 KiB accesses as there are 4 KiB pages in one eighth of the data set
                long pages = bytes / PAGE_BYTES;
                long[] o = new long[(int) (pages / 8)];
                for (int i = 0; i < o.length; i++) {
                    o[i] = rnd.nextLong(pages) * PAGE_BYTES;
                }
                return new Accesses(o, PAGE_BYTES);
            }
            case "hot_cold" -> {
                long tiles = bytes / TILE;
                long hot = Math.max(1, tiles / 5);
                long[] o = new long[(int) (2 * tiles)];
                for (int i = 0; i < o.length; i++) {
                    long t = rnd.nextInt(10) < 8 ? rnd.nextLong(hot) : hot + rnd.nextLong(Math.max(1, tiles - hot));
                    o[i] = Math.min(t, tiles - 1) * TILE;
                }
                return new Accesses(o, TILE);
            }
            default -> throw new IllegalArgumentException(pattern);
        }
    }

    private static long expectedSum(Accesses a) {
        long s = 0;
        for (long off : a.offsets) {
            for (long i = off / 8; i < (off + a.size) / 8; i++) {
                s += value(i);
            }
        }
        return s;
    }

    /** Sums the longs of argument 0 into {@code sum}. */
    private static EmulatedKernel sumKernel(AtomicLong sum) {
        return (args, item) -> sum.addAndGet(sumLongs(args.arg(0), 0, args.arg(0).length()));
    }

    /** Longs a kernel's compute thread stages at once (32 KiB: they stay in its core's cache while summed). */
    private static final int STAGED_LONGS = 4096;
    private static final ThreadLocal<long[]> STAGING = ThreadLocal.withInitial(() -> new long[STAGED_LONGS]);

    /**
     * The sum of the longs of bytes [from, from + size) of {@code b} ({@code size} a multiple of 8),
     * every kernel's one loop: staged 32 KiB at a time into the compute thread's own array
     * ({@link DeviceBuffer#copyTo}, one translation a page, as an OpenCL kernel translates once a
     * page) and summed there. Read a long
     * at a time through the buffer, the same loop ran at one speed or another by JVM and by how long
     * it had run (the explicit program 5.0 GB/s after 1.5 s of warm-up, 3.8 once its JIT was quiet):
     * the modes' ratio measured the JIT's choices for the kernel, not the memory's.
     */
    static long sumLongs(DeviceBuffer b, long from, long size) {
        long[] staged = STAGING.get();
        MemorySegment into = MemorySegment.ofArray(staged);
        long s = 0;
        for (long o = from; o < from + size; o += 8L * STAGED_LONGS) {
            int n = (int) Math.min(STAGED_LONGS, (from + size - o) / 8);
            b.copyTo(o, into, 0, 8L * n);
            for (int i = 0; i < n; i++) {
                s += staged[i];
            }
        }
        return s;
    }

    /** A hetmem run's row: bytes migrated both ways and evictions between the two snapshots. */
    private static Map<String, Object> measured(Case c, Accesses a, long nanos, Stats before, Stats after, boolean correct) {
        long migrated = (after.node(0).pagesMigrated() + after.node(1).pagesMigrated()
                - before.node(0).pagesMigrated() - before.node(1).pagesMigrated()) * PAGE_BYTES;
        long evictions = after.node(1).evictions() - before.node(1).evictions();
        return row(c, a, nanos, migrated, evictions, correct);
    }

    /** Item k sums the longs of piece k (bytes [offsets[k], offsets[k] + size) of argument 0) into {@code sum}. */
    private static EmulatedKernel pieceSumKernel(AtomicLong sum, Accesses a) {
        return (args, item) -> sum.addAndGet(sumLongs(args.arg(0), a.offsets[(int) item], a.size));
    }

    private static Map<String, Object> runCase(Case c, long capacity) {
        long bytes = (long) (c.factor * capacity) / TILE * TILE;
        Accesses a = accesses(c.pattern, bytes);
        long expected = expectedSum(a);
        boolean thrashControl = !c.mode.endsWith("_no_thrash_control");
        AtomicLong sum = new AtomicLong();
        long nanos;
        long migrated;
        long evictions;
        EmulatedDevice dev = EmulatedDevice.builder().capacity(capacity).computeThreads(1).populate(true).build();
        // one copy thread, like the explicit program: the other core computes
        try (UnifiedMemory mem = UnifiedMemory.builder().device(dev).thrashControl(thrashControl).copyThreads(1).build()) {
            EmulatedKernel kernel = sumKernel(sum);
            if (c.mode.equals("explicit")) {
                nanos = explicit(mem, dev, a, bytes, kernel);
            } else {
                Region data = mem.allocate(bytes);
                try (HostView v = data.host(0, bytes, Access.WRITE)) {
                    for (long i = 0; i < bytes / 8; i++) {
                        v.segment().setAtIndex(ValueLayout.JAVA_LONG, i, value(i));
                    }
                }
                Stats before = mem.stats();
                long t0 = System.nanoTime();
                if (c.mode.startsWith("one_launch")) {
                    KernelArg arg = KernelArg.read(data);
                    if (c.mode.equals("one_launch_windows")) {
                        arg = arg.perItem(a.size);   // sequential: item k reads piece k, bytes [k * size, (k + 1) * size)
                    }
                    mem.launch(1, pieceSumKernel(sum, a), a.offsets.length, arg);
                    return measured(c, a, System.nanoTime() - t0, before, mem.stats(), sum.get() == expected);
                }
                // prefetch mode keeps the next PREFETCH_AHEAD pieces on their way while a piece is computed
                java.util.ArrayDeque<CompletableFuture<Long>> ahead = new java.util.ArrayDeque<>();
                int issued = 0;
                for (int k = 0; k < a.offsets.length; k++) {
                    if (c.mode.equals("prefetch")) {
                        while (issued < a.offsets.length && issued <= k + PREFETCH_AHEAD) {
                            ahead.add(mem.prefetchAsync(data, a.offsets[issued], a.size, 1));
                            issued++;
                        }
                        ahead.poll().join();   // piece k is on the device (or its prefetch failed: say so)
                    }
                    mem.launch(1, kernel, 1, KernelArg.of(data, a.offsets[k], a.size, Access.READ));
                }
                for (CompletableFuture<Long> f : ahead) {
                    f.join();
                }
                return measured(c, a, System.nanoTime() - t0, before, mem.stats(), sum.get() == expected);
            }
            // the explicit program moves its data by hand: every piece copied in once
            migrated = a.offsets.length * a.size;
            evictions = mem.stats().node(1).evictions();
        }
        return row(c, a, nanos, migrated, evictions, sum.get() == expected);
    }

    /**
     * What a framework user writes today: the data in plain host memory, two device buffers, each
     * piece copied in by hand while the kernel runs on the previous one.
     */
    private static long explicit(UnifiedMemory mem, EmulatedDevice dev, Accesses a, long bytes, EmulatedKernel kernel) {
        try (Arena arena = Arena.ofShared(); ExecutorService copier = Executors.newSingleThreadExecutor()) {
            MemorySegment host = arena.allocate(bytes, PAGE_BYTES);
            for (long i = 0; i < bytes / 8; i++) {
                host.setAtIndex(ValueLayout.JAVA_LONG, i, value(i));
            }
            Region[] buffers = {mem.allocate(a.size), mem.allocate(a.size)};
            for (Region b : buffers) {
                b.advise(0, a.size, Advice.prefetch(dev.node()));
            }
            long pages = a.size / PAGE_BYTES;
            long t0 = System.nanoTime();
            CompletableFuture<Void> in = CompletableFuture.runAsync(
                    () -> dev.write(buffers[0], 0, pages, host.asSlice(a.offsets[0], a.size)), copier);
            for (int k = 0; k < a.offsets.length; k++) {
                in.join();
                Region current = buffers[k & 1];
                if (k + 1 < a.offsets.length) {
                    Region nextBuf = buffers[(k + 1) & 1];
                    long off = a.offsets[k + 1];
                    in = CompletableFuture.runAsync(() -> dev.write(nextBuf, 0, pages, host.asSlice(off, a.size)), copier);
                }
                mem.launch(1, kernel, 1, KernelArg.read(current));
            }
            in.join();
            return System.nanoTime() - t0;
        }
    }

    private static Map<String, Object> row(Case c, Accesses a, long nanos, long migrated, long evictions, boolean correct) {
        return row(c, Math.round(a.offsets.length * a.size / (double) nanos * 1000) / 1000.0, nanos, migrated, evictions,
                correct);
    }

    /** A run's row, as this JVM measured it or as a case's own JVM answered. */
    private static Map<String, Object> row(Case c, double gbps, long nanos, long migrated, long evictions, boolean correct) {
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("ws_factor", c.factor);
        r.put("pattern", c.pattern);
        r.put("mode", c.mode);
        r.put("gbps", gbps);
        r.put("nanos", nanos);
        r.put("migrated_bytes", migrated);
        r.put("evictions", evictions);
        r.put("correct", correct);
        return r;
    }
}
