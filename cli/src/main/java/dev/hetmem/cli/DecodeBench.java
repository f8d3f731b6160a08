package dev.hetmem.cli;

import dev.hetmem.Access;
import dev.hetmem.Advice;
import dev.hetmem.HostView;
import dev.hetmem.KernelArg;
import dev.hetmem.Region;
import dev.hetmem.Stats;
import dev.hetmem.UnifiedMemory;
import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.device.opencl.OpenClDevice;
import dev.hetmem.device.opencl.OpenClPlatforms;
import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.io.SafeTensors;
import dev.hetmem.io.Tensor;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;

/**
 * {@code hetmem bench decode}: the workload users bring. A model of {@value #LAYERS} square weight
 * matrices in a {@code .safetensors} file the bench writes (F32 or BF16), loaded with hetmem's
 * loader; every generated token runs one GEMV per layer (y = W x, x read whole, W and y by rows) on a
 * device whose memory holds a fraction of the weights. Modes:
 * <ul>
 *   <li>{@code one_launch}: one launch per layer, W and y declared per row ({@code KernelArg.perItem}),
 *       so a layer larger than the device runs tiled, the next tile prefetched; the weights are
 *       advised read-mostly, so evicting a device copy drops it instead of copying it home. On
 *       OpenCL the kernel is the explicit program's own (built with -DHM_PLAIN) and takes the
 *       regions as plain arguments;</li>
 *   <li>{@code prefetch}: the same, with the next layer prefetched asynchronously while a layer
 *       runs (the memory lets the running layer's launch bring its weights in first), and a run's
 *       first layer before it starts (on the calling thread where the kernel reads it through the
 *       page table: nothing runs beside it): the whole of it where it fits beside the
 *       running one and the activations (on OpenCL placed as the launch takes it,
 *       {@code prefetchPlainAsync}, so that the launch finds it in place; an ordinary prefetch's
 *       pages land wherever frames are free and such a launch moved them again), else its start (an
 *       eighth of the device, what fits beside the running layer's tiles);</li>
 *   <li>{@code explicit}: what a user writes today: the weights in plain host memory, chunks of rows
 *       copied into two device buffers by hand, double-buffered (on OpenCL plain buffers, no hetmem
 *       pages at all), one pipeline over every chunk of every layer and token, so that the next
 *       layer's first chunk is uploaded while this layer's last computes (until this round each
 *       layer began with an upload nothing overlapped, a weaker program than a careful user writes).
 *       It streams every token's weights even where they would fit the device (factors below 1),
 *       where a user would keep them there: {@code of_explicit} compares different work there.</li>
 * </ul>
 * Every row checks the last token's output against a CPU computation ({@code correct}). The
 * memory has its default copy threads (one per core, at most the builder's limit), as a user's has:
 * a launch's bring-in, which the launching thread waits for, spreads over them, while an
 * asynchronous prefetch copies on its own thread beside the kernel it overlaps. On the emulated
 * device the GEMV stages each work item's row of W, and x once a thread and launch, in private
 * memory ({@code DecodeKernels}): summed through one translation an access, the kernel ran at one of
 * two speeds, 1.5x apart, by JVM (see below). Each mode
 * runs in a JVM of its own ({@link CaseJvm} says why: the emulated device's kernels are Java code,
 * and in one JVM the JIT's profiles of that code mix every case's), a new one every round
 * ({@code --jvm-per-round}, the default): a case's speed can depend on which JVM it got (its JIT's
 * choices: with the emulated kernel reading W and x an element at a time, each case in one JVM
 * fully warmed up, runs of all three modes fell into two speed classes, 22-25 and 33-38 tokens/s,
 * by JVM: C2 compiled the kernel's loop in one of two ways, the slow one spilling its translation
 * state to the stack every element), so a row needs several.
 * {@code --jvm-per-case} keeps one JVM per case for all its rounds (faster, and one JVM's luck);
 * {@code --same-jvm} runs every case in this one (the modes then share one JIT's luck), the
 * default with {@code --quick}, which has a minute. Every JVM warms each case up before its runs
 * ({@link CaseJvm#warmUp}): at least {@code --warmup} runs (default 3) of {@link #WARM_TOKENS}
 * tokens or more, at least {@link CaseJvm#WARM_UP_NANOS}, and on until the JVM's JIT is quiet, no
 * longer than {@link CaseJvm#MAX_WARM_UP_NANOS} ({@link CaseJvm#QUICK_MAX_WARM_UP_NANOS} with
 * {@code --quick}) once the {@code --warmup} runs are done; rows say how long it took
 * ({@code warmup_s}, the longest of the case's JVMs) and whether the JIT was seen quiet in every
 * one ({@code jit_quiet}). Why so long: C2 compiles the engine's per-launch paths only after
 * hundreds of launches, 9-25 s into a JVM's life on these two busy cores, while the explicit
 * program, a shorter path, is compiled in a few seconds; with 1.5 s of warm-up, OpenCL, factor 2,
 * F32, one launch read 0.66-1.00 of the explicit program (median 0.79, eight runs) and prefetch
 * 0.58-0.74, with 12 s 1.01-1.02 and 0.93-0.95, the explicit program's speed the same. The modes
 * then run back to back in rounds; each round takes {@code --runs-per-round} runs of every mode
 * (default 3), interleaved in serpentine order (one launch, prefetch, explicit, explicit, prefetch, one launch, ...): this
 * machine slows down for seconds at a time, for every JVM at once (three modes served alternately,
 * emulated, factor 2, BF16: all three ran 0.69-0.91 s per 4 tokens for six runs in a row, then
 * 0.53-0.79 s), so runs taken side by side pair far better than runs a JVM start and a warm-up
 * apart. Each row is the median run with the spread ({@code tokens_per_s_min}, {@code _max}), and
 * {@code of_explicit} is the median of each run's ratio to the explicit program's run beside it
 * (with {@code of_explicit_min}, {@code _max}).
 */
