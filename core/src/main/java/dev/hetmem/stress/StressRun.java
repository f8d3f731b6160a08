package dev.hetmem.stress;

import dev.hetmem.Access;
import dev.hetmem.Advice;
import dev.hetmem.HostFaultMode;
import dev.hetmem.HostView;
import dev.hetmem.NodeStats;
import dev.hetmem.ProtectionException;
import dev.hetmem.Region;
import dev.hetmem.UnifiedMemory;
import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.io.LoadResult;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
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
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

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
    private static final long PAGE = 4096;
    private static final long MAX_REGION = 8L << 20;
    private static final int MAX_LIVE = 4;

    /** What a run found. */
    public record Result(StressConfig config, long operations, long nanos, List<String> failures, List<String> program) {
        public boolean passed() {
            return failures.isEmpty();
        }

        public double operationsPerSecond() {
            return nanos == 0 ? 0 : operations * 1e9 / nanos;
        }
    }

    /** Thrown by a check: what the model expected and what the memory did. */
    static final class Mismatch extends RuntimeException {
        Mismatch(String message) {
            super(message);
        }
    }

    private final StressConfig config;

    public StressRun(StressConfig config) {
        this.config = config;
    }

    /** The program of a one-worker run: {@code steps} random steps from the seed. */
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
     * {@code shrinkBudget} and reported with its shortest failing step list.
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

    private final class Setup implements AutoCloseable {
        final UnifiedMemory mem;
        final DeviceDriver[] drivers;
        final StressDevices[] kinds;
        final long threadsBefore;
        final long fdsBefore;

        Setup() {
            this.threadsBefore = ourThreads();
            this.fdsBefore = openFds();
            int n = config.devices().size();
            drivers = new DeviceDriver[n + 1];
            kinds = new StressDevices[n + 1];
            UnifiedMemory.Builder b = UnifiedMemory.builder().copyThreads(2).hostFaults(config.hostFaults())
                    .thrashControl(config.thrashControl()).thrashHold(Duration.ofMillis(20))
                    .closeTimeout(Duration.ofSeconds(30));
            for (int i = 0; i < n; i++) {
                kinds[i + 1] = config.devices().get(i);
                drivers[i + 1] = kinds[i + 1].create("stress-d" + (i + 1), config.deviceBytes());
                b.device(drivers[i + 1]);
            }
            mem = b.build();
        }

        int devices() {
            return drivers.length - 1;
        }

        void disarm() {
            for (int i = 1; i < drivers.length; i++) {
                kinds[i].failAllocation(drivers[i], -1);
                kinds[i].failCopy(drivers[i], -1);
            }
        }

        /** The end-of-run checks on what is left: frames, threads, descriptors. */
        void finish(List<Model> live, List<String> failures) {
            disarm();
            for (Model m : live) {
                try {
                    m.checkAll(this);
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
    private final class Model {
        final Region region;
        final byte[] bytes;
        final boolean[] readOnly;
        final int owner;

        Model(Region region, byte[] initial, int owner) {
            this.region = region;
            this.bytes = initial;
            this.readOnly = new boolean[(int) Math.ceilDiv(region.size(), PAGE)];
            this.owner = owner;
        }

        boolean anyReadOnly(long off, long len) {
            for (long p = off / PAGE; p < Math.ceilDiv(off + len, PAGE); p++) {
                if (readOnly[(int) p]) {
                    return true;
                }
            }
            return false;
        }

        /** Reads [off, off+len) as host code does in this mode. */
        byte[] hostRead(long off, int len) {
            byte[] got = new byte[len];
            if (config.hostFaults() == HostFaultMode.USERFAULTFD) {
                MemorySegment.copy(region.segment(), ValueLayout.JAVA_BYTE, off, got, 0, len);
            } else {
                try (HostView v = region.host(off, len, Access.READ)) {
                    MemorySegment.copy(v.segment(), ValueLayout.JAVA_BYTE, 0, got, 0, len);
                }
            }
            return got;
        }

        void expect(byte[] got, long off, String what) {
            int i = Arrays.mismatch(got, 0, got.length, bytes, (int) off, (int) off + got.length);
            if (i >= 0) {
                throw new Mismatch(what + ": byte " + (off + i) + " of " + this + " is " + got[i] + ", the model says "
                        + bytes[(int) off + i]);
            }
        }

        void checkAll(Setup s) {
            for (long off = 0; off < bytes.length; off += MAX_REGION) {
                int len = (int) Math.min(MAX_REGION, bytes.length - off);
                if (len > 0) {
                    expect(hostRead(off, len), off, "final read");
                }
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

    private static final MethodHandle MEMSET;
    private static final MethodHandle MEMMOVE;

    static {
        Linker linker = Linker.nativeLinker();
        MEMSET = linker.downcallHandle(linker.defaultLookup().find("memset").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG));
        MEMMOVE = linker.downcallHandle(linker.defaultLookup().find("memmove").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG));
    }

    /** Whether a throwable is, or is caused by, an injected device failure. */
    static boolean injected(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if ((c instanceof dev.hetmem.driver.DeviceMemoryException || c instanceof dev.hetmem.driver.DeviceCopyException)
                    && String.valueOf(c.getMessage()).contains("injected")) {
                return true;
            }
        }
        return false;
    }

    /** Runs steps on one worker's regions; shared with other workers only through {@code all}. */
    private final class Worker {
        final Setup s;
        final int id;
        final List<Model> live = new ArrayList<>();
        final ConcurrentHashMap<Integer, Model> all;
        final Random data;
        final List<String> log;
        long operations;

        Worker(Setup s, int id, ConcurrentHashMap<Integer, Model> all, long seed, List<String> log) {
            this.s = s;
            this.id = id;
            this.all = all;
            this.data = new Random(seed * 31 + id);
            this.log = log;
        }

        private Model pick(Step st) {
            return live.isEmpty() ? null : live.get(st.a() % live.size());
        }

        /** A region of any worker (for operations that move pages but never change bytes). */
        private Model pickAny(Step st) {
            Model[] ms = all.values().toArray(new Model[0]);
            return ms.length == 0 ? null : ms[st.a() % ms.length];
        }

        private void note(String what) {
            if (log != null) {
                log.add("  " + what);
            }
        }

        /** Runs one step; throws Mismatch when the memory disagrees with the model. */
        void step(Step st) {
            operations++;
            try {
                doStep(st);
            } catch (Mismatch m) {
                throw m;
            } catch (ProtectionException e) {
                throw new Mismatch(st.op() + " refused by protection the model does not have: " + e.getMessage());
            } catch (RuntimeException | Error e) {
                if (injected(e)) {
                    return;
                }
                if (!mine(st) && e instanceof IllegalStateException && String.valueOf(e.getMessage()).contains("freed")) {
                    return;   // another worker freed the region this one was moving
                }
                Mismatch m = new Mismatch(st.op() + " failed: " + e);
                m.initCause(e);
                throw m;
            }
        }

        /** Whether the step works on this worker's own regions (else it may race their free). */
        private boolean mine(Step st) {
            return switch (st.op()) {
                case PREFETCH, PREFETCH_ASYNC, PREFETCH_LIST, READ_MOSTLY, PREFERRED, ACCESSED_BY, GRANULARITY, RELEASE ->
                        config.workers() == 1;
                default -> true;
            };
        }

        private int node(Step st) {
            return st.b() % (s.devices() + 1);
        }

        private int device(Step st) {
            return 1 + st.b() % s.devices();
        }

        /** A byte range of m from the step's numbers: mostly short, sometimes whole pages or more. */
        private long[] range(Model m, Step st, long max) {
            long size = m.region.size();
            long len = switch ((int) (st.z() & 3)) {
                case 0 -> 1 + st.y() % Math.min(64, size);
                case 1 -> 1 + st.y() % Math.min(max, size);
                default -> Math.min(size, PAGE * (1 + st.y() % Math.max(1, max / PAGE)));
            };
            long off = (st.z() & 4) != 0 ? (st.x() % (size - len + 1)) & -PAGE : st.x() % (size - len + 1);
            return new long[] {off, len};
        }

        private void doStep(Step st) {
            Model m = mine(st) ? pick(st) : pickAny(st);
            switch (st.op()) {
                case ALLOCATE -> {
                    if (live.size() >= MAX_LIVE) {
                        return;
                    }
                    long size = (st.z() & 1) == 0 ? PAGE * (1 + st.x() % (MAX_REGION / PAGE)) : 1 + st.x() % MAX_REGION;
                    long granule = new long[] {PAGE, 64L << 10, 2L << 20}[st.a() % 3];
                    Region r = s.mem.allocate(size, granule);
                    Model nm = new Model(r, new byte[(int) size], id);
                    live.add(nm);
                    all.put(r.id(), nm);
                    note("allocate " + size + " bytes, granule " + granule + " -> " + nm);
                }
                case FREE -> {
                    if (m == null) {
                        return;
                    }
                    note("free " + m);
                    live.remove(m);
                    all.remove(m.region.id());
                    m.region.free();
                }
                case HOST_WRITE, NATIVE_FILL -> {
                    if (m == null) {
                        return;
                    }
                    long[] rg = range(m, st, 256L << 10);
                    byte[] src = new byte[(int) rg[1]];
                    if (st.op() == Step.Op.HOST_WRITE) {
                        data.nextBytes(src);
                    } else {
                        Arrays.fill(src, (byte) st.b());
                    }
                    boolean plain = config.hostFaults() == HostFaultMode.USERFAULTFD;
                    boolean refused = !plain && m.anyReadOnly(rg[0], rg[1]);
                    note((st.op() == Step.Op.HOST_WRITE ? "host write " : "native memset ") + m + " [" + rg[0] + ", +" + rg[1] + ")"
                            + (plain ? " (plain stores)" : "") + (refused ? " refused: read-only" : ""));
                    boolean done = writeChecked(refused, "a write view of " + m, () -> {
                        if (plain) {
                            store(m.region.address() + rg[0], m.region.segment().asSlice(rg[0], rg[1]), src, st.op());
                        } else {
                            try (HostView v = m.region.host(rg[0], rg[1], Access.WRITE)) {
                                store(v.segment().address(), v.segment(), src, st.op());
                            }
                        }
                    });
                    if (done) {
                        System.arraycopy(src, 0, m.bytes, (int) rg[0], src.length);
                    }
                }
                case HOST_READ -> {
                    if (m == null) {
                        return;
                    }
                    long[] rg = range(m, st, 1L << 20);
                    note("host read " + m + " [" + rg[0] + ", +" + rg[1] + ")");
                    m.expect(m.hostRead(rg[0], (int) rg[1]), rg[0], "host read");
                }
                case NATIVE_COPY -> {
                    if (m == null) {
                        return;
                    }
                    Model to = live.get(st.b() % live.size());
                    long len = 1 + st.y() % Math.min(128L << 10, Math.min(m.region.size(), to.region.size()));
                    long from = st.x() % (m.region.size() - len + 1);
                    long at = st.z() % (to.region.size() - len + 1);
                    if (at < 0) {
                        at = -at;
                    }
                    if (to == m && from / PAGE <= (at + len - 1) / PAGE && at / PAGE <= (from + len - 1) / PAGE) {
                        // a read view and a write view sharing a page of one region: the write may have to take
                        // the page from under this thread's own read pin (PinnedByCallerException, by design)
                        return;
                    }
                    nativeCopy(m, from, to, at, len);
                }
                case KERNEL_WRITE, KERNEL_READ -> {
                    if (m == null) {
                        return;
                    }
                    // whole pages, at most a quarter of a device: a launch never needs more than fits
                    long max = Math.max(PAGE, config.deviceBytes() / 4);
                    long pages = m.region.size() / PAGE;
                    if (pages == 0) {
                        return;
                    }
                    long n = 1 + st.y() % Math.min(pages, max / PAGE);
                    long off = (st.x() % (pages - n + 1)) * PAGE;
                    long len = n * PAGE;
                    int node = device(st);
                    try (Arena arena = Arena.ofShared()) {   // kernels read and write it on the device's threads
                        MemorySegment buf = arena.allocate(len, 64);
                        if (st.op() == Step.Op.KERNEL_WRITE) {
                            byte[] src = new byte[(int) len];
                            data.nextBytes(src);
                            MemorySegment.copy(src, 0, buf, ValueLayout.JAVA_BYTE, 0, src.length);
                            boolean refused = m.anyReadOnly(off, len);
                            note("kernel write node " + node + " " + m + " [" + off + ", +" + len + ")" + (refused ? " refused: read-only" : ""));
                            if (writeChecked(refused, "a kernel writing " + m,
                                    () -> s.kinds[node].write(s.mem, node, m.region, off, buf, len))) {
                                System.arraycopy(src, 0, m.bytes, (int) off, src.length);
                            }
                        } else {
                            note("kernel read node " + node + " " + m + " [" + off + ", +" + len + ")");
                            s.kinds[node].read(s.mem, node, m.region, off, buf, len);
                            m.expect(buf.toArray(ValueLayout.JAVA_BYTE), off, "kernel read on node " + node);
                        }
                    }
                }
                case PREFETCH, PREFETCH_ASYNC -> {
                    if (m == null) {
                        return;
                    }
                    long[] rg = range(m, st, 8L << 20);
                    int node = node(st);
                    note("prefetch" + (st.op() == Step.Op.PREFETCH_ASYNC ? " (async)" : "") + " " + m + " [" + rg[0] + ", +" + rg[1]
                            + ") to node " + node);
                    if (st.op() == Step.Op.PREFETCH) {
                        m.region.advise(rg[0], rg[1], Advice.prefetch(node));
                    } else {
                        try {
                            s.mem.prefetchAsync(m.region, rg[0], rg[1], node).join();
                        } catch (CompletionException e) {
                            throw e.getCause() instanceof RuntimeException re ? re : e;
                        }
                    }
                }
                case PREFETCH_LIST -> {
                    if (m == null) {
                        return;
                    }
                    long len = 1 + st.y() % Math.min(m.region.size(), 64L << 10);
                    long[] offs = new long[1 + st.b() % 8];
                    for (int i = 0; i < offs.length; i++) {
                        offs[i] = Math.floorMod(st.x() + i * st.z(), m.region.size() - len + 1);
                    }
                    int node = node(st);
                    note("prefetch " + offs.length + " ranges of " + len + " bytes of " + m + " to node " + node);
                    s.mem.prefetch(m.region, node, len, offs);
                }
                case READ_MOSTLY, PREFERRED, ACCESSED_BY, GRANULARITY -> {
                    if (m == null) {
                        return;
                    }
                    long[] rg = range(m, st, 4L << 20);
                    Advice a = switch (st.op()) {
                        case READ_MOSTLY -> Advice.readMostly((st.b() & 1) == 0);
                        case PREFERRED -> Advice.preferredLocation(st.b() % 3 == 0 ? -1 : node(st));
                        case ACCESSED_BY -> (st.b() & 1) == 0 ? Advice.accessedBy(device(st)) : Advice.notAccessedBy(device(st));
                        default -> Advice.granularity(new long[] {PAGE, 64L << 10, 2L << 20}[st.b() % 3]);
                    };
                    note("advise " + a + " on " + m + " [" + rg[0] + ", +" + rg[1] + ")");
                    m.region.advise(rg[0], rg[1], a);
                }
                case DONT_NEED -> {
                    if (m == null) {
                        return;
                    }
                    long[] rg = range(m, st, 1L << 20);
                    note("advise DONT_NEED " + m + " [" + rg[0] + ", +" + rg[1] + ")");
                    m.region.advise(rg[0], rg[1], Advice.dontNeed());
                    long first = Math.ceilDiv(rg[0], PAGE) * PAGE;
                    long end = rg[0] + rg[1] == m.region.size() ? rg[0] + rg[1] : (rg[0] + rg[1]) / PAGE * PAGE;
                    if (first < end) {
                        Arrays.fill(m.bytes, (int) first, (int) end, (byte) 0);
                    }
                }
                case PROTECT -> {
                    if (m == null) {
                        return;
                    }
                    long[] rg = range(m, st, 1L << 20);
                    boolean ro = (st.b() & 1) == 0;
                    note("protect " + m + " [" + rg[0] + ", +" + rg[1] + ") " + (ro ? "read-only" : "read-write"));
                    m.region.protect(rg[0], rg[1], ro ? dev.hetmem.Protection.READ_ONLY : dev.hetmem.Protection.READ_WRITE);
                    for (long p = rg[0] / PAGE; p < Math.ceilDiv(rg[0] + rg[1], PAGE); p++) {
                        m.readOnly[(int) p] = ro;
                    }
                }
                case RELEASE -> {
                    int node = device(st);
                    note("release node " + node);
                    s.mem.release(node);
                }
                case LOAD -> {
                    if (live.size() >= MAX_LIVE) {
                        return;
                    }
                    load(st);
                }
                case INJECT -> {
                    int node = device(st);
                    int after = (int) (st.x() % 40);
                    boolean alloc = (st.b() & 1) == 0;
                    note("inject " + (alloc ? "an allocation" : "a copy") + " failure on node " + node + " after " + after);
                    if (alloc) {
                        s.kinds[node].failAllocation(s.drivers[node], after);
                    } else {
                        s.kinds[node].failCopy(s.drivers[node], after);
                    }
                }
                case VERIFY -> {
                    if (config.workers() > 1) {
                        return;   // verify() wants a quiet memory
                    }
                    note("verify");
                    List<String> problems = s.mem.verify();
                    if (!problems.isEmpty()) {
                        throw new Mismatch("verify(): " + problems.subList(0, Math.min(5, problems.size())));
                    }
                }
            }
        }

        private void store(long address, MemorySegment target, byte[] src, Step.Op op) {
            if (op == Step.Op.HOST_WRITE) {
                MemorySegment.copy(src, 0, target, ValueLayout.JAVA_BYTE, 0, src.length);
                return;
            }
            try {
                MemorySegment unused = (MemorySegment) MEMSET.invokeExact(MemorySegment.ofAddress(address), (int) src[0],
                        (long) src.length);
            } catch (Throwable t) {
                throw new IllegalStateException("memset", t);
            }
        }

        private void nativeCopy(Model from, long fromOff, Model to, long toOff, long len) {
            boolean plain = config.hostFaults() == HostFaultMode.USERFAULTFD;
            boolean refused = !plain && to.anyReadOnly(toOff, len);
            note("native memmove " + len + " bytes " + from + " @" + fromOff + " -> " + to + " @" + toOff
                    + (refused ? " refused: read-only" : ""));
            boolean done = writeChecked(refused, "a write view of " + to, () -> {
                if (plain) {
                    move(to.region.address() + toOff, from.region.address() + fromOff, len);
                } else {
                    try (HostView src = from.region.host(fromOff, len, Access.READ);
                         HostView dst = to.region.host(toOff, len, Access.WRITE)) {
                        move(dst.segment().address(), src.segment().address(), len);
                    }
                }
            });
            if (done) {
                System.arraycopy(from.bytes, (int) fromOff, to.bytes, (int) toOff, (int) len);
            }
        }

        /**
         * Runs a write the model expects to be refused (read-only pages: ProtectionException) or
         * done; returns whether it was done, and throws Mismatch when the memory decided otherwise.
         */
        private boolean writeChecked(boolean refused, String what, Runnable write) {
            try {
                write.run();
            } catch (ProtectionException e) {
                if (!refused) {
                    throw e;
                }
                return false;
            }
            if (refused) {
                throw new Mismatch(what + " was granted although the model has read-only pages there");
            }
            return true;
        }

        private static void move(long dst, long src, long len) {
            try {
                MemorySegment unused = (MemorySegment) MEMMOVE.invokeExact(MemorySegment.ofAddress(dst),
                        MemorySegment.ofAddress(src), len);
            } catch (Throwable t) {
                throw new IllegalStateException("memmove", t);
            }
        }

        private void load(Step st) {
            int size = (int) (1 + st.x() % (2L << 20));
            byte[] content = new byte[size];
            data.nextBytes(content);
            int node = node(st);
            Path f;
            try {
                f = Files.createTempFile("hetmem-stress-", ".bin");
                Files.write(f, content);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            note("load a file of " + size + " bytes to node " + node);
            try {
                LoadResult r = s.mem.load(f, node);
                Model nm = new Model(r.region(), Arrays.copyOf(content, (int) r.region().size()), id);
                live.add(nm);
                all.put(r.region().id(), nm);
                nm.expect(nm.hostRead(0, size), 0, "read after load");
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            } finally {
                try {
                    Files.deleteIfExists(f);
                } catch (IOException ignored) {
                    // a temporary file
                }
            }
        }
    }

    // ------------------------------------------------------------------------------------------
    // running
    // ------------------------------------------------------------------------------------------

    /** Runs one program on a fresh memory; the result's program lists what each step did. */
    public Result runSteps(List<Step> steps) {
        List<String> failures = new ArrayList<>();
        List<String> log = new ArrayList<>();
        long t0 = System.nanoTime();
        long ops = 0;
        try (Setup s = new Setup()) {
            Worker w = new Worker(s, 0, new ConcurrentHashMap<>(), config.seed(), log);
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
        List<String> failures = java.util.Collections.synchronizedList(new ArrayList<>());
        AtomicLong ops = new AtomicLong();
        long t0 = System.nanoTime();
        try (Setup s = new Setup()) {
            ConcurrentHashMap<Integer, Model> all = new ConcurrentHashMap<>();
            AtomicBoolean stop = new AtomicBoolean();
            ConcurrentLinkedQueue<Worker> done = new ConcurrentLinkedQueue<>();
            List<Thread> threads = new ArrayList<>();
            for (int i = 0; i < config.workers(); i++) {
                int id = i;
                threads.add(Thread.ofPlatform().name("stress-worker-" + i).start(() -> {
                    Worker w = new Worker(s, id, all, config.seed(), null);
                    Random rnd = new Random(config.seed() * 1_000_003L + id);
                    long n = 0;
                    try {
                        while (!stop.get()) {
                            Step st = Step.random(rnd, false);
                            if (st.op() == Step.Op.VERIFY) {
                                continue;
                            }
                            try {
                                w.step(st);
                            } catch (Mismatch m) {
                                failures.add("worker " + id + ", its step " + (n + 1) + " (" + st.op() + "): " + m.getMessage());
                                stop.set(true);
                            }
                            n++;
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
                if (config.inject()) {
                    int node = 1 + inj.nextInt(s.devices());
                    if (inj.nextBoolean()) {
                        s.kinds[node].failAllocation(s.drivers[node], inj.nextInt(20));
                    } else {
                        s.kinds[node].failCopy(s.drivers[node], inj.nextInt(60));
                    }
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
            for (Worker w : done) {
                live.addAll(w.live);
            }
            try {
                s.finish(live, failures);
            } catch (RuntimeException e) {
                failures.add("the end checks failed: " + e);
            }
            s.close();
            s.checkLeaks(failures);
        } catch (RuntimeException e) {
            failures.add("building or closing the memory failed: " + e);
        }
        return new Result(config, ops.get(), System.nanoTime() - t0, List.copyOf(failures), List.of());
    }
}
