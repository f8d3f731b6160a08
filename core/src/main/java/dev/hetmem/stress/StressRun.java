package dev.hetmem.stress;

import dev.hetmem.Access;
import dev.hetmem.HostFaultMode;
import dev.hetmem.HostView;
import dev.hetmem.NodeStats;
import dev.hetmem.Region;
import dev.hetmem.UnifiedMemory;
import dev.hetmem.driver.DeviceDriver;

import java.io.IOException;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;

/**
 * The model-based stress program: a seeded random program over the public API, run against a
 * shadow model of every byte of every region (and of every page's protection), on one memory
 * built as a {@link StressConfig} says.
 *
 * <p>After each step its result is checked against the model: every byte a host read, a native
 * copy or a kernel read returns; every refusal (protection) expected exactly where the model
 * says; a failure is allowed only where one was injected. At the end: every byte of every live
 * region, {@link UnifiedMemory#verify()}, every device frame free again once the regions are
 * freed, and no thread or file descriptor left behind once the memory is closed.
 *
 * <p>With one worker the program is a list of {@link Step}s from the seed; a failing list is
 * shrunk (steps dropped while it still fails) and reported with the seed. With several workers
 * each runs its own steps on its own regions for a while, and prefetches, advises and releases
 * any region, so that pages move under other threads' loads, stores and kernels.
 */
public final class StressRun {
    static final long MAX_REGION = 8L << 20;
    static final int MAX_LIVE = 4;

    /**
     * What a run found.
     *
     * @param config the configuration that ran
     * @param operations how many steps ran, all workers together (skipped steps included)
     * @param nanos the run's wall-clock time in nanoseconds, building and closing the memory included
     * @param failures what went wrong, one line each, with the shrunk program after them for a
     *        one-worker run; empty if the run passed
     * @param program what each step of a one-worker run did, one line each; empty for several workers
     */
    public record Result(StressConfig config, long operations, long nanos, List<String> failures, List<String> program) {
        /**
         * Returns whether the run found nothing wrong.
         *
         * @return true if {@link #failures()} is empty
         */
        public boolean passed() {
            return failures.isEmpty();
        }

        /**
         * Returns the run's rate of steps.
         *
         * @return {@link #operations()} per second of {@link #nanos()}, or 0 if no time was measured
         */
        public double operationsPerSecond() {
            return nanos == 0 ? 0 : operations * 1e9 / nanos;
        }
    }

    /** Thrown by a check: what the model expected and what the memory did. */
    static class Mismatch extends RuntimeException {
        Mismatch(String message) {
            super(message);
        }
    }

    private final StressConfig config;

    /**
     * Prepares runs of {@code config}; nothing is built until a run starts.
     *
     * @param config the configuration to run
     */
    public StressRun(StressConfig config) {
        this.config = config;
    }

    /**
     * The program of a one-worker run: {@code steps} random steps from the seed. The same
     * configuration always gives the same program; failure injection steps only where it injects.
     *
     * @param c the configuration, whose seed, step count and injection are used
     * @return a new mutable list of {@code c.steps()} steps
     */
    public static List<Step> program(StressConfig c) {
        Random rnd = new Random(c.seed());
        List<Step> steps = new ArrayList<>(c.steps());
        for (int i = 0; i < c.steps(); i++) {
            steps.add(Step.random(rnd, c.inject()));
        }
        return steps;
    }

    /**
     * Runs the configuration. A failing one-worker program is shrunk for at most
     * {@code shrinkBudget} and reported with its shortest failing step list. A program that passes
     * when run again is reported unshrunk, as depending on timing.
     *
     * @param shrinkBudget how long shrinking a failing one-worker program may take; not used with
     *        several workers
     * @return what the run found; failures are reported in it, never thrown
     */
    public Result run(Duration shrinkBudget) {
        if (config.workers() == 1) {
            List<Step> steps = program(config);
            Result r = runSteps(steps);
            if (r.passed()) {
                return r;
            }
            if (runSteps(steps).passed()) {
                // timing decided it (copy threads, the fault service): report as found, unshrunk
                List<String> failures = new ArrayList<>(r.failures());
                failures.add("(the same program passed when run again: the failure depends on timing; not shrunk)");
                failures.addAll(r.program());
                return new Result(config, r.operations(), r.nanos(), failures, r.program());
            }
            List<Step> small = shrink(steps, shrinkBudget);
            Result again = runSteps(small);
            List<String> failures = new ArrayList<>(r.failures());
            failures.add("shrunk from " + steps.size() + " to " + small.size() + " steps; the shortest program that still fails:");
            failures.addAll(again.passed() ? describeOnly(small) : again.program());
            if (!again.passed()) {
                failures.add("and fails with: " + again.failures().getFirst());
            }
            return new Result(config, r.operations(), r.nanos(), failures, r.program());
        }
        return runConcurrent();
    }