final class DecodeBench {
    private static final long MiB = 1L << 20;
    static final int LAYERS = 4;

    private DecodeBench() {}

    private record Case(String device, double factor, String dtype, String mode) {
        /** A case from its {@link #key}, {@code device/factor/dtype/mode}. */
        static Case parse(String key) {
            String[] p = key.split("/", -1);
            if (p.length != 4 || !List.of("emulated", "opencl").contains(p[0]) || !List.of("F32", "BF16").contains(p[2])
                    || !MODES.contains(p[3])) {
                throw new Args.UsageException("--" + SERVE_OPTION + " " + key + ": expected device/factor/dtype/mode");
            }
            double factor = CaseJvm.factor(SERVE_OPTION, key, p[1]);
            return new Case(p[0], factor, p[2], p[3]);
        }

        String key() {
            return device + "/" + factor + "/" + dtype + "/" + mode;
        }

        String name() {
            return device + " factor " + factor + " " + dtype + " " + mode;
        }
    }

    private static final List<String> MODES = List.of("one_launch", "prefetch", "explicit");
    /** The internal options that make this JVM serve one case for its parent (see CaseJvm): the case, its model file. */
    private static final String SERVE_OPTION = "serve-case";
    private static final String MODEL_OPTION = "serve-model";

    /**
     * Tokens a warm-up run computes at the least ({@link CaseRunner#warm}: the run's tokens over and
     * over): a run of 2 tokens spends about as long setting up (a new device, the model loaded) as
     * it computes, and the engine's per-launch paths are compiled after so many launches.
     */
    static final long WARM_TOKENS = 16;

    /** The model a case runs: its file, its size, and the reference output of the last token. */
    record Model(Path file, int n, String dtype, long weightBytes) {
        int elementBytes() {
            return dtype.equals("F32") ? 4 : 2;
        }

        long rowBytes() {
            return (long) n * elementBytes();
        }
    }

