package dev.hetmem.stress;

import dev.hetmem.Access;
import dev.hetmem.Advice;
import dev.hetmem.HostFaultMode;
import dev.hetmem.HostView;
import dev.hetmem.PageSnapshot;
import dev.hetmem.ProtectionException;
import dev.hetmem.Region;
import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.io.LoadOptions;
import dev.hetmem.io.LoadProgress;
import dev.hetmem.io.LoadResult;
import dev.hetmem.io.LoadScheme;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;

import dev.hetmem.stress.StressRun.Mismatch;
import dev.hetmem.stress.StressRun.Model;
import dev.hetmem.stress.StressRun.Setup;

import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;
import static dev.hetmem.stress.StressRun.MAX_LIVE;
import static dev.hetmem.stress.StressRun.MAX_REGION;
import static dev.hetmem.stress.StressRun.MEMMOVE;
import static dev.hetmem.stress.StressRun.MEMSET;
import static dev.hetmem.stress.StressRun.injected;

/** Runs steps on one worker's regions; shared with other workers only through {@code all}. */
final class StressWorker {
    private final StressConfig config;
    final Setup s;
    final int id;
    final List<Model> live = new ArrayList<>();
    final ConcurrentHashMap<Integer, Model> all;
    final Random data;
    final List<String> log;
    long operations;

    /**
     * The region the workers of a concurrent run share (also in {@link #all}, so that any worker
     * moves and advises it), or null: slice k of {@link #SLICE} bytes (in host views mode, every
     * other seed, of 1 KiB: four workers' in a page) is worker k % workers' to write, check, and
     * (whole pages only) discard, protect and free; only its owner changes a slice's bytes,
     * protection or freed pages in the model.
     */
    final Model shared;
    static final long SLICE = 16L << 10;

    StressWorker(Setup s, int id, ConcurrentHashMap<Integer, Model> all, long seed, List<String> log) {
        this(s, id, all, seed, log, null);
    }

    StressWorker(Setup s, int id, ConcurrentHashMap<Integer, Model> all, long seed, List<String> log, Model shared) {
        this.s = s;
        this.config = s.config;
        this.id = id;
        this.all = all;
        this.shared = shared;
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

    /**
     * Whether an interrupt reached this thread during the current step and was taken (cleared)
     * where the step saw it, to read back what a failed launch left ({@link #takenInterrupt}).
     */
    private boolean interruptedInStep;

    /** Runs one step; throws Mismatch when the memory disagrees with the model. */
    void step(Step st) {
        operations++;
        Thread.interrupted();   // an interrupt that came between steps is no step's
        interruptedInStep = false;
        // one worker: now and then a step starts with the interrupt set (reproducibly, by the step's numbers)
        boolean selfInterrupted = config.interrupts() && config.workers() == 1 && ((st.x() ^ st.z()) >>> 52 & 15) == 0;
        if (selfInterrupted) {
            note("with this thread's interrupt set");
            Thread.currentThread().interrupt();
        }
        try {
            doStep(st);
            if (selfInterrupted && !Thread.currentThread().isInterrupted()) {
                throw new Mismatch(st.op() + " completed and cleared the caller's interrupt");
            }
        } catch (Mismatch m) {
            throw m;
        } catch (ProtectionException e) {
            throw new Mismatch(st.op() + " refused by protection the model does not have: " + e.getMessage());
        } catch (RuntimeException | Error e) {
            if (selfInterrupted && !Thread.currentThread().isInterrupted() && !interruptedInStep) {
                Mismatch m = new Mismatch(st.op() + " failed and cleared the caller's interrupt: " + StressRun.describe(e));
                m.initCause(e);
                throw m;
            }
            if (failedByInterrupt(e)) {
                note("  failed as interrupted: " + e.getMessage());
                if (config.workers() == 1) {
                    checkAfterInjectedFailure(st);
                }
                return;
            }
            if (injected(e, !mine(st))) {   // another worker's region: a part of it may be freed meanwhile
                note("  failed as injected: " + e.getMessage());
                if (config.workers() == 1) {
                    checkAfterInjectedFailure(st);
                }
                return;
            }
            if (!mine(st) && e instanceof IllegalStateException && String.valueOf(e.getMessage()).contains("freed")) {
                return;   // another worker freed the region this one was moving
            }
            if (refusedForFreedPart(e)) {
                note("  refused: " + e.getMessage());
                return;   // the step reached a part the model has freed: refused before it changed anything
            }
            Mismatch m = new Mismatch(st.op() + " failed: " + StressRun.describe(e));
            m.initCause(e);
            throw m;
        } finally {
            Thread.interrupted();   // the next step starts without it
        }
    }

    /**
     * Whether {@code e} is an interrupt as the API reports it ({@link StressRun#interruptedFailure})
     * and one reached this step, kept set for the caller (or already taken by the step); clears it.
     */
    private boolean failedByInterrupt(Throwable e) {
        boolean set = Thread.interrupted();
        return (set || interruptedInStep) && StressRun.interruptedFailure(e);
    }

    /**
     * Before a step reads back what a failed launch left: the interrupt, if set, is taken (so that
     * the reads run) and remembered for the step ({@link #failedByInterrupt}, the flag's check).
     * Returns whether {@code e} is an interrupt as the API reports it and one reached the step.
     */
    private boolean takenInterrupt(Throwable e) {
        if (Thread.interrupted()) {
            interruptedInStep = true;
        }
        return interruptedInStep && StressRun.interruptedFailure(e);
    }

    /**
     * After a failure accepted as injected, with one worker (a quiet memory): the failure left the
     * page table consistent and every byte of every region as the model says, undone or adopted.
     * Reading back may meet the next armed failure; it is read again then.
     */
    private void checkAfterInjectedFailure(Step st) {
        List<String> problems = s.mem.verify();
        if (!problems.isEmpty()) {
            throw new Mismatch(st.op() + " failed as injected, then verify(): "
                    + problems.subList(0, Math.min(5, problems.size())));
        }
        for (Model m : live) {
            for (int attempt = 0; ; attempt++) {
                try {
                    m.checkAll(st.op() + " failed as injected, then a read back");
                    break;
                } catch (Mismatch mismatch) {
                    throw mismatch;
                } catch (RuntimeException e) {
                    if (!injected(e) || attempt == 8) {
                        throw e;
                    }
                }
            }
        }
    }

    /** A refusal naming bytes of a region that the model, too, has freed. */
    private boolean refusedForFreedPart(Throwable e) {
        FreedRefusal f = FreedRefusal.of(e);
        Model named = f == null ? null : all.get(f.region());
        return named != null && named.allFreed(f.from(), f.to());
    }

    /** Whether the step works on this worker's own regions (else it may race their free). */
    private boolean mine(Step st) {
        return switch (st.op()) {
            case PREFETCH, PREFETCH_ASYNC, PREFETCH_LIST, READ_MOSTLY, PREFERRED, ACCESSED_BY, GRANULARITY, RELEASE ->
                    config.workers() == 1;
            default -> true;
        };
    }

    /**
     * After a prefetch of [off, off+len) of {@code m} to {@code node} returned: every page of it that
     * is not freed is on that node. Checked where nothing else can have moved them since, with one
     * worker, and where the pages must be held there: to the host always; to a device only where it
     * holds every live region twice over (then nothing is evicted: on a fuller one, a prefetch of
     * several batches may evict its own first ones), thrashing control is off and no accessed-by
     * advice was given on the region (either may map pages in place instead), in both host-fault
     * modes: in userfaultfd mode it found a prefetch's own copy faulting through the view and the
     * fault service taking the granule home (seed 20512943, 18 runs of 20; see hetmem_uffd.c,
     * fill_for_copy).
     */
    private void residentAfterPrefetch(Model m, long off, long len, int node) {
        if (!placementChecked(m, node)) {
            return;
        }
        long first = off / PAGE_BYTES;
        PageSnapshot snap = m.region.snapshot(off, len);
        for (int i = 0; i < snap.pages(); i++) {
            if (!m.freed[(int) (first + i)] && !snap.residentOn(i, node)) {
                throw new Mismatch("a prefetch of [" + off + ", +" + len + ") of " + m + " to node " + node + " returned, but page "
                        + (first + i) + " is not on that node: " + snap.describe(i));
            }
        }
    }

    /**
     * After a plain prefetch ({@code prefetchPlainAsync}) that found a run, where
     * {@link #placementChecked} (the caller asks): the range's pages in consecutive frames of the
     * device, in page order, as a launch taking it as a plain argument needs them (the device's own
     * translations say where each is).
     */
    private void consecutiveAfterPlainPrefetch(Model m, long off, long len, int node) {
        long first = off / PAGE_BYTES;
        long pages = Math.ceilDiv(off + len, PAGE_BYTES) - first;
        long base = s.drivers[node].probeFrame(m.region.address() + first * PAGE_BYTES);
        for (long p = 0; p < pages; p++) {
            long f = s.drivers[node].probeFrame(m.region.address() + (first + p) * PAGE_BYTES);
            if (base < 0 || f != base + p) {
                throw new Mismatch("a plain prefetch of [" + off + ", +" + len + ") of " + m + " to node " + node
                        + " returned, but page " + (first + p) + " is in frame " + f + ", not " + (base < 0 ? "a frame" : base + p)
                        + " after page " + first + "'s " + base);
            }
        }
    }

    /** Where a prefetch's pages are checked after it ({@link #residentAfterPrefetch} says why so). */
    private boolean placementChecked(Model m, int node) {
        boolean roomy = 2L * StressRun.MAX_LIVE * MAX_REGION <= config.deviceBytes();
        return config.workers() == 1 && (node == 0 || (roomy && !config.thrashControl() && !m.accessedByAdvised));
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
            default -> Math.min(size, PAGE_BYTES * (1 + st.y() % Math.max(1, max / PAGE_BYTES)));
        };
        long off = StressRun.offset(st, size - len + 1);
        if ((st.z() & 4) != 0) {
            off &= -PAGE_BYTES;
        }
        return new long[] {off, len};
    }