    private static List<String> describeOnly(List<Step> steps) {
        List<String> out = new ArrayList<>();
        for (Step s : steps) {
            out.add("  " + s);
        }
        return out;
    }

    /** Drops steps while the program still fails (halving chunks, then single steps). */
    private List<Step> shrink(List<Step> steps, Duration budget) {
        long deadline = System.nanoTime() + budget.toNanos();
        List<Step> cur = new ArrayList<>(steps);
        int chunk = Math.max(1, cur.size() / 2);
        while (chunk >= 1 && System.nanoTime() < deadline) {
            boolean removed = false;
            for (int at = 0; at < cur.size() && System.nanoTime() < deadline; ) {
                List<Step> tryList = new ArrayList<>(cur.subList(0, at));
                tryList.addAll(cur.subList(Math.min(cur.size(), at + chunk), cur.size()));
                if (!tryList.isEmpty() && !runSteps(tryList).passed()) {
                    cur = tryList;
                    removed = true;
                } else {
                    at += chunk;
                }
            }
            if (!removed) {
                chunk /= 2;
            }
        }
        return cur;
    }

    // ------------------------------------------------------------------------------------------
    // one memory, built as the configuration says
    // ------------------------------------------------------------------------------------------

    static final class Setup implements AutoCloseable {
        final StressConfig config;
        final UnifiedMemory mem;
        final DeviceDriver[] drivers;
        final StressDevices[] kinds;
        final long threadsBefore;
        final long fdsBefore;

        Setup(StressConfig config) {
            this.config = config;
            this.threadsBefore = ourThreads();
            this.fdsBefore = openFds();
            int n = config.devices().size();
            drivers = new DeviceDriver[n + 1];
            kinds = new StressDevices[n + 1];
            boolean[] engine = config.engineSettings();
            UnifiedMemory.Builder b = UnifiedMemory.builder().copyThreads(engine[1] ? 1 : 2).hostFaults(config.hostFaults())
                    .thrashControl(config.thrashControl()).thrashHold(Duration.ofMillis(20))
                    .closeTimeout(Duration.ofSeconds(30)).hostRetainBudget(config.hostRetainBudget())
                    .copyPath(engine[0] ? dev.hetmem.CopyPath.ENGINE : dev.hetmem.CopyPath.THREADS)
                    .hostReleasePolicy(engine[2] ? dev.hetmem.HostReleasePolicy.DONTNEED : dev.hetmem.HostReleasePolicy.FREE)
                    .migrationMode(engine[3] ? dev.hetmem.MigrationMode.VANILLA : dev.hetmem.MigrationMode.BATCHED);
            try {
                for (int i = 0; i < n; i++) {
                    kinds[i + 1] = config.devices().get(i);
                    drivers[i + 1] = kinds[i + 1].create("stress-d" + (i + 1), config.deviceBytes());
                    b.device(drivers[i + 1]);
                }
                mem = b.build();
            } catch (RuntimeException | Error e) {
                // the devices made so far are nobody's yet (a memory closes its own): closed here, not leaked
                for (int i = 1; i <= n && drivers[i] != null; i++) {
                    try {
                        drivers[i].close();
                        kinds[i].forget(drivers[i]);
                    } catch (RuntimeException | Error closeFailed) {
                        e.addSuppressed(closeFailed);
                    }
                }
                throw e;
            }
        }

        int devices() {
            return drivers.length - 1;
        }

        void disarm() {
            for (int i = 1; i < drivers.length; i++) {
                kinds[i].failAllocation(drivers[i], -1);
                kinds[i].failCopy(drivers[i], -1);
                kinds[i].failExecute(drivers[i], -1);
                kinds[i].refuseRunsOfAtLeast(drivers[i], 0);
            }
        }