    static int run(List<String> argv, PrintStream out, PrintStream err) {
        Args args = new Args(argv, CaseJvm.withJvmPolicies("json", "quick"), CaseJvm.withInternal(Set.of("capacity", "tokens", "device",
                "reps", "warmup", "runs-per-round", "plot", "factors", "dtypes"), SERVE_OPTION, MODEL_OPTION));
        String plot = Chart.plotOption(args);
        boolean quick = args.flag("quick");
        long capacity = args.longValue("capacity", quick ? 32 * MiB : 64 * MiB);
        if (capacity < 16 * MiB || capacity % (2 * MiB) != 0 || capacity > (4L << 30)) {
            throw new Args.UsageException("--capacity " + Sizes.shown(capacity) + " must be a multiple of 2M in [16M, 4G]");
        }
        long tokens = args.countValue("tokens", quick ? 2 : 4, 1, 1000);
        long reps = args.countValue("reps", 3, 1, 50);
        int warmup = args.intValue("warmup", 3, 0, 20);
        int runsPerRound = args.intValue("runs-per-round", 3, 1, 20);
        if (args.value(SERVE_OPTION, null) != null) {
            String model = args.value(MODEL_OPTION, null);
            if (model == null) {
                throw new Args.UsageException("--" + SERVE_OPTION + " needs --" + MODEL_OPTION);
            }
            return serve(Case.parse(args.value(SERVE_OPTION, null)), Path.of(model), capacity, tokens, out);
        }
        // a new JVM per case every round, each warmed up until its JIT is quiet (15 s and more on these two
        // cores): too long for a minute, so --quick runs every case in this JVM unless told otherwise
        String policy = CaseJvm.jvmPolicy(args, quick ? "--same-jvm" : "--jvm-per-round");
        boolean sameJvm = policy.equals("--same-jvm");
        boolean jvmPerRound = policy.equals("--jvm-per-round");
        CaseJvm.WarmUpLimits warmUpLimits = quick ? CaseJvm.WarmUpLimits.QUICK : CaseJvm.WarmUpLimits.BENCH;
        double[] factors = factors(args.value("factors", null), quick ? new double[] {2} : new double[] {0.5, 2, 3});
        // the model is written to a temporary file, read into host memory by the explicit program and loaded
        // by the others (up to 16 times the device): refused up front what this machine cannot hold
        long physical = HostMemory.physicalBytes();
        for (double f : factors) {
            if (f * capacity > physical / 4) {
                throw new Args.UsageException("--factors " + f + " with --capacity " + Sizes.shown(capacity) + ": a model of "
                        + (long) (f * capacity) + " bytes is more than a quarter of this machine's " + physical + " bytes");
            }
        }
        List<String> dtypes = dtypes(args.value("dtypes", null), quick ? List.of("F32") : List.of("F32", "BF16"));
        // after every option is checked: a usage error is one whatever this machine has
        String which = args.value("device", "all");
        List<String> devices = new ArrayList<>();
        if (which.equals("emulated") || which.equals("all")) {
            devices.add("emulated");
        }
        if (which.equals("opencl") || which.equals("all")) {
            String why = OpenClPlatforms.unavailableReason();
            if (why == null) {
                devices.add("opencl");
            } else if (which.equals("opencl")) {
                throw new IllegalStateException("no OpenCL device: " + why);
            } else {
                err.println("OpenCL rows left out: " + why);
            }
        }
        if (devices.isEmpty()) {
            throw new Args.UsageException("--device " + which + " must be emulated, opencl or all");
        }
        List<String> modes = MODES;
        CopyLimits limits = CopyLimits.measure(128 * MiB, true);
        List<Map<String, Object>> rows = new ArrayList<>();
        Path dir;
        try {
            dir = Files.createTempDirectory("hetmem-decode");
            // on Ctrl-C or kill, where the finally below does not run: the JDK's delete-on-exit hook
            // deletes in the reverse order of these calls, the model files before their folder
            dir.toFile().deleteOnExit();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot make a folder for the model file", e);
        }
        try {
            for (double f : factors) {
                for (String dtype : dtypes) {
                    Model model = writeModel(dir, capacity, f, dtype);
                    float[] reference = reference(model, tokens);
                    for (String device : devices) {
                        // rounds over the modes, so that a noisy second of this shared machine hits them alike
                        List<List<Map<String, Object>>> runs = new ArrayList<>();
                        for (int i = 0; i < modes.size(); i++) {
                            runs.add(new ArrayList<>());
                        }
                        // warm-up runs first, not counted (the JIT compiles the engine's paths meanwhile), in
                        // every JVM as it starts; a wrong result there still makes the row wrong
                        CaseJvm.WarmUps[] warmUps = new CaseJvm.WarmUps[modes.size()];
                        java.util.Arrays.setAll(warmUps, i -> new CaseJvm.WarmUps());
                        // each mode in a JVM of its own (CaseJvm says why) unless --same-jvm, new ones
                        // every round (each warmed up first) unless --jvm-per-case: a case's speed depends
                        // on which JVM it got (its JIT's choices), and one JVM's luck would otherwise stand
                        // for every round of the row
                        List<CaseRunner> runners = new ArrayList<>();
                        try {
                            for (long round = 0; round < reps; round++) {
                                if (runners.isEmpty() || jvmPerRound) {
                                    closeAll(runners);
                                    for (String mode : modes) {
                                        Case c = new Case(device, f, dtype, mode);
                                        runners.add(sameJvm ? inThisJvm(c, model, capacity, tokens, reference)
                                                : inItsOwnJvm(c, model, capacity, tokens));
                                    }
                                    for (int i = 0; i < modes.size(); i++) {
                                        warmUps[i].add(CaseJvm.warmUp(runners.get(i), warmup, Long.MAX_VALUE, warmUpLimits));
                                    }
                                }
                                // several measured runs of each mode, interleaved, in serpentine order (A B C C B A
                                // ...): this machine's slow spells last seconds and hit every JVM running then, so
                                // runs taken side by side pair far better than one run each per round
                                for (int k = 0; k < runsPerRound; k++) {
                                    for (int j = 0; j < modes.size(); j++) {
                                        int i = k % 2 == 0 ? j : modes.size() - 1 - j;
                                        runs.get(i).add(runners.get(i).run());
                                    }
                                }
                            }
                        } finally {
                            closeAll(runners);
                        }
                        List<Map<String, Object>> explicitRuns = runs.get(modes.indexOf("explicit"));
                        for (int i = 0; i < modes.size(); i++) {
                            Map<String, Object> row = MedianRow.of(runs.get(i), "tokens_per_s");
                            warmUps[i].putInto(row);
                            MedianRow.putPairedRatio(row, "of_explicit", runs.get(i), explicitRuns);
                            rows.add(row);
                            err.printf("%-8s factor %.1f %-4s %-10s %8.2f tokens/s (%.2f-%.2f) %7.2f GB/s  of explicit %.3f (%.3f-%.3f)"
                                            + "  migrated %s  evictions %d  %s  %s%n",
                                    device, f, dtype, modes.get(i), (Double) row.get("tokens_per_s"),
                                    (Double) row.get("tokens_per_s_min"), (Double) row.get("tokens_per_s_max"), (Double) row.get("gbps"),
                                    (Double) row.get("of_explicit"), (Double) row.get("of_explicit_min"),
                                    (Double) row.get("of_explicit_max"), ProgressBar.human((Long) row.get("migrated_bytes")),
                                    (Long) row.get("evictions"), (Boolean) row.get("correct") ? "correct" : "WRONG",
                                    warmUps[i].text());
                        }
                    }
                    Files.deleteIfExists(model.file());
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("the model file: " + e.getMessage(), e);
        } finally {
            // the folder and whatever model file a failure left in it (up to gigabytes: a factor times the device)
            try (var left = Files.list(dir)) {
                for (Path p : left.toList()) {
                    Files.deleteIfExists(p);
                }
                Files.deleteIfExists(dir);
            } catch (IOException | UncheckedIOException ignored) {
                // a leftover in the temporary directory, not the news: the run's own failure (if any) is
            }
        }
        Map<String, Object> root = new LinkedHashMap<>();
        root.put("bench", "decode");
        root.put("limits", limits.json());
        root.put("device_capacity_bytes", capacity);
        root.put("layers", LAYERS);
        root.put("tokens", tokens);
        root.put("jvm", policy.substring(2));   // jvm-per-round, jvm-per-case or same-jvm
        root.put("warmup_max_s", warmUpLimits.maxNanos() / 1e9);
        root.put("rows", rows);
        BenchPlots.write(plot, root, err);
        if (args.flag("json")) {
            out.println(Json.write(root));
        } else {
            out.printf("%s; devices of %s; %d layers, %d tokens per row; %s, warm-ups until the JIT is quiet, at most %.0f s%n",
                    limits.text(), ProgressBar.human(capacity), LAYERS, tokens, policy.substring(2), warmUpLimits.maxNanos() / 1e9);
            out.printf("%-8s %6s %-5s %-10s %10s %8s %11s %12s %9s %7s%n", "device", "factor", "dtype", "mode", "tokens/s", "GB/s",
                    "of explicit", "migrated", "evictions", "correct");
            for (Map<String, Object> r : rows) {
                out.printf("%-8s %6.1f %-5s %-10s %10.2f %8.2f %11.3f %12s %9d %7s%n", r.get("device"),
                        (Double) r.get("weights_factor"), r.get("dtype"), r.get("mode"), (Double) r.get("tokens_per_s"),
                        (Double) r.get("gbps"), (Double) r.get("of_explicit"), ProgressBar.human((Long) r.get("migrated_bytes")),
                        (Long) r.get("evictions"), r.get("correct"));
            }
            long notQuiet = rows.stream().filter(r -> !(Boolean) r.get("jit_quiet")).count();
            if (notQuiet > 0) {
                out.printf("%d of %d rows were measured before the JIT was seen quiet (the warm-up's limit reached, or no "
                        + "warm-up): they understate the modes whose paths are compiled last%n", notQuiet, rows.size());
            }
        }
        return rows.stream().allMatch(r -> (Boolean) r.get("correct")) && !BenchPlots.failed(root) ? 0 : 1;
    }

    /** {@code --factors 2,3}: the weights' sizes as multiples of the device, each in (0, 16]; {@code fallback} when absent. */
    static double[] factors(String option, double[] fallback) {
        if (option == null) {
            return fallback;
        }
        String[] p = option.split(",", -1);
        double[] out = new double[p.length];
        for (int i = 0; i < p.length; i++) {
            try {
                out[i] = Args.plainDecimal(p[i]);
            } catch (NumberFormatException e) {
                throw new Args.UsageException("--factors " + option + ": '" + p[i] + "' is not a number");
            }
            if (!(out[i] > 0 && out[i] <= 16)) {
                throw new Args.UsageException("--factors " + option + ": " + p[i] + " outside (0, 16]");
            }
        }
        return out;
    }

    /** {@code --dtypes F32,BF16}: the weights' element types; {@code fallback} when absent. */
    static List<String> dtypes(String option, List<String> fallback) {
        if (option == null) {
            return fallback;
        }
        List<String> out = new ArrayList<>();
        for (String d : option.split(",", -1)) {
            String t = d.trim().toUpperCase(java.util.Locale.ROOT);
            if (!List.of("F32", "BF16").contains(t)) {
                throw new Args.UsageException("--dtypes " + option + ": '" + d + "' is neither F32 nor BF16");
            }
            if (!out.contains(t)) {
                out.add(t);
            }
        }
        return out;
    }

    /** Closes the runners (their JVMs end) and empties the list. */
    private static void closeAll(List<CaseRunner> runners) {
        try {
            for (CaseRunner r : runners) {
                r.close();
            }
        } finally {
            runners.clear();
        }
    }

    /** How many times a warm-up run computes a run's tokens ({@link #WARM_TOKENS}). */
    private static long warmRepeats(long tokens) {
        return Math.ceilDiv(WARM_TOKENS, tokens);
    }

    private static CaseRunner inThisJvm(Case c, Model m, long capacity, long tokens, float[] reference) {
        return CaseRunner.inThisJvm(() -> runCase(c, m, capacity, tokens, 1, reference),
                () -> runCase(c, m, capacity, tokens, warmRepeats(tokens), reference));
    }

    private static CaseRunner inItsOwnJvm(Case c, Model m, long capacity, long tokens) {
        CaseJvm jvm = CaseJvm.start(c.name(), List.of("bench", "decode", "--" + SERVE_OPTION, c.key(), "--" + MODEL_OPTION,
                m.file().toString(), "--capacity", Long.toString(capacity), "--tokens", Long.toString(tokens)));
        // a warm-up run's row counts the tokens it computed
        return jvm.runner(4, (f, warm) -> row(c, m, warm ? tokens * warmRepeats(tokens) : tokens, Long.parseLong(f[0]),
                Long.parseLong(f[1]), Long.parseLong(f[2]), Boolean.parseBoolean(f[3])));
    }

    /**
     * The child's side ({@link CaseJvm#serve}): runs {@code c} on the model in {@code file} (written
     * by the parent) once per request, answering with {@code row nanos migrated_bytes evictions correct}.
     */
    private static int serve(Case c, Path file, long capacity, long tokens, PrintStream out) {
        Model m = model(file, capacity, c.factor(), c.dtype());
        float[] reference = reference(m, tokens);
        return CaseJvm.serve(out, warm -> {
            Map<String, Object> r = runCase(c, m, capacity, tokens, warm ? warmRepeats(tokens) : 1, reference);
            return r.get("nanos") + " " + r.get("migrated_bytes") + " " + r.get("evictions") + " " + r.get("correct");
        });
    }

    // ---- the model ------------------------------------------------------------------------------

    /** Weight (l, i, j): deterministic, in [-1, 1) / sqrt(n), so activations keep their scale. */
    private static float weight(int l, long i, long j, int n) {
        long x = (l * 0x9E3779B97F4A7C15L) ^ (i * 0xBF58476D1CE4E5B9L) ^ (j * 0x94D049BB133111EBL);
        x ^= x >>> 31;
        x *= 0xD6E8FEB86659FD93L;
        x ^= x >>> 32;
        return (float) (((x & 0xFFFF) / 32768.0 - 1.0) / Math.sqrt(n) * 1.7);
    }

    /** The first input of token t. */
    static float input(long t, int j) {
        return (float) Math.cos(0.37 * t + 0.011 * j);
    }

    /** A BF16 value's float (the upper half of the float's bits). */
    static float bf16(short bits) {
        return Float.intBitsToFloat((bits & 0xFFFF) << 16);
    }

    /** The weight as stored: F32 as is, BF16 truncated (round to nearest even). */
    private static float stored(float w, String dtype) {
        if (dtype.equals("F32")) {
            return w;
        }
        return bf16(toBf16(w));
    }

    private static short toBf16(float w) {
        int b = Float.floatToRawIntBits(w);
        return (short) ((b + 0x7FFF + ((b >>> 16) & 1)) >>> 16);
    }

    /** Writes the model: LAYERS n x n matrices adding up to about {@code factor} times the device. */
    private static Model writeModel(Path dir, long capacity, double factor, String dtype) throws IOException {
        Model m = model(dir.resolve("model-" + dtype + "-" + factor + ".safetensors"), capacity, factor, dtype);
        m.file().toFile().deleteOnExit();   // up to a quarter of the machine's memory on disk
        int size = m.elementBytes();
        int n = m.n();
        long layerBytes = (long) n * n * size;
        StringBuilder header = new StringBuilder("{\"__metadata__\":{\"format\":\"hetmem decode bench\"}");
        for (int l = 0; l < LAYERS; l++) {
            header.append(",\"layer.").append(l).append(".weight\":{\"dtype\":\"").append(dtype).append("\",\"shape\":[")
                    .append(n).append(',').append(n).append("],\"data_offsets\":[").append(l * layerBytes).append(',')
                    .append((l + 1) * layerBytes).append("]}");
        }
        header.append('}');
        byte[] h = header.toString().getBytes(StandardCharsets.UTF_8);
        // the data starts on a page, as careful writers align it: tensors can then be passed to kernels as
        // plain arguments (an OpenCL sub-buffer starts at the device's base alignment)
        int pad = (int) ((4096 - (8 + h.length) % 4096) % 4096);
        Path file = m.file();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
                StandardOpenOption.WRITE)) {
            ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(h.length + pad).flip();
            ch.write(len);
            ByteBuffer hb = ByteBuffer.allocate(h.length + pad);
            hb.put(h);
            while (hb.hasRemaining()) {
                hb.put((byte) ' ');
            }
            ch.write(hb.flip());
            ByteBuffer row = ByteBuffer.allocate((int) ((long) n * size)).order(ByteOrder.LITTLE_ENDIAN);
            for (int l = 0; l < LAYERS; l++) {
                for (int i = 0; i < n; i++) {
                    row.clear();
                    for (int j = 0; j < n; j++) {
                        float w = weight(l, i, j, n);
                        if (size == 4) {
                            row.putFloat(w);
                        } else {
                            row.putShort(toBf16(w));
                        }
                    }
                    ch.write(row.flip());
                }
            }
        }
        return m;
    }