    private void doStep(Step st) {
        Model m = mine(st) ? pick(st) : pickAny(st);
        switch (st.op()) {
            case ALLOCATE -> {
                if (live.size() >= MAX_LIVE) {
                    return;
                }
                long size = (st.z() & 1) == 0 ? PAGE_BYTES * (1 + st.x() % (MAX_REGION / PAGE_BYTES)) : 1 + st.x() % MAX_REGION;
                long granule = new long[] {PAGE_BYTES, 64L << 10, 2L << 20}[st.a() % 3];
                Region r = s.mem.allocate(size, granule);
                Model nm = new Model(r, new byte[(int) size], id, config.hostFaults());
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
                // a view wider than what is written, in some steps: the bytes of the view left
                // unwritten keep their values (Access.WRITE's contract), and a READ_WRITE view
                // reads the model's bytes before the write
                boolean wide = !plain && (st.z() & (1L << 11)) != 0;
                long size = m.region.size();
                long viewOff = wide ? Math.max(0, rg[0] - (st.y() >>> 20) % 6000) : rg[0];
                long viewEnd = wide ? Math.min(size, rg[0] + rg[1] + (st.y() >>> 33) % 6000) : rg[0] + rg[1];
                Access access = wide && (st.z() & (1L << 12)) != 0 ? Access.READ_WRITE : Access.WRITE;
                boolean refused = !plain && m.anyReadOnly(viewOff, viewEnd - viewOff);
                note((st.op() == Step.Op.HOST_WRITE ? "host write " : "native memset ") + m + " [" + rg[0] + ", +" + rg[1] + ")"
                        + (plain ? " (plain stores)" : "") + (wide ? " through a " + access + " view of [" + viewOff + ", "
                        + viewEnd + ")" : "") + (refused ? " refused: read-only" : ""));
                boolean done = writeChecked(refused, "a write view of " + m, () -> {
                    if (plain) {
                        store(m.region.segment().asSlice(rg[0], rg[1]), src, st.op());
                    } else {
                        try (HostView v = m.region.host(viewOff, viewEnd - viewOff, access)) {
                            if (access == Access.READ_WRITE) {
                                m.expect(v.segment().toArray(ValueLayout.JAVA_BYTE), viewOff, "a READ_WRITE view before its write");
                            }
                            MemorySegment part = v.segment().asSlice(rg[0] - viewOff, rg[1]);
                            store(part, src, st.op());
                        }
                    }
                });
                if (done) {
                    System.arraycopy(src, 0, m.bytes, (int) rg[0], src.length);
                    if (wide && (st.z() & (1L << 13)) != 0) {
                        m.expect(m.hostRead(viewOff, (int) (viewEnd - viewOff)), viewOff, "a read after a wide view's write");
                    }
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
                if (to == m && from / PAGE_BYTES <= (at + len - 1) / PAGE_BYTES && at / PAGE_BYTES <= (from + len - 1) / PAGE_BYTES) {
                    // a read view and a write view sharing a page of one region: the write may have to take
                    // the page from under this thread's own read pin (PinnedByCallerException, by design)
                    return;
                }
                nativeCopy(m, from, to, at, len);
            }
            case KERNEL_WRITE, KERNEL_READ, KERNEL_ATOMIC -> {
                KernelStep k = kernelStep(m, st);
                if (k == null) {
                    return;
                }
                try (SideAccesses beside = besideStep(m, k.offset(), k.length(), st)) {
                    if (st.op() == Step.Op.KERNEL_ATOMIC) {
                        atomics(m, k, beside != null);
                    } else {
                        kernelCopy(m, st, k);
                    }
                }
            }
            case SWEEP -> sweep(m, st);
            case SHARED -> sharedStep(st);
            case PAIR_SUMS -> pairSums(m, st);
            case FREE_PART -> freePart(m, st);
            case PREFETCH, PREFETCH_ASYNC -> {
                if (m == null) {
                    return;
                }
                long[] rg = range(m, st, 8L << 20);
                int node = node(st);
                // now and then placed as a plain argument (in consecutive frames), where one pointer spans the range
                boolean plain = st.op() == Step.Op.PREFETCH_ASYNC && node != 0 && ((st.y() >>> 40) & 1) != 0
                        && Math.ceilDiv(rg[0] + rg[1], PAGE_BYTES) - rg[0] / PAGE_BYTES <= s.drivers[node].contiguousFrames();
                note("prefetch" + (st.op() == Step.Op.PREFETCH_ASYNC ? plain ? " (async, plain)" : " (async)" : "") + " " + m
                        + " [" + rg[0] + ", +" + rg[1] + ") to node " + node);
                if (st.op() == Step.Op.PREFETCH) {
                    m.region.advise(rg[0], rg[1], Advice.prefetch(node));
                } else {
                    // the region's count of plain prefetches that found no run, read only where the check runs
                    // (statistics reconcile the region's pages with the host in userfaultfd mode)
                    boolean checkRun = plain && placementChecked(m, node);
                    long unplaced = checkRun ? m.region.stats().node(node).plainPrefetchesUnplaced() : 0;
                    try {
                        (plain ? s.mem.prefetchPlainAsync(m.region, rg[0], rg[1], node)
                                : s.mem.prefetchAsync(m.region, rg[0], rg[1], node)).join();
                    } catch (CompletionException e) {
                        throw e.getCause() instanceof RuntimeException re ? re : e;
                    }
                    // unless it found no run at all and was prefetched as an ordinary one (counted)
                    if (checkRun && m.region.stats().node(node).plainPrefetchesUnplaced() == unplaced) {
                        consecutiveAfterPlainPrefetch(m, rg[0], rg[1], node);
                    }
                }
                residentAfterPrefetch(m, rg[0], rg[1], node);
            }
            case PREFETCH_LIST -> {
                if (m == null) {
                    return;
                }
                // now and then a long list, whose batches run on several threads at once (MigrationEngine.ensureEach)
                boolean many = ((st.y() >>> 32) & 1) != 0;
                long len = 1 + st.y() % Math.min(m.region.size(), many ? 256L << 10 : 64L << 10);
                long[] offs = new long[1 + (many ? (int) ((st.y() >>> 33) % 64) : st.b() % 8)];
                for (int i = 0; i < offs.length; i++) {
                    offs[i] = Math.floorMod(st.x() + i * st.z(), m.region.size() - len + 1);
                }
                int node = node(st);
                note("prefetch " + offs.length + " ranges of " + len + " bytes of " + m + " to node " + node);
                s.mem.prefetch(m.region, offs, len, node);
                for (long off : offs) {
                    residentAfterPrefetch(m, off, len, node);
                }
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
                    default -> Advice.granularity(new long[] {PAGE_BYTES, 64L << 10, 2L << 20}[st.b() % 3]);
                };
                note("advise " + a + " on " + m + " [" + rg[0] + ", +" + rg[1] + ")");
                if (st.op() == Step.Op.ACCESSED_BY) {
                    m.accessedByAdvised = true;   // before the call: one that fails may have set it on some pages
                }
                if (a instanceof Advice.Granularity(long g)) {
                    // refused when its granules, aligned, would hold a freed page (a fault would bring it back):
                    // with one worker the model says when; with several, another worker frees parts of its own
                    // regions meanwhile, and a refusal naming a freed page is all that can be checked
                    long size = m.region.size();
                    long reachFrom = rg[0] & -g;
                    long reachTo = Math.min(size, Math.ceilDiv(rg[0] + rg[1], g) * g);
                    boolean reachesFreed = m.anyFreed(reachFrom, reachTo - reachFrom);
                    try {
                        m.region.advise(rg[0], rg[1], a);
                    } catch (IllegalArgumentException refused) {
                        if (!String.valueOf(refused.getMessage()).contains("would reach the freed page")
                                || (config.workers() == 1 && !reachesFreed)) {
                            throw refused;
                        }
                        note("  refused: " + refused.getMessage());
                        return;
                    }
                    if (config.workers() == 1 && reachesFreed) {
                        throw new Mismatch("granularity " + g + " over [" + rg[0] + ", +" + rg[1] + ") of " + m
                                + " was accepted although its granules hold a freed page");
                    }
                    return;
                }
                m.region.advise(rg[0], rg[1], a);
            }
            case DONT_NEED -> {
                if (m == null) {
                    return;
                }
                long[] rg = range(m, st, 1L << 20);
                note("advise DONT_NEED " + m + " [" + rg[0] + ", +" + rg[1] + ")");
                try (SideAccesses beside = besideStep(m, rg[0], rg[1], st)) {
                    m.region.advise(rg[0], rg[1], Advice.dontNeed());
                }
                long first = Math.ceilDiv(rg[0], PAGE_BYTES) * PAGE_BYTES;
                long end = rg[0] + rg[1] == m.region.size() ? rg[0] + rg[1] : (rg[0] + rg[1]) / PAGE_BYTES * PAGE_BYTES;
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
                for (long p = rg[0] / PAGE_BYTES; p < Math.ceilDiv(rg[0] + rg[1], PAGE_BYTES); p++) {
                    m.readOnly[(int) p] = ro;
                }
            }
            case TRIM -> {
                note("trim host");
                s.mem.trimHost();
            }
            case RELEASE -> {
                int node = device(st);
                note("release node " + node);
                s.mem.release(node);
                if (config.workers() == 1) {
                    // nothing else runs, so no kernel pins a page: the device holds none of any live region
                    // (it kept read-only duplicates of pages the host held too, until this round)
                    for (Model held : live) {
                        long on = held.region.snapshot(0, held.region.size()).countOn(node);
                        if (on != 0) {
                            throw new Mismatch("release of node " + node + " left " + on + " pages of " + held + " on it");
                        }
                    }
                }
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
                switch ((st.b() >>> 1) % 4) {
                    case 0, 1 -> {
                        // an allocation, a copy, or (one in four, where the kind injects it) a kernel run
                        boolean launch = ((st.x() >>> 40) & 3) == 0;
                        boolean alloc = (st.b() & 1) == 0;
                        note("inject " + (launch ? "a launch" : alloc ? "an allocation" : "a copy") + " failure on node " + node
                                + " after " + (launch ? after % 4 : after));
                        if (launch) {
                            s.kinds[node].failExecute(s.drivers[node], after % 4);
                        } else if (alloc) {
                            s.kinds[node].failAllocation(s.drivers[node], after);
                        } else {
                            s.kinds[node].failCopy(s.drivers[node], after);
                        }
                    }
                    case 2 -> {
                        // a fragmented device: runs this long or longer are refused until allowed again
                        int pages = 2 + (int) (st.x() % 255);
                        note("inject: node " + node + " refuses runs of " + pages + " frames or more");
                        s.kinds[node].refuseRunsOfAtLeast(s.drivers[node], pages);
                    }
                    default -> {
                        note("inject: node " + node + " backs runs of any length again");
                        s.kinds[node].refuseRunsOfAtLeast(s.drivers[node], 0);
                    }
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

    /**
     * Writes {@code src} into {@code target} by Java stores or by native {@code memset}. The segment
     * itself goes to the native call, never its bare address, as a careful user's native code gets
     * it: the call then holds the segment's scope, and a free or a close of the memory racing it
     * waits for it (a bare address let the close unmap the region under the running memset, and
     * the JVM died; found by the stress program's close race).
     */
    private void store(MemorySegment target, byte[] src, Step.Op op) {
        if (op == Step.Op.HOST_WRITE) {
            MemorySegment.copy(src, 0, target, ValueLayout.JAVA_BYTE, 0, src.length);
            return;
        }
        try {
            MemorySegment unused = (MemorySegment) MEMSET.invokeExact(target, (int) src[0], (long) src.length);
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
                move(to.region.segment().asSlice(toOff, len), from.region.segment().asSlice(fromOff, len), len);
            } else {
                try (HostView src = from.region.host(fromOff, len, Access.READ);
                     HostView dst = to.region.host(toOff, len, Access.WRITE)) {
                    move(dst.segment(), src.segment(), len);
                }
            }
        });
        if (done) {
            System.arraycopy(from.bytes, (int) fromOff, to.bytes, (int) toOff, (int) len);
        }
    }

    /**
     * One launch adding a delta to every long of a region (in userfaultfd mode sometimes all but its
     * last pages, touched by host code meanwhile), which on a small device is several times
     * the device: tiled by per-item windows, or run by device faults. A failure injected part-way
     * leaves each long either old or added to; the model takes the memory's bytes then, after
     * checking exactly that.
     */
    private void sweep(Model m, Step st) {
        if (m == null || m.region.size() < 8) {
            return;
        }
        // in userfaultfd mode, half of the sweeps leave up to 2 MiB at the region's end alone, and host code
        // touches those pages meanwhile (besideStep): the faults take in granules the launch is faulting in
        boolean part = config.hostFaults() == HostFaultMode.USERFAULTFD && ((st.y() >>> 43) & 1) != 0
                && m.region.size() >= 16;
        long longs = m.region.size() / 8 - (part ? 1 + (st.x() >>> 24) % Math.min(m.region.size() / 8 - 1, BESIDE / 8) : 0);
        int node = device(st);
        long delta = 1 + (st.y() & 0xFF);
        if (part && ((st.y() >>> 44) & 1) != 0 && sweepButLastPages(m, st, node, delta)) {
            return;
        }
        boolean windows = (st.a() & 1) == 0;
        boolean plain = (st.a() & 2) != 0;   // a plain pointer: placed in consecutive frames, tiles see ids from 0
        boolean refused = m.anyReadOnly(0, longs * 8);
        long pages = Math.ceilDiv(longs * 8, PAGE_BYTES);
        boolean unsupported = !windows && (plain && pages > s.drivers[node].contiguousFrames()
                || (plain || !s.drivers[node].takesDeviceFaults()) && pages > s.drivers[node].memoryBytes() / PAGE_BYTES);
        note("sweep node " + node + " " + m + (part ? " [0, +" + longs * 8 + ")" : "") + " += " + delta
                + (windows ? " with per-item windows" : " with no hint") + (plain ? ", plain"  : "")
                + (refused ? " refused: read-only" : "") + (unsupported ? " refused: no windows, no device faults" : ""));
        byte[] before = Arrays.copyOf(m.bytes, (int) (longs * 8));
        SideAccesses beside = part ? besideStep(m, 0, longs * 8, st) : null;
        ItemsRun ran = new ItemsRun(longs);
        if (config.inject() && !plain && !refused && !unsupported && s.kinds[node].throwsAtItems()
                && ((st.y() >>> 50) & 7) == 0) {
            // the kernel itself throws part-way (kinds whose kernels record their items: the emulated one). Not in
            // a sweep the model says is refused: a launch that ran anyway must fail as such, not as injected
            long at = (st.x() >>> 3) % longs;
            note("  its item " + at + " throws (injected)");
            ran.failAt(at);
        }
        try {
            if (!writeChecked(refused, "a sweep over " + m, () -> s.kinds[node].addToEach(s.mem, node, m.region, longs, delta,
                    windows, plain, ran))) {
                return;
            }
        } catch (dev.hetmem.driver.DeviceMemoryException e) {
            if (unsupported && String.valueOf(e.getMessage()).contains("KernelArg.perItem")) {
                return;   // refused at once, as documented: nothing ran
            }
            if (takenInterrupt(e) | injected(e)) {   // not ||: the flag is taken before any read back
                adoptPartialSweep(m, before, longs, delta, windows, ran);
            }
            throw e;
        } catch (RuntimeException e) {
            if (takenInterrupt(e) | injected(e)) {
                adoptPartialSweep(m, before, longs, delta, windows, ran);
            }
            throw e;
        } finally {
            if (beside != null) {
                beside.close();   // a wrong read beside it is what the step is failed for, even one that failed itself
            }
        }
        if (unsupported) {
            throw new Mismatch("a sweep larger than a device that takes no faults, with no windows, ran");
        }
        ByteBuffer model = ByteBuffer.wrap(m.bytes).order(ByteOrder.LITTLE_ENDIAN);
        for (long i = 0; i < longs; i++) {
            model.putLong((int) (8 * i), model.getLong((int) (8 * i)) + delta);
        }
    }

    /**
     * After an injected failure in a sweep: the items that ran are a prefix of the item order (tiles
     * run one after another), or, where the device faulted pages in, a prefix of each chunk of
     * consecutive items a compute thread took ({@link EmulatedDevice#itemsPerChunk}, with the two
     * threads of {@link EmulatedStressDevices}; a chunk runs in order on one thread, and a failed
     * item leaves the rest of its chunk unrun). Every long is then old or old + delta in that shape,
     * and the model takes what is there. A lost store shows as a long left old after one that was
     * added to, inside one chunk.
     */
    private void adoptPartialSweep(Model m, byte[] before, long longs, long delta, boolean windows, ItemsRun ran) {
        byte[] got = readAfterFailure(m, (int) (longs * 8));
        try {
            checkPartialSweep(m, got, before, longs, delta, windows, ran);
        } catch (ReadBackMismatch e) {
            throw unlessFreed(m, got, e);
        }
    }

    /** A wrong long found reading a region back after a failed step, and where it is (a byte offset in what was read). */
    private static final class ReadBackMismatch extends Mismatch {
        final long at;

        ReadBackMismatch(String message, long at) {
            super(message);
            this.at = at;
        }
    }

    /**
     * What a read back found wrong, or a refusal for a freed region where, as {@link Model#expect}
     * takes it, the region was freed meanwhile (the memory closed under the workers) in userfaultfd
     * mode and the page of the wrong long read all zeros: a killed region's view reads so, and the
     * read met the free rather than lost bytes. A wrong value other than zeros is a loss whatever
     * happened to the region after it.
     */
    private static RuntimeException unlessFreed(Model m, byte[] got, ReadBackMismatch e) {
        int page = (int) (e.at / PAGE_BYTES * PAGE_BYTES);
        if (m.mode != HostFaultMode.USERFAULTFD || !m.readZerosOfAFree(got, page, (int) Math.min(got.length, page + PAGE_BYTES))) {
            return e;
        }
        IllegalStateException freed = new IllegalStateException(m + " was freed while it was read back after a failed step "
                + "(zeros at byte " + e.at + ")");
        freed.addSuppressed(e);
        return freed;
    }

    private void checkPartialSweep(Model m, byte[] got, byte[] before, long longs, long delta, boolean windows, ItemsRun ran) {
        ByteBuffer was = ByteBuffer.wrap(before).order(ByteOrder.LITTLE_ENDIAN);
        ByteBuffer now = ByteBuffer.wrap(got).order(ByteOrder.LITTLE_ENDIAN);
        if (ran.isRecording()) {
            // the kernel marked every item whose store was done: each long is exactly what its item left
            for (long i = 0; i < longs; i++) {
                long w = was.getLong((int) (8 * i));
                long n = now.getLong((int) (8 * i));
                long want = ran.ran(i) ? w + delta : w;
                if (n != want) {
                    throw new ReadBackMismatch("after a sweep that failed part-way, long " + i + " of " + m + " is " + n + " where its item "
                            + (ran.ran(i) ? "finished, having stored " + want + (n == w ? ": the store was lost" : "")
                            : "never finished, so it holds its old value " + w), 8 * i);
                }
            }
            System.arraycopy(got, 0, m.bytes, 0, got.length);
            return;
        }
        long per = windows ? Math.max(1, longs) : EmulatedDevice.itemsPerChunk(longs, EmulatedStressDevices.COMPUTE_THREADS);
        for (long i = 0; i < longs; i++) {
            long w = was.getLong((int) (8 * i));
            long n = now.getLong((int) (8 * i));
            if (n != w && n != w + delta) {
                throw new ReadBackMismatch("after a sweep that failed part-way, long " + i + " of " + m + " is " + n
                        + ": neither its old value " + w + " nor that plus " + delta, 8 * i);
            }
            boolean added = n != w || delta == 0;
            if (added && i % per != 0) {
                long p = i - 1;
                boolean prevAdded = now.getLong((int) (8 * p)) != was.getLong((int) (8 * p));
                if (!prevAdded) {
                    long start = p;
                    long chunkStart = (i / per) * per;
                    boolean zeros = true;
                    while (start > chunkStart && now.getLong((int) (8 * (start - 1))) == was.getLong((int) (8 * (start - 1)))) {
                        start--;
                    }
                    for (long q = start; q <= p; q++) {
                        zeros &= was.getLong((int) (8 * q)) == 0;
                    }
                    long addedBefore = 0;
                    for (long q = chunkStart; q < i; q++) {
                        addedBefore += now.getLong((int) (8 * q)) != was.getLong((int) (8 * q)) ? 1 : 0;
                    }
                    throw new ReadBackMismatch("after a sweep that failed part-way, long " + i + " of " + m + " was added to but long "
                            + p + " before it, in the same chunk of the items, was not: a store was lost [not added: longs "
                            + start + ".." + p + " (" + (p - start + 1) + " longs, byte " + 8 * start + ", page offset "
                            + (8 * start) % 4096 + ", old values all zero: " + zeros + "); added before it in the chunk: " + addedBefore
                            + " of " + (i - chunkStart) + "; chunk starts at long " + chunkStart + "]", 8 * p);
                }
            }
        }
        System.arraycopy(got, 0, m.bytes, 0, got.length);
    }

    /**
     * A sweep of m's first granules but the last page of each ({@link StressDevices#addToEachButLastPages}),
     * while host code reads (and for half of them stores into) those last pages: each host fault
     * brings in a granule whose other pages the launch is bringing to the device, or using, right
     * then. Returns false, having launched nothing, where it does not apply (granules of a page, a
     * read-only or freed page there, a device kind that makes no such launch).
     */
    private boolean sweepButLastPages(Model m, Step st, int node, long delta) {
        long granule = m.region.granularity(0);
        if (granule < 2 * PAGE_BYTES) {
            return false;   // no page of a granule would be left out
        }
        // arguments larger than the device run by device faults; else they take at most a quarter of it, as the
        // other kernel steps' do: they run resident, pinned, beside other workers' kernels (a resident launch
        // of nearly the whole device failed for want of room in 11 of 40 runs of one configuration)
        int granules = (int) Math.min(64, m.region.size() / granule);
        if ((long) granules * (granule - PAGE_BYTES) <= config.deviceBytes()) {
            granules = (int) Math.min(granules, config.deviceBytes() / 4 / (granule - PAGE_BYTES));
        }
        long bytes = granules * granule;
        if (granules == 0 || m.anyReadOnly(0, bytes) || m.anyFreed(0, bytes)) {
            return false;
        }
        long gap = granule / PAGE_BYTES;
        boolean stores = ((st.y() >>> 42) & 1) != 0;
        note("sweep node " + node + " " + m + " += " + delta + ", " + granules + " granules of " + granule
                + " bytes but the last page of each, host reads" + (stores ? " and stores" : "") + " of those meanwhile");
        byte[] before = Arrays.copyOf(m.bytes, (int) bytes);
        MemorySegment view = m.region.segment();
        java.util.function.LongPredicate last = p -> p % gap == gap - 1;
        SideAccesses beside = new SideAccesses(() -> view, m.region::isFreed, 0, bytes, last, SideAccesses.model(m.bytes),
                stores ? m.bytes : null, last, st.x() ^ st.z());
        boolean ran;
        ItemsRun items = new ItemsRun((granule - PAGE_BYTES) / 8 * granules);
        try {
            ran = s.kinds[node].addToEachButLastPages(s.mem, node, m.region, granule, granules, delta, items);
        } catch (RuntimeException e) {
            beside.close();   // first: a wrong access beside it fails the step, and no thread changes the model after
            if (takenInterrupt(e) | injected(e)) {
                adoptPartialButLastPages(m, before, granule, granules, delta, items);
            }
            throw e;
        }
        beside.close();
        if (ran) {
            ByteBuffer model = ByteBuffer.wrap(m.bytes).order(ByteOrder.LITTLE_ENDIAN);
            for (int j = 0; j < granules; j++) {
                for (long at = j * granule; at < (j + 1) * granule - PAGE_BYTES; at += 8) {
                    model.putLong((int) at, model.getLong((int) at) + delta);
                }
            }
        }
        return ran;
    }

    /** m's first {@code bytes} bytes, read after an injected failure (the read may meet the next one). */
    private static byte[] readAfterFailure(Model m, int bytes) {
        for (int attempt = 0; ; attempt++) {
            try {
                return m.hostRead(0, bytes);
            } catch (RuntimeException e) {
                if (!injected(e) || attempt == 8) {
                    throw e;
                }
                // the read itself met the next injected failure (a countdown that fires once): read again
            }
        }
    }

    /**
     * After an injected failure in {@link #sweepButLastPages}: every long of the arguments is old or
     * old + delta, every last page as the model says (its host stores included); the model takes
     * what is there.
     */
    private void adoptPartialButLastPages(Model m, byte[] before, long granule, int granules, long delta, ItemsRun items) {
        byte[] got = readAfterFailure(m, (int) (granules * granule));
        try {
            checkPartialButLastPages(m, got, before, granule, delta, items);
        } catch (ReadBackMismatch e) {
            throw unlessFreed(m, got, e);
        }
    }

    private void checkPartialButLastPages(Model m, byte[] got, byte[] before, long granule, long delta, ItemsRun items) {
        ByteBuffer was = ByteBuffer.wrap(before).order(ByteOrder.LITTLE_ENDIAN);
        ByteBuffer now = ByteBuffer.wrap(got).order(ByteOrder.LITTLE_ENDIAN);
        ByteBuffer model = ByteBuffer.wrap(m.bytes).order(ByteOrder.LITTLE_ENDIAN);
        long perArg = (granule - PAGE_BYTES) / 8;
        for (long at = 0; at < got.length; at += 8) {
            boolean inArgument = at % granule < granule - PAGE_BYTES;
            long n = now.getLong((int) at);
            long w = inArgument ? was.getLong((int) at) : model.getLong((int) at);
            if (inArgument && items.isRecording()) {
                // exact: the kernel marked each item whose store was done (item = granule * perArg + long in it)
                boolean done = items.ran(at / granule * perArg + at % granule / 8);
                if (n != (done ? w + delta : w)) {
                    throw new ReadBackMismatch("after a sweep but last pages that failed part-way, long at byte " + at + " of " + m
                            + " is " + n + " where its item " + (done ? "finished, having stored " + (w + delta)
                            + (n == w ? ": the store was lost" : "") : "never finished, so it holds its old value " + w), at);
                }
                continue;
            }
            if (n != w && !(inArgument && n == w + delta)) {
                throw new ReadBackMismatch("after a sweep but last pages that failed part-way, long at byte " + at + " of " + m
                        + " is " + n + ": " + (inArgument ? "neither its old value " + w + " nor that plus " + delta
                        : "a last page, which the model says holds " + w), at);
            }
        }
        System.arraycopy(got, 0, m.bytes, 0, got.length);
    }

    /** How far from a step's pages the reads beside it go: a granule either side, of the largest granule. */
    private static final long BESIDE = 2L << 20;

    /**
     * In userfaultfd mode, for about half of the steps: host reads of m's pages within
     * {@link #BESIDE} of [off, off+len) and outside it, while the step runs ({@link SideAccesses}),
     * for half of those with stores into the pages that are not read-only too; null otherwise.
     * Those pages keep the model's bytes and the stores: the step leaves them alone.
     */
    private SideAccesses besideStep(Model m, long off, long len, Step st) {
        if (config.hostFaults() != HostFaultMode.USERFAULTFD || ((st.y() >>> 41) & 1) == 0) {
            return null;
        }
        long first = off / PAGE_BYTES;
        long end = Math.ceilDiv(off + len, PAGE_BYTES);
        boolean stores = ((st.y() >>> 42) & 1) != 0;
        note("  host reads" + (stores ? " and stores" : "") + " beside it");
        MemorySegment view = m.region.segment();
        java.util.function.LongPredicate beside = p -> (p < first || p >= end) && !m.freed[(int) p];
        return new SideAccesses(() -> view, m.region::isFreed, Math.max(0, off - BESIDE), Math.min(m.region.size(), off + len + BESIDE),
                beside, SideAccesses.model(m.bytes), stores ? m.bytes : null, p -> beside.test(p) && !m.readOnly[(int) p],
                st.x() ^ st.z());
    }

    /** Where a kernel step runs: bytes [offset, offset+length) of its region, on device {@code node}. */
    private record KernelStep(long offset, long length, int node) {}

    /** The kernel step of m ({@link Model#kernelRange}, the step's device), or null when there is none. */
    private KernelStep kernelStep(Model m, Step st) {
        long[] rg = m == null ? null : m.kernelRange(st, config.deviceBytes());
        return rg == null ? null : new KernelStep(rg[0], rg[1], device(st));
    }

    /** Frees a granule-aligned part of m (never all of it: FREE does that). */
    private void freePart(Model m, Step st) {
        if (m == null) {
            return;
        }
        long size = m.region.size();
        long at = st.x() % size;
        if (m.anyFreed(at, 1)) {
            return;   // the region's granularity there is not knowable any more, nor needed
        }
        // other workers may change the granularity of this region at any time (GRANULARITY advice
        // is not only its owner's): with more than one worker, whole 2 MiB, which any granule divides
        long granule = config.workers() == 1 ? m.region.granularity(at) : 2L << 20;
        long off = at & -granule;
        long len = Math.min(size - off, granule * (1 + st.y() % 4));
        long end = off + len;
        boolean aligned = end == size || (!m.anyFreed(end - 1, 1)
                && end % (config.workers() == 1 ? m.region.granularity(end - 1) : granule) == 0);
        if (len == size || !aligned || m.anyFreed(off, len)) {
            return;   // refusals of those are the unit tests' business
        }
        note("free part " + m + " [" + off + ", +" + len + ")");
        try {
            m.region.free(off, len);
        } catch (IllegalArgumentException split) {
            note("  refused: " + split.getMessage());   // an edge splits a neighbour's granule
            return;
        }
        for (long p = off / PAGE_BYTES; p < Math.ceilDiv(end, PAGE_BYTES); p++) {
            m.freed[(int) p] = true;
            m.readOnly[(int) p] = false;
        }
        Arrays.fill(m.bytes, (int) off, (int) end, (byte) 0);
    }

    /**
     * A stencil over all of m: item i writes long i plus long i + 1 into a new region, through plain
     * windows that overlap, so that neighbouring tiles of a launch larger than the device share a page
     * (placed anew for the next tile while the running one still reads it); the sums are checked
     * against the model. m itself does not change.
     */
    private void pairSums(Model m, Step st) {
        if (m == null || m.region.size() < 16 || m.anyFreed(0, m.region.size())) {
            return;
        }
        long longs = m.region.size() / 8;
        long pages = 2 * Math.ceilDiv(longs * 8, PAGE_BYTES);
        long devicePages = config.deviceBytes() / PAGE_BYTES;
        if (pages <= devicePages && pages > devicePages / 4) {
            // a launch that fits runs as one batch, its two plain arguments each in one run of frames: on a
            // device shared by four workers' kernels, as much as fits may find no such run free (a clear
            // failure, as for the other kernel steps, which keep to a quarter of the device for it)
            return;
        }
        int node = device(st);
        note("pair sums node " + node + " " + m + " (" + longs + " longs, plain windows sharing pages"
                + (pages > devicePages ? ", tiled" : "") + ")");
        Region out = s.mem.allocate((longs - 1) * 8);
        try {
            s.kinds[node].pairSums(s.mem, node, m.region, out, longs);
            ByteBuffer model = ByteBuffer.wrap(m.bytes).order(ByteOrder.LITTLE_ENDIAN);
            ByteBuffer got = ByteBuffer.wrap(new Model(out, new byte[0], -1, m.mode).hostRead(0, (int) ((longs - 1) * 8)))
                    .order(ByteOrder.LITTLE_ENDIAN);
            for (long i = 0; i < longs - 1; i++) {
                long want = model.getLong((int) (8 * i)) + model.getLong((int) (8 * i + 8));
                if (got.getLong((int) (8 * i)) != want) {
                    throw new Mismatch("pair sums on node " + node + ": long " + i + " is " + got.getLong((int) (8 * i))
                            + ", the model says " + want + " (longs " + i + " and " + (i + 1) + " of " + m + ")");
                }
            }
        } finally {
            out.free();
        }
    }

    /**
     * A step on one of this worker's slices of the shared region ({@link Step.Op#SHARED}): a host
     * write or read, a kernel's, a discard, a protection change or (rarely) a free of the slice.
     * The other workers write, discard, protect and free their slices of the same granules
     * meanwhile, by host views or plain stores and by kernels on any device, and move and advise
     * the region; this worker's bytes (and protections) must stay its own.
     */
    private void sharedStep(Step st) {
        if (shared == null) {
            return;
        }
        Model m = shared;
        int workers = config.workers();
        // host views mode, every other seed: slices of 1 KiB, four workers' in a page, so that their views and
        // kernels on several devices write the same pages and each move must carry the others' bytes (not in
        // userfaultfd mode, where a plain store to a page a running kernel uses loses that kernel's later
        // stores to it, as documented)
        long slice = config.hostFaults() == HostFaultMode.HOST_VIEWS && Math.floorMod(config.seed() / 3, 2L) == 1
                ? 1L << 10 : SLICE;
        long mine = (m.region.size() / slice - id + workers - 1) / workers;
        if (mine <= 0) {
            return;
        }
        long off = (id + workers * (st.x() % mine)) * slice;
        if (m.anyFreed(off, slice)) {
            return;   // this worker freed the slice (its pages refuse every use now)
        }
        int kind = Math.floorMod(st.b(), 7);
        if (kind >= 4 && kind <= 6 && slice < PAGE_BYTES) {
            return;   // discards, protection changes and frees act on whole pages: a page holds other workers' slices
        }
        switch (kind) {
            case 0 -> {
                long from = off + st.y() % slice;
                long len = 1 + (st.y() >>> 20) % (off + slice - from);
                byte[] src = new byte[(int) len];
                data.nextBytes(src);
                boolean plain = config.hostFaults() == HostFaultMode.USERFAULTFD;
                boolean refused = !plain && m.anyReadOnly(from, len);
                note("shared: host write " + m + " [" + from + ", +" + len + ")" + (plain ? " (plain stores)" : "")
                        + (refused ? " refused: read-only" : ""));
                if (writeChecked(refused, "a write view of the shared " + m, () -> {
                    if (plain) {
                        MemorySegment.copy(src, 0, m.region.segment(), ValueLayout.JAVA_BYTE, from, src.length);
                    } else {
                        try (HostView v = m.region.host(from, len, Access.WRITE)) {
                            MemorySegment.copy(src, 0, v.segment(), ValueLayout.JAVA_BYTE, 0, src.length);
                        }
                    }
                })) {
                    System.arraycopy(src, 0, m.bytes, (int) from, src.length);
                }
            }
            case 1 -> {
                note("shared: host read " + m + " [" + off + ", +" + slice + ")");
                m.expect(m.hostRead(off, (int) slice), off, "a host read of this worker's slice of the shared region");
            }
            case 4 -> {
                // discarded while the other workers' kernels and views use pages of the same blocks and granules
                note("shared: advise DONT_NEED " + m + " [" + off + ", +" + slice + ")");
                m.region.advise(off, slice, Advice.dontNeed());
                Arrays.fill(m.bytes, (int) off, (int) (off + slice), (byte) 0);
            }
            case 5 -> {
                // protected while the others write their own pages of the same blocks, by kernels and views
                boolean ro = (st.b() >>> 8 & 1) == 0;
                note("shared: protect " + m + " [" + off + ", +" + slice + ") " + (ro ? "read-only" : "read-write"));
                m.region.protect(off, slice, ro ? dev.hetmem.Protection.READ_ONLY : dev.hetmem.Protection.READ_WRITE);
                for (long p = off / PAGE_BYTES; p < (off + slice) / PAGE_BYTES; p++) {
                    m.readOnly[(int) p] = ro;
                }
            }
            case 6 -> {
                if ((st.y() & 7) != 0) {
                    return;   // rarely: a freed slice is gone for the rest of the run
                }
                // a partial free beside the other workers' kernels, views and moves over the same blocks
                note("shared: free part " + m + " [" + off + ", +" + slice + ")");
                try {
                    m.region.free(off, slice);
                } catch (IllegalArgumentException split) {
                    if (!String.valueOf(split.getMessage()).contains("granule")) {
                        throw split;
                    }
                    note("  refused: " + split.getMessage());   // the region's granule is larger than a slice
                    return;
                }
                for (long p = off / PAGE_BYTES; p < (off + slice) / PAGE_BYTES; p++) {
                    m.freed[(int) p] = true;
                    m.readOnly[(int) p] = false;
                }
                Arrays.fill(m.bytes, (int) off, (int) (off + slice), (byte) 0);
            }
            default -> kernelCopy(m, new Step(kind == 2 ? Step.Op.KERNEL_WRITE : Step.Op.KERNEL_READ, st.a(), st.b(),
                    st.x(), st.y(), st.z()), new KernelStep(off, slice, device(st)));
        }
    }

    /**
     * A kernel writes random bytes into k's range of m, or reads it back and checks it; in one step of
     * two, only part of the range (an argument that starts and ends inside pages).
     */
    private void kernelCopy(Model m, Step st, KernelStep k) {
        boolean plain = (st.z() & 1) != 0;   // a plain pointer: the range placed in consecutive frames
        long lo = 0;
        long hi = k.length();
        if ((st.z() >>> 20 & 1) != 0 && k.length() >= 256) {
            // an argument of part of the pages, to the long (the OpenCL kernels copy longs): it starts and
            // ends inside pages whose other bytes a write must leave as they were, wherever the pages go.
            // A plain pointer starts at a multiple of 128 bytes, as OpenCL devices want their buffers to
            // (CL_DEVICE_MEM_BASE_ADDR_ALIGN; hetmem refuses other starts there)
            long unit = plain ? 128 : 8;
            lo = unit * ((st.x() >>> 7) % (k.length() / unit));
            hi = lo + 8 * (1 + (st.y() >>> 11) % ((k.length() - lo) / 8));
        }
        long off = k.offset() + lo;
        long len = hi - lo;
        int node = k.node();
        try (Arena arena = Arena.ofShared()) {   // kernels read and write it on the device's threads
            MemorySegment buf = arena.allocate(len, 64);
            if (st.op() == Step.Op.KERNEL_WRITE) {
                byte[] src = new byte[(int) len];
                data.nextBytes(src);
                MemorySegment.copy(src, 0, buf, ValueLayout.JAVA_BYTE, 0, src.length);
                boolean refused = m.anyReadOnly(off, len);
                note("kernel write node " + node + (plain ? " plain " : " ") + m + " [" + off + ", +" + len + ")"
                        + (refused ? " refused: read-only" : ""));
                if (writeChecked(refused, "a kernel writing " + m,
                        () -> s.kinds[node].write(s.mem, node, m.region, off, buf, len, plain))) {
                    System.arraycopy(src, 0, m.bytes, (int) off, src.length);
                }
            } else {
                note("kernel read node " + node + (plain ? " plain " : " ") + m + " [" + off + ", +" + len + ")");
                s.kinds[node].read(s.mem, node, m.region, off, buf, len, plain);
                m.expect(buf.toArray(ValueLayout.JAVA_BYTE), off, "kernel read on node " + node);
            }
        }
    }

    /**
     * Device atomics over k's range of m, taken exclusively; each int (little-endian) gains 1.
     * {@code readsBeside}: host code reads pages beside the range meanwhile ({@link SideAccesses}),
     * whose faults take their granules home, exclusive pages with them (a steal by the fault
     * service ends exclusivity, as a host touch does): then the range need not stay exclusive.
     */
    private void atomics(Model m, KernelStep k, boolean readsBeside) {
        long off = k.offset();
        long len = k.length();
        int node = k.node();
        boolean refused = m.anyReadOnly(off, len);
        note("atomics node " + node + " " + m + " [" + off + ", +" + len + ")" + (refused ? " refused: read-only" : ""));
        if (!writeChecked(refused, "exclusive atomics on " + m,
                () -> s.kinds[node].incrementIntsExclusively(s.mem, node, m.region, off, len))) {
            return;
        }
        java.nio.ByteBuffer ints = java.nio.ByteBuffer.wrap(m.bytes).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        for (long b = off; b < off + len; b += 4) {
            ints.putInt((int) b, ints.getInt((int) b) + 1);
        }
        if (config.workers() == 1 && !readsBeside && !m.region.isExclusive(off, len, node)) {
            // with one worker nothing runs between the launch and this question
            throw new Mismatch("atomics on node " + node + " left " + m + " [" + off + ", +" + len + ") not exclusive to it");
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

    /** Native {@code memmove} between two segments, passed as segments (see {@link #store}). */
    private static void move(MemorySegment dst, MemorySegment src, long len) {
        try {
            MemorySegment unused = (MemorySegment) MEMMOVE.invokeExact(dst, src, len);
        } catch (Throwable t) {
            throw new IllegalStateException("memmove", t);
        }
    }

    /**
     * A load's options from a step's number: the loader's own scheme in five loads of eight, each
     * other scheme in an eighth; 1 to 4 streams; chunks of 4 to 64 KiB, so that a file of up to
     * 2 MiB takes up to 512 of them and several streams read at once (the defaults' 4 MiB chunk
     * read any such file in one); a device ring of one to four chunks, so that its buffers go round.
     */
    private static LoadOptions loadOptions(long z) {
        LoadScheme scheme = switch ((int) (z & 7)) {
            case 4 -> LoadScheme.BUFFERED;
            case 5 -> LoadScheme.DIRECT;
            case 6 -> LoadScheme.MMAP;
            default -> LoadScheme.OVERLAPPED;
        };
        long chunk = 4096L << ((z >>> 8) % 5);
        return LoadOptions.defaults().withScheme(scheme).withThreads(1 + (int) ((z >>> 4) & 3)).withChunkBytes(chunk)
                .withRingBytes(chunk * (1 + ((z >>> 12) & 3)));
    }

    /**
     * What a load's progress reports: each from a reading thread, each at most the file, the total
     * the file's size; at the end the largest is the whole file. The first thing wrong, kept for the
     * worker to report after the load (a listener that threw would fail the load instead).
     */
    private static final class LoadCheck implements LoadProgress {
        private final long size;
        private long largest;
        private String wrong;

        LoadCheck(long size) {
            this.size = size;
        }

        @Override
        public synchronized void progress(long bytesDone, long bytesTotal) {
            if (wrong == null && (bytesTotal != size || bytesDone < 1 || bytesDone > bytesTotal)) {
                wrong = "reported " + bytesDone + " of " + bytesTotal + " bytes";
            }
            largest = Math.max(largest, bytesDone);
        }

        synchronized String wrong() {
            return wrong != null ? wrong : largest != size ? "reached " + largest + " bytes, not the whole file" : null;
        }
    }

    /** The region of {@code size} bytes allocated after region {@code newest} (a load's), if exactly one is. */
    private MemorySegment loading(long newest, long size) {
        MemorySegment found = null;
        for (Region r : s.mem.regions()) {
            if (r.id() > newest && r.size() == size) {
                if (found != null) {
                    return null;   // another worker's of the same size: not knowable which
                }
                try {
                    found = r.segment();
                } catch (IllegalStateException gone) {
                    return null;   // freed meanwhile (the load failed)
                }
            }
        }
        return found;
    }

    private void load(Step st) {
        int size = (int) (1 + st.x() % (2L << 20));
        byte[] content = new byte[size];
        data.nextBytes(content);
        int node = node(st);
        Path f;
        try {
            f = Files.createTempFile("hetmem-stress-", ".bin");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        try {
            // the step's own file is written whatever interrupt is pending (the load is what is tested);
            // one that comes during the write fails the step, and the file still goes (the finally below)
            boolean pending = Thread.interrupted();
            try {
                Files.write(f, content);
            } finally {
                if (pending) {
                    Thread.currentThread().interrupt();
                }
            }
            loadWritten(st, f, content, size, node);
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

    private void loadWritten(Step st, Path f, byte[] content, int size, int node) throws IOException {
        LoadOptions options = loadOptions(st.z());
        // in userfaultfd mode, for about half of the loader's own loads to a device: host reads of the region
        // while it loads (regions() lists it from the start), each long either not loaded yet (zeros) or
        // loaded (the other schemes write the host's pages with pread or a copy first, whose stores a
        // plain load may see part-way through a long)
        boolean beside = node != 0 && config.hostFaults() == HostFaultMode.USERFAULTFD && ((st.y() >>> 41) & 1) != 0
                && options.scheme() == LoadScheme.OVERLAPPED;
        note("load a file of " + size + " bytes to node " + node + " (" + options.scheme()
                + (options.scheme() == LoadScheme.OVERLAPPED ? ", " + options.threads() + " streams" : "")
                + ", chunks of " + options.chunkBytes() + (node != 0 ? ", a ring of " + options.ringBytes() : "") + ")"
                + (beside ? ", host reads of it meanwhile" : ""));
        LoadCheck reported = new LoadCheck(size);
        long newest = 0;
        for (Region r : s.mem.regions()) {
            newest = Math.max(newest, r.id());
        }
        long before = newest;
        try (SideAccesses reads = !beside ? null : new SideAccesses(() -> loading(before, size), 0, size, p -> true,
                (at, value) -> value == 0 || value == SideAccesses.longAt(content, at) ? null
                        : "0 or the file's " + SideAccesses.longAt(content, at), st.x() ^ st.z())) {
            LoadResult r = s.mem.load(f, node, options.withProgress(reported));
            String wrong = reported.wrong();
            if (wrong != null) {
                r.region().free();
                throw new AssertionError("load of " + size + " bytes: its progress " + wrong);
            }
            Model nm = new Model(r.region(), Arrays.copyOf(content, (int) r.region().size()), id, config.hostFaults());
            live.add(nm);
            all.put(r.region().id(), nm);
            nm.expect(nm.hostRead(0, size), 0, "read after load");
        }
    }
}