        /** The end-of-run checks on what is left: frames, threads, descriptors. */
        void finish(List<Model> live, List<String> failures) {
            disarm();
            for (Model m : live) {
                try {
                    m.checkAll("final read");
                } catch (RuntimeException e) {
                    failures.add("final read of " + m + ": " + e.getMessage());
                }
            }
            List<String> problems = mem.verify();
            if (!problems.isEmpty()) {
                failures.add("verify() at the end: " + problems.subList(0, Math.min(5, problems.size())));
            }
            for (Model m : live) {
                m.region.free();
            }
            for (NodeStats s : mem.stats().nodes()) {
                if (s.node().id() > 0 && s.freeBytes() != s.node().capacityBytes()) {
                    failures.add("node " + s.node().id() + " has " + s.freeBytes() + " of " + s.node().capacityBytes()
                            + " bytes free once every region is freed: frames leaked");
                }
            }
        }

        @Override
        public void close() {
            mem.close();
            for (int i = 1; i < drivers.length; i++) {
                kinds[i].forget(drivers[i]);
            }
        }

        void checkLeaks(List<String> failures) {
            long deadline = System.nanoTime() + 2_000_000_000L;
            while (ourThreads() > threadsBefore && System.nanoTime() < deadline) {
                sleep(10);
            }
            if (ourThreads() > threadsBefore) {
                failures.add("threads of hetmem left after close: " + (ourThreads() - threadsBefore));
            }
            if (openFds() > fdsBefore) {
                failures.add("file descriptors left after close: " + fdsBefore + " -> " + openFds());
            }
        }
    }

    private static long ourThreads() {
        return Thread.getAllStackTraces().keySet().stream()
                .filter(t -> t.getName().startsWith("hetmem") || t.getName().startsWith("stress-d")).count();
    }