    /** The model of {@code factor} times a device of {@code capacity} in {@code dtype}: its shape, in {@code file}. */
    private static Model model(Path file, long capacity, double factor, String dtype) {
        int size = dtype.equals("F32") ? 4 : 2;
        double perLayer = factor * capacity / LAYERS;
        int n = (int) Math.max(64, (long) Math.sqrt(perLayer / size) / 64 * 64);
        return new Model(file, n, dtype, LAYERS * (long) n * n * size);
    }

    /** The last token's output, computed on the CPU in double from the stored weights. */
    private static float[] reference(Model m, long tokens) {
        int n = m.n();
        double[] x = new double[n];
        for (int j = 0; j < n; j++) {
            x[j] = input(tokens - 1, j);
        }
        for (int l = 0; l < LAYERS; l++) {
            double[] y = new double[n];
            for (int i = 0; i < n; i++) {
                double acc = 0;
                for (int j = 0; j < n; j++) {
                    acc += stored(weight(l, i, j, n), m.dtype()) * (double) (float) x[j];
                }
                y[i] = (float) acc;
            }
            x = y;
        }
        float[] out = new float[n];
        for (int i = 0; i < n; i++) {
            out[i] = (float) x[i];
        }
        return out;
    }

    private static boolean close(float[] got, float[] want) {
        double scale = 0;
        for (float w : want) {
            scale = Math.max(scale, Math.abs(w));
        }
        for (int i = 0; i < want.length; i++) {
            if (!(Math.abs(got[i] - want[i]) <= 1e-3 * scale + 1e-6)) {
                return false;
            }
        }
        return true;
    }

    // ---- one case ---------------------------------------------------------------------------------

    private static DeviceDriver device(String kind, long capacity) {
        // both backed before the timed runs, as a GPU's memory is (the explicit program's buffers too: OpenClStaging)
        return kind.equals("opencl") ? OpenClDevice.builder().capacity(capacity).populate(true).build()
                : EmulatedDevice.builder().capacity(capacity).populate(true).build();
    }

    /**
     * One run of a case: its {@code tokens} tokens computed {@code repeats} times over (the last
     * token's output checked against {@code reference}, the last of {@code tokens}), on a new device.
     */
    private static Map<String, Object> runCase(Case c, Model m, long capacity, long tokens, long repeats, float[] reference) {
        DeviceDriver dev = device(c.device(), capacity);
        long computed = tokens * repeats;
        try (UnifiedMemory mem = UnifiedMemory.builder().device(dev).build()) {
            DecodeKernels.Kernels k = new DecodeKernels.Kernels(dev, m);
            float[] result;
            long nanos;
            long migrated;
            long evictions;
            if (c.mode().equals("explicit")) {
                long[] t = new long[1];
                result = explicit(mem, dev, k, m, capacity, tokens, computed, t);
                nanos = t[0];
                migrated = computed * m.weightBytes();
                evictions = 0;
            } else {
                SafeTensors st = SafeTensors.load(mem, m.file(), 0);
                // weights are only read: read duplication keeps the host's copy, so a device copy that
                // is evicted is dropped, not copied back (what a user of hetmem advises for weights)
                st.region().advise(0, st.region().size(), Advice.readMostly(true));
                Region x0 = mem.allocate((long) m.n() * 4);
                Region x1 = mem.allocate((long) m.n() * 4);
                Stats before = mem.stats();
                long t0 = System.nanoTime();
                result = null;
                boolean prefetching = c.mode().equals("prefetch");
                // the prefetch mode advises every layer ahead of its launch, the first token's first one
                // too (left to its launch, it was placed while the second one's prefetch placed that
                // one, and each took frames the other then moved again), and across token boundaries
                CompletableFuture<Long> ahead = prefetching ? prefetchFirst(mem, k, st.region(), st.tensor("layer.0.weight"),
                        capacity, m) : null;
                for (long t = 0; t < computed; t++) {
                    writeInput(x0, m.n(), t % tokens);
                    Region[] xs = {x0, x1};
                    for (int l = 0; l < LAYERS; l++) {
                        Tensor w = st.tensor("layer." + l + ".weight");
                        if (prefetching) {
                            ahead.join();
                            // the next layer, the next token's first after the last: none after the run's last
                            boolean lastOfRun = t == computed - 1 && l == LAYERS - 1;
                            Tensor next = st.tensor("layer." + ((l + 1) % LAYERS) + ".weight");
                            ahead = lastOfRun ? null : prefetchNext(mem, k, st.region(), next, w, capacity, m);
                        }
                        KernelArg wa = KernelArg.of(st.region(), w.offset(), w.length(), Access.READ).perItem(m.rowBytes());
                        mem.launch(1, k.regionKernel(0), m.n(), wa, KernelArg.read(xs[l & 1]),
                                KernelArg.write(xs[(l + 1) & 1]).perItem(4));
                    }
                    result = readOutput(xs[LAYERS & 1], m.n());
                }
                nanos = System.nanoTime() - t0;
                Stats after = mem.stats();
                migrated = (after.node(0).pagesMigrated() + after.node(1).pagesMigrated()
                        - before.node(0).pagesMigrated() - before.node(1).pagesMigrated()) * PAGE_BYTES;
                evictions = after.node(1).evictions() - before.node(1).evictions();
            }
            return row(c, m, computed, nanos, migrated, evictions, close(result, reference));
        } catch (IOException e) {
            throw new UncheckedIOException("the model file: " + e.getMessage(), e);
        }
    }