    /**
     * Descriptors of the kinds hetmem opens (userfaultfd, its eventfd, memfds): the JVM opens
     * others lazily on first use (the random source of a temporary file), which are no leak.
     */
    private static long openFds() {
        try (var s = Files.list(Path.of("/proc/self/fd"))) {
            return s.filter(p -> {
                try {
                    String t = Files.readSymbolicLink(p).toString();
                    return t.contains("userfaultfd") || t.contains("eventfd") || t.contains("memfd");
                } catch (IOException e) {
                    return false;   // closed while listing
                }
            }).count();
        } catch (IOException e) {
            return 0;
        }
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    // ------------------------------------------------------------------------------------------
    // the model of one region
    // ------------------------------------------------------------------------------------------

    /** A live region and its shadow: every byte, and which pages are read-only. */
    static final class Model {
        final Region region;
        final byte[] bytes;
        final boolean[] readOnly;
        /** Pages given back by free(offset, length): their bytes are nobody's, every call must refuse them. */
        final boolean[] freed;
        final int owner;
        /** How host code reaches the region. */
        final HostFaultMode mode;
        /**
         * Whether accessed-by advice was ever given on the region: a device it names may then map
         * pages in place where a prefetch asks for them, rather than hold them.
         */
        boolean accessedByAdvised;

        Model(Region region, byte[] initial, int owner, HostFaultMode mode) {
            this.mode = mode;
            this.region = region;
            this.bytes = initial;
            this.readOnly = new boolean[(int) Math.ceilDiv(region.size(), PAGE_BYTES)];
            this.freed = new boolean[readOnly.length];
            this.owner = owner;
        }

        boolean anyReadOnly(long off, long len) {
            for (long p = off / PAGE_BYTES; p < Math.ceilDiv(off + len, PAGE_BYTES); p++) {
                if (readOnly[(int) p]) {
                    return true;
                }
            }
            return false;
        }

        /** Reads [off, off+len) as host code does in this mode. */
        byte[] hostRead(long off, int len) {
            byte[] got = new byte[len];
            if (mode == HostFaultMode.USERFAULTFD) {
                MemorySegment.copy(region.segment(), ValueLayout.JAVA_BYTE, off, got, 0, len);
            } else {
                try (HostView v = region.host(off, len, Access.READ)) {
                    MemorySegment.copy(v.segment(), ValueLayout.JAVA_BYTE, 0, got, 0, len);
                }
            }
            return got;
        }

        /**
         * A kernel's range from the step's numbers: whole pages, at most a quarter of a device of
         * {@code deviceBytes} (a launch never needs more than fits); {offset, length}, or null when
         * the region has no whole page.
         */
        long[] kernelRange(Step st, long deviceBytes) {
            long max = Math.max(PAGE_BYTES, deviceBytes / 4);
            long pages = region.size() / PAGE_BYTES;
            if (pages == 0) {
                return null;
            }
            long n = 1 + st.y() % Math.min(pages, max / PAGE_BYTES);
            return new long[] {offset(st, (pages - n + 1) * PAGE_BYTES) & -PAGE_BYTES, n * PAGE_BYTES};
        }

        /** Whether any page of [off, off+len) is freed. */
        boolean anyFreed(long off, long len) {
            for (long p = off / PAGE_BYTES; p < Math.ceilDiv(off + len, PAGE_BYTES); p++) {
                if (freed[(int) p]) {
                    return true;
                }
            }
            return false;
        }

        /** Whether every page that holds bytes [from, to) is freed. */
        boolean allFreed(long from, long to) {
            for (long p = from / PAGE_BYTES; p < Math.ceilDiv(to, PAGE_BYTES); p++) {
                if (p >= freed.length || !freed[(int) p]) {
                    return false;
                }
            }
            return true;
        }

        /** Compares what was read with the model; bytes of freed pages are nobody's and not compared. */
        void expect(byte[] got, long off, String what) {
            int from = 0;
            while (from < got.length) {
                long page = (off + from) / PAGE_BYTES;
                int to = (int) Math.min(got.length, (page + 1) * PAGE_BYTES - off);
                if (!freed[(int) page]) {
                    int i = Arrays.mismatch(got, from, to, bytes, (int) off + from, (int) off + to);
                    if (i >= 0 && readZerosOfAFree(got, from, to)) {
                        // in userfaultfd mode a load of a region being freed reads zeros (the fault service
                        // answers a killed region's faults so, for its view to close): a free under the
                        // read, reported as such (a refusal for a freed region), not as lost bytes
                        throw new IllegalStateException(what + ": " + this + " was freed while it was read (zeros at byte "
                                + (off + from + i) + ")");
                    }
                    if (i >= 0) {
                        throw new Mismatch(what + ": byte " + (off + from + i) + " of " + this + " is " + got[from + i]
                                + ", the model says " + bytes[(int) off + from + i]);
                    }
                }
                from = to;
            }
        }

        /**
         * Whether got[from, to) (one page or less) read all zeros and the region is freed now: in
         * userfaultfd mode a load of a region being freed reads zeros, so wrong bytes there may be
         * the free's, not lost ones.
         */
        boolean readZerosOfAFree(byte[] got, int from, int to) {
            return region.isFreed() && Arrays.mismatch(got, from, to, new byte[to - from], 0, to - from) < 0;
        }

        void checkAll(String what) {
            for (long off = 0; off < bytes.length; off += PAGE_BYTES) {
                if (freed[(int) (off / PAGE_BYTES)]) {
                    continue;
                }
                long end = off;
                while (end < bytes.length && end - off < MAX_REGION && !freed[(int) (end / PAGE_BYTES)]) {
                    end = Math.min(bytes.length, end + PAGE_BYTES);
                }
                expect(hostRead(off, (int) (end - off)), off, what);
                off = end - PAGE_BYTES;
            }
        }

        @Override
        public String toString() {
            return "region " + region.id() + " (" + region.size() + " bytes)";
        }
    }

    // ------------------------------------------------------------------------------------------
    // one worker's steps
    // ------------------------------------------------------------------------------------------

    static final MethodHandle MEMSET;
    static final MethodHandle MEMMOVE;

    static {
        Linker linker = Linker.nativeLinker();
        MEMSET = linker.downcallHandle(linker.defaultLookup().find("memset").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG));
        MEMMOVE = linker.downcallHandle(linker.defaultLookup().find("memmove").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG));
    }

    /** A throwable with its causes and suppressed throwables, for a failure's message. */
    static String describe(Throwable t) {
        StringBuilder b = new StringBuilder(String.valueOf(t));
        for (Throwable other : t.getSuppressed()) {
            b.append(" [suppressed: ").append(describe(other)).append(']');
        }
        if (t.getCause() != null && t.getCause() != t) {
            b.append(" [cause: ").append(describe(t.getCause())).append(']');
        }
        return b.toString();
    }

    /**
     * An offset in [0, room) from the step's numbers: in half the steps anywhere, in the other
     * half within 64 KiB of one of four fixed places (32 KiB before the ends of the first four
     * 2 MiB blocks, so that ranges there cross a granule's edge), so that the steps of a program
     * meet on the same pages and granules far more often than uniform offsets would.
     */
    static long offset(Step st, long room) {
        if ((st.z() & (1L << 8)) == 0) {
            return st.x() % room;
        }
        long spot = (((st.z() >>> 9) & 3) + 1) * (2L << 20) - (32L << 10);
        return (spot + st.x() % (64L << 10)) % room;
    }

    /**
     * Whether a throwable is an injected device failure as the API reports it: the failure itself
     * or wrapped only by exceptions that carry a failure unchanged (a future's, an I/O call's, a
     * hetmem exception that adds context). An {@code Error}, an {@code IllegalStateException} or
     * any other exception whose cause is an injected failure is not: that is what a broken undo
     * or a lost invariant looks like, and the run must report it. Nor is a failure carrying a
     * suppressed one that is not injected itself (an undo that failed too).
     */
    static boolean injected(Throwable t) {
        return injected(t, false);
    }

    /**
     * As {@link #injected(Throwable)}; with {@code besideFrees}, a failure suppressed in it may also be
     * a refusal of freed bytes (the batches of one prefetch list run side by side: one may fail as
     * injected while another meets a part of another worker's region that its owner freed meanwhile).
     */
    static boolean injected(Throwable t, boolean besideFrees) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            for (Throwable other : c.getSuppressed()) {
                // an interrupt beside it: the batches of a list on several threads, the caller interrupted after
                // one failed as injected (an interrupt alone is judged by interruptedFailure, with its flag)
                if (!injected(other, besideFrees) && !interruptedFailure(other) && !(besideFrees
                        && other instanceof IllegalStateException && String.valueOf(other.getMessage()).contains("freed"))) {
                    return false;
                }
            }
            if ((c instanceof dev.hetmem.driver.DeviceMemoryException || c instanceof dev.hetmem.driver.DeviceCopyException)
                    && String.valueOf(c.getMessage()).contains("injected")) {
                return true;
            }
            if (c instanceof ItemsRun.InjectedItemFailure) {
                return true;   // a sweep's kernel threw at the item it was asked to
            }
            if (!(c instanceof java.util.concurrent.CompletionException || c instanceof java.util.concurrent.ExecutionException
                    || c instanceof java.io.IOException || c instanceof java.io.UncheckedIOException
                    || c instanceof dev.hetmem.HetmemException)) {
                return false;
            }
        }
        return false;
    }

    /**
     * Whether a throwable is an interrupt as the API reports it: an interrupted wait of the memory
     * ({@code InterruptedOperationException}), an {@link java.io.InterruptedIOException} (a load), a
     * channel closed by the interrupt (the step's own file writes) or an {@link InterruptedException},
     * anywhere in the chain of wrappers, every suppressed failure beside it interrupted or injected
     * too.
     */
    static boolean interruptedFailure(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            for (Throwable other : c.getSuppressed()) {
                if (!interruptedFailure(other) && !injected(other)) {
                    return false;
                }
            }
            if (c instanceof dev.hetmem.InterruptedOperationException || c instanceof java.io.InterruptedIOException
                    || c instanceof java.nio.channels.ClosedByInterruptException || c instanceof InterruptedException) {
                return true;
            }
        }
        return false;
    }

    /**
     * Whether a step's failure is the memory refusing it as closed, or its region as freed (the
     * close frees every region): an {@link IllegalStateException} saying so, anywhere in the chain
     * (a future's, a load's I/O wrapper), the FFM's own "already closed" for a view's segment included.
     */
    static boolean refusedAsClosed(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            String m = String.valueOf(c.getMessage());
            if (c instanceof IllegalStateException && (m.contains("closed") || m.contains("closing") || m.contains("freed"))) {
                return true;
            }
        }
        return false;
    }

    /**
     * The end of a run that closes the memory under its workers ({@link StressConfig#closeRace}):
     * the workers start again on new regions of their own (allocating and freeing them, writing,
     * reading, launching, moving, advising, loading), and after a random 20-100 ms this thread
     * closes the memory. Until the close begins every step must agree with the model as usual;
     * from then on each either still does (it ran before the close took effect, which waits for
     * it) or is refused as closed or freed, and a worker ends at its first refusal. The close must
     * return (the builder's 30 s timeout), and every worker must end within a minute of it:
     * what the run reports otherwise is a close that failed, a step that failed in another way
     * (a crash would end the whole JVM), or a worker still running, with its stack.
     */
    /** Arms one injected failure on a random device: an allocation, a copy or a launch fails a few calls from now. */
    private static void armFailure(Setup s, Random inj) {
        int node = 1 + inj.nextInt(s.devices());
        int which = inj.nextInt(5);
        if (which < 2) {
            s.kinds[node].failAllocation(s.drivers[node], inj.nextInt(20));
        } else if (which < 4) {
            s.kinds[node].failCopy(s.drivers[node], inj.nextInt(60));
        } else {
            s.kinds[node].failExecute(s.drivers[node], inj.nextInt(8));
        }
    }

    private void closeUnderWorkers(Setup s, List<String> failures) {
        AtomicBoolean closing = new AtomicBoolean();
        ConcurrentHashMap<Integer, Model> all = new ConcurrentHashMap<>();
        List<Thread> threads = new ArrayList<>();
        for (int i = 0; i < config.workers(); i++) {
            int id = i;
            threads.add(Thread.ofPlatform().name("stress-closing-" + i).start(() -> {
                StressWorker w = new StressWorker(s, id, all, config.seed() ^ 0xC105EL, null);
                Random rnd = new Random(config.seed() * 7_000_003L + id);
                long afterClose = 0;
                while (true) {
                    Step st = Step.random(rnd, false);
                    if (st.op() == Step.Op.VERIFY || st.op() == Step.Op.SHARED) {
                        continue;   // verify() needs a quiet memory; there is no shared region here
                    }
                    boolean closed = closing.get();
                    try {
                        w.step(st);
                    } catch (Mismatch m) {
                        if (!closing.get() || !refusedAsClosed(m)) {
                            failures.add("closing the memory under its workers: worker " + id + " (" + st.op() + ", "
                                    + (closing.get() ? "while or after it closed" : "before the close") + "): " + m.getMessage());
                        }
                        return;
                    }
                    if (closed && ++afterClose == 10_000) {
                        failures.add("closing the memory under its workers: worker " + id + " ran 10000 steps after the "
                                + "close began and none was refused");
                        return;
                    }
                }
            }));
        }
        // 20-100 ms before the close, and failures injected meanwhile where the run injects them: a step
        // that fails so may then meet the close while it undoes (before, the close race ran none)
        Random inj = new Random(config.seed());
        long closeAt = System.nanoTime() + (20 + inj.nextInt(80)) * 1_000_000L;
        while (config.inject() && System.nanoTime() < closeAt) {
            armFailure(s, inj);
            sleep(2 + inj.nextInt(8));
        }
        sleep(Math.max(0, (closeAt - System.nanoTime()) / 1_000_000));
        closing.set(true);
        try {
            s.mem.close();
        } catch (RuntimeException e) {
            failures.add("close() with workers still running failed: " + describe(e));
        }
        long deadline = System.nanoTime() + 60_000_000_000L;
        for (Thread t : threads) {
            try {
                t.join(Math.max(1, (deadline - System.nanoTime()) / 1_000_000));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
            if (t.isAlive()) {
                StringBuilder stack = new StringBuilder();
                for (StackTraceElement e : t.getStackTrace()) {
                    stack.append("\n    at ").append(e);
                }
                failures.add(t.getName() + " still running 60 s after the memory was closed under it:" + stack);
                t.interrupt();
            }
        }
    }

    // ------------------------------------------------------------------------------------------
    // running
    // ------------------------------------------------------------------------------------------

    /**
     * Runs one program on a fresh memory; the result's program lists what each step did. The run
     * stops at the first step the model disagrees with, then checks every live region, the frames,
     * and leaked threads and descriptors.
     *
     * @param steps the steps to run, in order, on one worker
     * @return what the run found; failures are reported in it, never thrown
     */
    public Result runSteps(List<Step> steps) {
        List<String> failures = new ArrayList<>();
        List<String> log = new ArrayList<>();
        long t0 = System.nanoTime();
        long ops = 0;
        try (Setup s = new Setup(config)) {
            StressWorker w = new StressWorker(s, 0, new ConcurrentHashMap<>(), config.seed(), log);
            try {
                for (int i = 0; i < steps.size(); i++) {
                    try {
                        w.step(steps.get(i));
                    } catch (Mismatch m) {
                        failures.add("step " + (i + 1) + " of " + steps.size() + " (" + steps.get(i).op() + "): " + m.getMessage());
                        break;
                    }
                }
                ops = w.operations;
                s.finish(w.live, failures);
            } catch (RuntimeException | Error e) {
                failures.add("the run itself failed: " + e);
            }
            s.close();
            s.checkLeaks(failures);
        } catch (RuntimeException e) {
            failures.add("building or closing the memory failed: " + e);
        }
        return new Result(config, ops, System.nanoTime() - t0, failures, log);
    }

    private Result runConcurrent() {
        // lock L22 (stress failures), a leaf: docs/design.md, lock table, L22
        List<String> failures = java.util.Collections.synchronizedList(new ArrayList<>());
        AtomicLong ops = new AtomicLong();
        long t0 = System.nanoTime();
        try (Setup s = new Setup(config)) {
            ConcurrentHashMap<Integer, Model> all = new ConcurrentHashMap<>();
            // the region every worker writes slices of (StressWorker.SHARED): 4 MiB, of a granule from the seed
            long sharedGranule = new long[] {PAGE_BYTES, 64L << 10, 2L << 20}[(int) Math.floorMod(config.seed(), 3L)];
            Model shared = new Model(s.mem.allocate(4L << 20, sharedGranule), new byte[4 << 20], -1, config.hostFaults());
            all.put(shared.region.id(), shared);
            AtomicBoolean stop = new AtomicBoolean();
            ConcurrentLinkedQueue<StressWorker> done = new ConcurrentLinkedQueue<>();
            List<Thread> threads = new ArrayList<>();
            StepTrace trace = new StepTrace();
            for (int i = 0; i < config.workers(); i++) {
                int id = i;
                threads.add(Thread.ofPlatform().name("stress-worker-" + i).start(() -> {
                    long[] n = {0};
                    StressWorker w = new StressWorker(s, id, all, config.seed(), trace.of(id, () -> n[0] + 1), shared);
                    Random rnd = new Random(config.seed() * 1_000_003L + id);
                    try {
                        while (!stop.get()) {
                            Step st = Step.random(rnd, false);
                            if (st.op() == Step.Op.VERIFY) {
                                continue;
                            }
                            try {
                                w.step(st);
                            } catch (Mismatch m) {
                                failures.add("worker " + id + ", its step " + (n[0] + 1) + " (" + st.op() + "): " + m.getMessage());
                                String region = m.getMessage().replaceFirst("(?s).*?(region \\d+ ).*", "$1");
                                if (!region.equals(m.getMessage())) {
                                    failures.add("the last steps of all workers on " + region.strip() + ", in the order they began:");
                                    for (String note : trace.mentioning(region, 40)) {
                                        failures.add("  " + note);
                                    }
                                }
                                stop.set(true);
                            }
                            n[0]++;
                        }
                    } finally {
                        ops.addAndGet(w.operations);
                        done.add(w);
                    }
                }));
            }
            Random inj = new Random(config.seed());
            long end = System.nanoTime() + config.millis() * 1_000_000L;
            while (System.nanoTime() < end && !stop.get()) {
                if (config.interrupts() && inj.nextInt(3) == 0) {
                    // a worker mid-step, mostly: a step that begins with the flag set clears it (StressWorker.step)
                    threads.get(inj.nextInt(threads.size())).interrupt();
                }
                if (config.inject()) {
                    armFailure(s, inj);
                }
                sleep(5 + inj.nextInt(20));
            }
            stop.set(true);
            for (Thread t : threads) {
                try {
                    t.join();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            List<Model> live = new ArrayList<>();
            live.add(shared);
            for (StressWorker w : done) {
                live.addAll(w.live);
            }
            try {
                s.finish(live, failures);
            } catch (RuntimeException e) {
                failures.add("the end checks failed: " + e);
            }
            if (config.closeRace() && failures.isEmpty()) {
                closeUnderWorkers(s, failures);
            }
            s.close();
            s.checkLeaks(failures);
        } catch (RuntimeException e) {
            failures.add("building or closing the memory failed: " + e);
        }
        return new Result(config, ops.get(), System.nanoTime() - t0, List.copyOf(failures), List.of());
    }
}