    /**
     * The prefetch mode's advice for a run's first layer, which nothing runs beside and the run
     * waits for at once: where the kernel takes it through the page table, on the calling thread,
     * its copies spread over the memory's copy threads as a launch's bring-in is (asynchronously,
     * on one thread of its own, the emulated device's first layer of a model three times the device
     * took 4.1-5.0 ms against 2.4 ms for the same 48 MiB brought in by its launch); a plain
     * argument's placement ({@link #prefetchNext}) has no such call, and is waited for as it is.
     */
    private static CompletableFuture<Long> prefetchFirst(UnifiedMemory mem, DecodeKernels.Kernels k, Region weights,
                                                         Tensor first, long capacity, Model m) {
        if (k.takesPlainArguments()) {
            return prefetchNext(mem, k, weights, first, null, capacity, m);
        }
        long bytes = prefetchBytes(first, null, capacity, m);
        return CompletableFuture.completedFuture(mem.prefetch(weights, new long[] {first.offset()}, bytes, 1));
    }

    /**
     * The prefetch mode's advice for the next layer, while this one ({@code running}; null before the
     * first) runs: {@link #prefetchBytes} of it, placed as the launch will take it where that is the
     * whole layer and the kernel takes it as a plain argument (in consecutive frames, on OpenCL, so
     * that the launch finds it in place). Asked for before the running layer's launch, it starts
     * once that launch has its weights where the launching thread gets to its bring-in first
     * ({@code UnifiedMemory.prefetchAsync}), as it usually does.
     */
    private static CompletableFuture<Long> prefetchNext(UnifiedMemory mem, DecodeKernels.Kernels k, Region weights,
                                                        Tensor next, Tensor running, long capacity, Model m) {
        long bytes = prefetchBytes(next, running, capacity, m);
        if (bytes < next.length()) {
            return mem.prefetchAsync(weights, next.offset(), bytes, 1);
        }
        long pages = Math.ceilDiv(next.offset() + next.length(), PAGE_BYTES) - next.offset() / PAGE_BYTES;
        // placed as a plain argument where one pointer spans it (an OpenCL device of several pools spans one)
        return k.takesPlainArguments() && pages <= k.contiguousFrames()
                ? mem.prefetchPlainAsync(weights, next.offset(), next.length(), 1)
                : mem.prefetchAsync(weights, next.offset(), next.length(), 1);
    }

    /**
     * How much of {@code next} the prefetch mode advises while {@code running} (null: none) runs:
     * the whole of it where it fits the device beside that layer and the activations, otherwise its
     * start, an eighth of the device (as much as fits beside two tiles of a layer the device cannot
     * hold; the rest comes with its launch).
     */
    private static long prefetchBytes(Tensor next, Tensor running, long capacity, Model m) {
        long activations = 2 * Math.ceilDiv((long) m.n() * 4, PAGE_BYTES) * PAGE_BYTES;
        long runningBytes = running == null ? 0 : Math.ceilDiv(running.length(), PAGE_BYTES) * PAGE_BYTES;
        long besideRunning = capacity - runningBytes - activations;
        return Math.ceilDiv(next.length(), PAGE_BYTES) * PAGE_BYTES > besideRunning
                ? Math.min(next.length(), capacity / 8) : next.length();
    }

    /** One run of a case as a row: tokens per second and GB/s of weights from the time {@code tokens} tokens took. */
    private static Map<String, Object> row(Case c, Model m, long tokens, long nanos, long migrated, long evictions,
                                           boolean correct) {
        Map<String, Object> row = new LinkedHashMap<>();
        row.put("device", c.device());
        row.put("weights_factor", c.factor());
        row.put("dtype", c.dtype());
        row.put("mode", c.mode());
        double seconds = nanos / 1e9;
        row.put("tokens_per_s", Math.round(tokens / seconds * 1000) / 1000.0);
        row.put("nanos", nanos);
        row.put("gbps", Math.round(tokens * m.weightBytes() / seconds / 1e9 * 1000) / 1000.0);
        row.put("migrated_bytes", migrated);
        row.put("evictions", evictions);
        row.put("correct", correct);
        return row;
    }

    static void writeInput(Region x, int n, long t) {
        try (HostView v = x.host(0, (long) n * 4, Access.WRITE)) {
            for (int j = 0; j < n; j++) {
                v.segment().setAtIndex(ValueLayout.JAVA_FLOAT, j, input(t, j));
            }
        }
    }

    static float[] readOutput(Region x, int n) {
        try (HostView v = x.host(0, (long) n * 4, Access.READ)) {
            return v.segment().toArray(ValueLayout.JAVA_FLOAT);
        }
    }

    /**
     * The explicit program: weights read from the file into plain host memory once, then chunks of
     * rows copied into two device buffers by hand, each while the previous chunk computes, across
     * layer and token boundaries; {@code computed} tokens, the inputs of the first {@code tokens}
     * over and over ({@link #runCase}).
     */
    private static float[] explicit(UnifiedMemory mem, DeviceDriver dev, DecodeKernels.Kernels k, Model m, long capacity, long tokens,
                                    long computed, long[] nanos) throws IOException {
        int n = m.n();
        long dataStart;
        long layerBytes = m.weightBytes() / LAYERS;
        try (FileChannel ch = FileChannel.open(m.file(), StandardOpenOption.READ)) {
            ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            ch.read(len, 0);
            dataStart = 8 + len.flip().getLong();
        }
        long chunkRows = Math.max(1, Math.min(n, capacity / 4 / m.rowBytes()));
        long chunkBytes = chunkRows * m.rowBytes();
        try (Arena arena = Arena.ofShared(); ExecutorService copier = Executors.newSingleThreadExecutor()) {
            // a page of slack past the weights: uploads are whole pages where the device's write command
            // copies pages, read straight from here (a chunk copied into a padded buffer first would cost
            // the explicit program a copy, and fresh memory, of its own)
            MemorySegment host = arena.allocate(m.weightBytes() + PAGE_BYTES, PAGE_BYTES);
            try (FileChannel ch = FileChannel.open(m.file(), StandardOpenOption.READ)) {
                MemorySegment.copy(ch.map(FileChannel.MapMode.READ_ONLY, dataStart, m.weightBytes(), arena), 0, host, 0,
                        m.weightBytes());
            }
            DecodeKernels.Staging s = k.staging(mem, chunkBytes, (long) n * 4);
            long granule = s.uploadGranule();
            try {
                long t0 = System.nanoTime();
                float[] result = null;
                // one pipeline over every chunk of every layer of every token, as a careful hand-written
                // program runs it: the next chunk (of this layer, the next one, or the next token's first)
                // is uploaded into the other buffer while this one computes, so no layer starts with an
                // upload nothing overlaps (the weights do not depend on the activations)
                long perLayer = Math.ceilDiv(n, chunkRows);
                long chunks = computed * LAYERS * perLayer;
                CompletableFuture<Void> in = CompletableFuture.runAsync(() -> s.upload(0, host.asSlice(0,
                        roundUp(Math.min(chunkBytes, layerBytes), granule))), copier);
                for (long c = 0; c < chunks; c++) {
                    long t = c / (LAYERS * perLayer);
                    int l = (int) (c / perLayer % LAYERS);
                    long r0 = c % perLayer * chunkRows;
                    if (l == 0 && r0 == 0) {
                        s.writeInput(t % tokens, n);
                    }
                    in.join();
                    if (c + 1 < chunks) {
                        int nextLayer = (int) ((c + 1) / perLayer % LAYERS);
                        long nextRow = (c + 1) % perLayer * chunkRows;
                        long off = nextLayer * layerBytes + nextRow * m.rowBytes();
                        long bytes = Math.min(chunkRows, n - nextRow) * m.rowBytes();
                        int buf = (int) ((c + 1) & 1);
                        in = CompletableFuture.runAsync(() -> s.upload(buf, host.asSlice(off, roundUp(bytes, granule))), copier);
                    }
                    s.compute((int) (c & 1), l, Math.min(chunkRows, n - r0), r0);
                    if (r0 + chunkRows >= n) {
                        s.swap();   // the layer's output is the next one's input
                        if (l == LAYERS - 1) {
                            result = s.readOutput(n);
                        }
                    }
                }
                in.join();
                nanos[0] = System.nanoTime() - t0;
                return result;
            } finally {
                copier.close();   // an upload still in flight after a failure ends before its buffers are released
                s.close();
            }
        }
    }

    private static long roundUp(long bytes, long granule) {
        return Math.ceilDiv(bytes, granule) * granule;
    }
}
