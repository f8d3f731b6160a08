package dev.hetmem.migrate;

import dev.hetmem.CopyPath;
import dev.hetmem.MigrationMode;
import dev.hetmem.PinnedByCallerException;
import dev.hetmem.Trigger;
import dev.hetmem.driver.CopyBatch;
import dev.hetmem.driver.CopyEngine;
import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.driver.DeviceMemoryException;
import dev.hetmem.driver.VaRanges;
import dev.hetmem.fault.HostMirror;
import dev.hetmem.internal.DeviceNode;
import dev.hetmem.internal.Pins;
import dev.hetmem.internal.RegionState;
import dev.hetmem.internal.ResidencyRegistry;
import dev.hetmem.observe.Counters;
import dev.hetmem.observe.FaultEvent;
import dev.hetmem.observe.MigrationEvent;
import dev.hetmem.pagetable.Bits;
import dev.hetmem.pagetable.Block;
import dev.hetmem.phys.BuddyAllocator;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.CompletionException;

/**
 * The one migration engine: faults, prefetch and release all come through {@link #ensure}.
 *
 * <p>A migration is done in phases over the whole batch (batched page migration): plan (which pages move, and
 * from where; pages already in place are skipped) → revoke source permissions (device entries
 * released, then one TLB invalidation per device) → allocate every destination frame → one copy
 * phase (CPU threads, or the device's copy engine) → commit (enter destination mappings, update
 * the page table, free source frames). If allocation or copying fails, the batch is undone:
 * source mappings come back, destination frames are freed, and the page table never saw a
 * change. {@link MigrationMode#VANILLA} does every phase page by page instead, only to measure against.
 *
 * <p>Locking: all blocks a call touches are locked in ascending (region id, block index) order
 * before planning and held to the end; no other lock is held while waiting for a pin. A page kept
 * elsewhere by a pin (an open host view, a running kernel) is waited for if the caller needs it,
 * and left alone if it only shares the caller's granule.
 */
public final class MigrationEngine implements AutoCloseable {

    /** What {@link #ensure} did. {@code pins} holds one pin per request when pinning was asked. */
    public record Outcome(long pagesTouched, long faults, long pagesMigrated, List<Pins.Pin> pins) {}

    /** Prefetch and release work in batches of at most this many blocks (1 GiB). */
    static final int MAX_BATCH_BLOCKS = 512;

    private final DeviceNode[] nodes;
    private final CopyPool pool;
    private final Counters memoryCounters;
    private final ResidencyRegistry residency;
    private volatile MigrationMode mode;
    /**
     * Per device, frames allocated by batches that have neither committed nor undone yet: room
     * that will come back (or become resident, and so evictable) without this thread's help.
     */
    private final java.util.concurrent.atomic.AtomicLongArray inFlightFrames;
    private volatile boolean thrashControl = true;
    private volatile long thrashHoldNanos = THRASH_HOLD_NANOS;

    /**
     * Three moves between different nodes, each within this of the last, make a block thrash. UVM
     * uses 500 µs for GPUs; migrations here (Java, a copy per move) are slower, so the window is too.
     */
    static final long THRASH_WINDOW_NANOS = 200_000_000L;
    /** How long a thrashing block stays home by default. */
    static final long THRASH_HOLD_NANOS = 200_000_000L;

    public void thrashControl(boolean on, long holdNanos) {
        this.thrashControl = on;
        this.thrashHoldNanos = holdNanos;
    }
    private volatile CopyPath copyPath;

    public MigrationEngine(DeviceNode[] nodes, int copyThreads, MigrationMode mode, CopyPath copyPath, Counters memoryCounters,
                           ResidencyRegistry residency) {
        this.nodes = nodes.clone();
        this.inFlightFrames = new java.util.concurrent.atomic.AtomicLongArray(nodes.length);
        this.residency = residency;
        this.pool = new CopyPool(copyThreads);
        this.mode = mode;
        this.copyPath = copyPath;
        this.memoryCounters = memoryCounters;
    }

    public MigrationMode mode() {
        return mode;
    }

    public void mode(MigrationMode m) {
        this.mode = m;
    }

    public CopyPath copyPath() {
        return copyPath;
    }

    public void copyPath(CopyPath p) {
        this.copyPath = p;
    }

    public int copyThreads() {
        return pool.threads();
    }

    private DeviceNode device(int node) {
        return nodes[node];
    }

    // ------------------------------------------------------------------------------------------
    // ensure: the entry point of faults, prefetch and release
    // ------------------------------------------------------------------------------------------

    /**
     * Makes every page of every request resident on {@code target} (writable where the request
     * writes), migrating whole granules where possible, and pins the requested pages there if
     * {@code pin}. Either everything is in place and pinned, or an exception is thrown and nothing
     * changed for the batch that failed.
     *
     * @param onlyFrom if ≥ 0, only pages resident on this node move (release); others are left
     */
    public Outcome ensure(List<MigrationRequest> requests, int target, Trigger trigger, boolean pin, int onlyFrom) {
        List<Interval> intervals = normalize(requests, true);
        long started = 0;
        long stealWaitSince = 0;
        while (true) {
            List<Block> locked = lockAll(intervals);
            Next next = new Next();
            try {
                for (Interval iv : intervals) {
                    reconcile(iv.region, iv.from, iv.to);
                }
                if (onlyFrom < 0 && satisfied(requests, target)) {
                    // the common case of a host access: nothing to move, so no granule to plan
                    List<Pins.Pin> pins = pin ? pinChecked(requests, target) : List.of();
                    if (pins != null && pins != LOOK_AGAIN) {
                        return new Outcome(touched(requests), 0, 0, pins);
                    }
                    next.afterSteal(requests, pins);
                } else {
                    Plan plan = plan(intervals, target, onlyFrom);
                    if (plan.conflict == null && target != 0 && framesNeeded(plan) > batchPages(target)) {
                        // whole granules would take more than one batch may hold of the device: move only
                        // the pages asked for (as UVM does under memory pressure); the locks cover them
                        plan = plan(normalize(requests, false), target, onlyFrom);
                    }
                    if (plan.conflict != null) {
                        Pins.Pin p = plan.conflict;
                        if (p.owner() == Thread.currentThread()) {
                            throw new PinnedByCallerException(plan.conflictRegion, p.node(), p.from(), p.to());
                        }
                        next.waitOn = plan.conflictRegion.pins();
                        next.seen = next.waitOn.version();
                        if (!p.owner().isAlive()) {
                            next.abandoned = plan.conflictRegion;   // a view whose thread ended without closing it
                        }
                    } else {
                        Needed needed = new Needed(intervals);
                        long now = System.nanoTime();
                        for (Run r : plan.runs) {
                            r.needed = needed;
                        }
                        for (Block b : locked) {
                            b.touch(now);
                        }
                        try {
                            long migrated = execute(plan.runs, target, trigger);
                            List<Pins.Pin> pins = pin ? pinChecked(requests, target) : List.of();
                            if (pins != null && pins != LOOK_AGAIN) {
                                return new Outcome(touched(requests), plan.faults, migrated, pins);
                            }
                            next.afterSteal(requests, pins);
                        } catch (RetryBatch r) {
                            next.retryForRoom = true;
                        }
                    }
                }
            } finally {
                unlockAll(locked);
            }
            if (next.retryForRoom) {
                started = checkRoomDeadline(started == 0 ? System.nanoTime() : started, target);
                continue;
            }
            started = 0;   // the deadline is for room alone, not for waiting on pins
            if (!next.stolenWait) {
                stealWaitSince = 0;   // the deadline counts one unbroken wait on a steal
            } else if (stealWaitSince == 0) {
                stealWaitSince = System.nanoTime();
            } else if (System.nanoTime() - stealWaitSince > ROOM_DEADLINE_NANOS) {
                throw new IllegalStateException("a page of " + requests.getFirst().region() + " that this call needs was "
                        + "taken home by host code while another kernel still holds it; waited "
                        + ROOM_DEADLINE_NANOS / 1_000_000_000L + " s for that kernel to end");
            }
            if (next.waitOn == null || next.lookAgain) {
                continue;
            }
            if (next.abandoned != null) {
                next.abandoned.lifecycle().reapAbandonedViews();
                continue;
            }
            awaitRelease(next.waitOn, next.seen);
        }
    }

    /** What one pass of {@link #ensure} left to do before the next: retry, look again, or wait on pins. */
    private static final class Next {
        Pins waitOn;
        long seen;
        boolean retryForRoom;
        boolean lookAgain;
        boolean stolenWait;
        RegionState abandoned;

        /**
         * pinChecked found a page stolen before its pin (see PIN_AFTER_STEAL): look again at once,
         * or wait for a pin to go while another kernel holds the page.
         */
        void afterSteal(List<MigrationRequest> requests, List<Pins.Pin> pins) {
            lookAgain = pins == LOOK_AGAIN;
            stolenWait = !lookAgain;
            waitOn = requests.getFirst().region().pins();
            seen = waitOn.version();
        }
    }

    /*
     * PIN_AFTER_STEAL: the userfaultfd fault service takes a page home on its own (a fault on a
     * neighbour in its granule) unless the page is BUSY, and BUSY is set only when the pin is taken,
     * after planning. A page the service took between this call's reconcile and its pin would be
     * home and the host's to write, while the kernel about to run reads and writes its device
     * frame: the kernel's stores would then be dropped when the steal is reconciled. So once
     * pinned (BUSY: no more neighbour steals), the requested pages are checked; if any was taken
     * meanwhile the pins go and ensure starts over (reconcile, plan, move again).
     */

    /** pinChecked's answer when a page was stolen first and can be taken in at once. */
    private static final List<Pins.Pin> LOOK_AGAIN = java.util.Collections.unmodifiableList(new ArrayList<>());

    /**
     * Pins every request on the target; if a page was stolen first, pins nothing and returns
     * {@link #LOOK_AGAIN}, or null when another kernel holds a stolen page (wait for a pin to go).
     */
    private static List<Pins.Pin> pinChecked(List<MigrationRequest> requests, int target) {
        List<Pins.Pin> pins = new ArrayList<>(requests.size());
        for (MigrationRequest r : requests) {
            pins.add(r.region().pin(target, r.from(), r.to(), r.write()));
        }
        if (target == 0) {
            return pins;
        }
        for (MigrationRequest r : requests) {
            if (stolenIn(r.region(), r.from(), r.to(), false)) {
                for (int i = pins.size() - 1; i >= 0; i--) {
                    requests.get(i).region().unpin(pins.get(i));
                }
                // a stolen page another kernel still holds is taken in only when that kernel ends
                if (!stolenIn(r.region(), r.from(), r.to(), true)) {
                    return LOOK_AGAIN;
                }
                Pins.Pin mine = r.region().pins().deviceHeldByCurrentThread(r.from(), r.to());
                if (mine != null) {
                    // that kernel is this thread's own (a kernel launching another): waiting would never end
                    throw new PinnedByCallerException(r.region(), mine.node(), mine.from(), mine.to());
                }
                return null;
            }
        }
        return pins;
    }

    /** Whether the fault service has taken any page of [from, to) that the engine has not reconciled. */
    private static boolean stolenIn(RegionState region, long from, long to, boolean busyToo) {
        HostMirror mirror = region.mirror();
        if (mirror == null) {
            return false;
        }
        for (long bi = from >>> 9; bi <= (to - 1) >>> 9; bi++) {
            if (!mirror.hasSteals(bi)) {
                continue;
            }
            long end = Math.min(to, (bi + 1) << 9);
            for (long p = Math.max(from, bi << 9); p < end; p++) {
                long st = mirror.state(p);
                if ((st & HostMirror.STOLEN) != 0 && (!busyToo || (st & HostMirror.BUSY) != 0)) {
                    return true;
                }
            }
        }
        return false;
    }

    private static long touched(List<MigrationRequest> requests) {
        long n = 0;
        for (MigrationRequest r : requests) {
            n += r.to() - r.from();
        }
        return n;
    }

    /** Which pages a batch's caller asked for (the rest of its granules only came along). */
    static final class Needed {
        private final List<Interval> intervals;

        Needed(List<Interval> intervals) {
            this.intervals = intervals;
        }

        boolean needed(RegionState region, long page) {
            for (Interval iv : intervals) {
                if (iv.region == region && page >= iv.from && page < iv.to && iv.segmentOf(page) >= 0) {
                    return true;
                }
            }
            return false;
        }

        /** Calls {@code f} once with each block the caller locked (every block of its intervals). */
        void forEachBlock(java.util.function.BiConsumer<RegionState, Block> f) {
            java.util.Set<Block> seen = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
            for (Interval iv : intervals) {
                for (long bi = iv.from >>> 9; bi <= (iv.to - 1) >>> 9; bi++) {
                    Block b = iv.region.table().block(bi);
                    if (b != null && seen.add(b)) {
                        f.accept(iv.region, b);
                    }
                }
            }
        }
    }

    /** Device frames a plan's batch allocates on its target. */
    private static long framesNeeded(Plan plan) {
        long n = 0;
        for (Run r : plan.runs) {
            n += r.action == Run.COLLAPSE || r.action == Run.REMOTE_MAP ? 0 : r.count;
        }
        return n;
    }

    /** Every requested page already on the target with the access asked (blocks locked). */
    private static boolean satisfied(List<MigrationRequest> requests, int target) {
        for (MigrationRequest r : requests) {
            long page = r.from();
            while (page < r.to()) {
                long bi = page >>> 9;
                long end = Math.min(r.to(), (bi + 1) << 9);
                Block b = r.region().table().block(bi);
                if (!b.allAt(target, (int) (page & 511), (int) (end - (bi << 9)), r.write())) {
                    return false;
                }
                page = end;
            }
        }
        return true;
    }

    private static void awaitRelease(Pins pins, long seen) {
        try {
            pins.awaitRelease(seen);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for pinned pages", e);
        }
    }

    /**
     * Fills untouched pages [from, to) of a region on device {@code target} with the bytes at host
     * address {@code buffer} (the loader's device path: no host copy of the region is made). One
     * batch: frames allocated, one copy, then mapped; undone if anything fails. Throws if any page
     * is already resident somewhere, since its contents would be overwritten.
     */
    public void fill(RegionState region, long from, long to, int target, long buffer) {
        if (target == 0) {
            throw new IllegalArgumentException("fill targets a device; host pages are written in place");
        }
        long started = 0;
        while (!tryFill(region, from, to, target, buffer)) {
            started = checkRoomDeadline(started == 0 ? System.nanoTime() : started, target);
        }
    }

    /** One attempt of {@link #fill}; false when the device must make room after other threads move on. */
    private boolean tryFill(RegionState region, long from, long to, int target, long buffer) {
        List<Block> locked = lockAll(wholeRange(region, from, to));
        try {
            reconcile(region, from, to);
            List<Run> runs = new ArrayList<>();
            for (Block b : locked) {
                int p0 = firstIn(b, from);
                int p1 = endIn(region, b, to);
                if (b.uniformHolders(p0, p1) != 0) {
                    throw new IllegalStateException("pages [" + from + ", " + to + ") of " + region
                            + " are not all untouched; a load only fills fresh pages");
                }
                Run run = new Run(region, b, p0, p1 - p0, Run.LOAD, 0, -1);
                run.bufferAddress = buffer + (((b.index() << 9) + p0 - from) << Block.PAGE_SHIFT);
                runs.add(run);
            }
            long now = System.nanoTime();
            for (Block b : locked) {
                b.touch(now);
            }
            try {
                executeBatch(runs, target, Trigger.LOAD, "batched");
            } catch (RetryBatch r) {
                return false;
            }
            return true;
        } finally {
            unlockAll(locked);
        }
    }

    /**
     * The most pages one prefetch batch should move to {@code target}: 1 GiB, and on a device at
     * most half its memory in whole blocks, so that a range larger than the device streams through
     * it (a batch cannot evict its own pages; the next batch evicts the previous one's).
     */
    public long batchPages(int target) {
        long max = (long) MAX_BATCH_BLOCKS * Block.PAGES;
        if (target == 0) {
            return max;
        }
        long frames = device(target).allocator().totalFrames();
        // whole blocks where the device has several; on a device of a block or two, half of it
        long half = frames >= 4L * Block.PAGES ? (frames / 2) & -(long) Block.PAGES : frames / 2;
        return Math.max(1, Math.min(max, half));
    }

    /** Prefetch or release of a large range: batches of at most {@link #batchPages}, each all-or-nothing. */
    public long migrateRange(RegionState region, long from, long to, int target, Trigger trigger, int onlyFrom) {
        long moved = 0;
        long step = batchPages(target);
        for (long p = from; p < to; p = Math.min(to, (p / step + 1) * step)) {
            long end = Math.min(to, (p / step + 1) * step);
            moved += ensure(List.of(new MigrationRequest(region, p, end, false)), target, trigger, false, onlyFrom)
                    .pagesMigrated();
        }
        return moved;
    }

    // ------------------------------------------------------------------------------------------
    // normalize and lock
    // ------------------------------------------------------------------------------------------

    /**
     * A granule-widened page interval of one region and, inside it, the pages actually requested as
     * sorted disjoint segments [starts[i], ends[i]) with their write flag (overlapping requests merged,
     * write if any of them writes). Lookups are binary searches, so an interval merged from many
     * adjacent requests costs O(log n) per page, not O(n).
     */
    private static final class Interval {
        final RegionState region;
        final long from;
        long to;
        long[] starts;
        long[] ends;
        boolean[] write;
        int segments;

        Interval(RegionState region, long from, long to) {
            this.region = region;
            this.from = from;
            this.to = to;
        }

        /** The common case, a single requested range, needs no arrays (a scatter list has one per page). */
        private long soleFrom;
        private long soleTo;
        private boolean soleWrite;
        private long[] pending;
        private int pendingCount;

        /** Adds a requested range [a, b); {@link #seal} turns them into disjoint segments. */
        void add(long a, long b, boolean w) {
            if (pendingCount == 0) {
                soleFrom = a;
                soleTo = b;
                soleWrite = w;
                pendingCount = 1;
                return;
            }
            if (pending == null) {
                pending = new long[12];
                pending[0] = soleFrom;
                pending[1] = soleTo;
                pending[2] = soleWrite ? 1 : 0;
            }
            if (3 * pendingCount + 3 > pending.length) {
                pending = java.util.Arrays.copyOf(pending, pending.length * 2);
            }
            pending[3 * pendingCount] = a;
            pending[3 * pendingCount + 1] = b;
            pending[3 * pendingCount + 2] = w ? 1 : 0;
            pendingCount++;
        }

        /**
         * Sweeps the requested ranges' boundaries: a page is requested if any range covers it, and
         * written if any writing range covers it; equal neighbours merge.
         */
        void seal() {
            if (pending == null) {
                segments = pendingCount;   // 0 or 1: the sole range's fields are the segment
                return;
            }
            int n = pendingCount;
            long[] events = new long[2 * n];   // position << 2 | kind (0 end-write, 1 end, 2 start, 3 start-write)
            for (int i = 0; i < n; i++) {
                long a = pending[3 * i];
                long b = pending[3 * i + 1];
                boolean w = pending[3 * i + 2] != 0;
                events[2 * i] = (a << 2) | (w ? 3 : 2);
                events[2 * i + 1] = (b << 2) | (w ? 0 : 1);
            }
            java.util.Arrays.sort(events);
            starts = new long[Math.max(1, n)];
            ends = new long[Math.max(1, n)];
            write = new boolean[Math.max(1, n)];
            segments = 0;
            int cover = 0;
            int writers = 0;
            int i = 0;
            while (i < events.length) {
                long pos = events[i] >>> 2;
                boolean wasCovered = cover > 0;
                boolean wasWrite = writers > 0;
                while (i < events.length && (events[i] >>> 2) == pos) {
                    switch ((int) (events[i] & 3)) {
                        case 0 -> { cover--; writers--; }
                        case 1 -> cover--;
                        case 2 -> cover++;
                        default -> { cover++; writers++; }
                    }
                    i++;
                }
                boolean covered = cover > 0;
                boolean w = writers > 0;
                if (wasCovered && (!covered || w != wasWrite)) {
                    ends[segments - 1] = pos;
                }
                if (covered && (!wasCovered || w != wasWrite)) {
                    if (segments > 0 && ends[segments - 1] == pos && write[segments - 1] == w) {
                        segments--;   // re-opened with the same flag: continue the previous segment
                    } else {
                        if (segments == starts.length) {
                            starts = java.util.Arrays.copyOf(starts, segments * 2);
                            ends = java.util.Arrays.copyOf(ends, segments * 2);
                            write = java.util.Arrays.copyOf(write, segments * 2);
                        }
                        starts[segments] = pos;
                        write[segments] = w;
                    }
                    segments++;
                }
            }
            pending = null;
        }

        /** Whether the page's segment writes. */
        boolean writes(int segment) {
            return starts == null ? soleWrite : write[segment];
        }

        /** Index of the segment holding page, or -1. */
        int segmentOf(long page) {
            if (starts == null) {
                return segments == 1 && page >= soleFrom && page < soleTo ? 0 : -1;
            }
            int lo = 0;
            int hi = segments - 1;
            while (lo <= hi) {
                int mid = (lo + hi) >>> 1;
                if (ends[mid] <= page) {
                    lo = mid + 1;
                } else if (starts[mid] > page) {
                    hi = mid - 1;
                } else {
                    return mid;
                }
            }
            return -1;
        }

        /** The first page after {@code page} where neededness or write access may change. */
        long nextBoundary(long page) {
            if (starts == null) {
                if (segments == 0) {
                    return to;
                }
                return Math.min(to, page < soleFrom ? soleFrom : page < soleTo ? soleTo : to);
            }
            int lo = 0;
            int hi = segments - 1;
            long next = to;
            // the first segment whose end is after page: its start (if after page) or its end is the boundary
            while (lo <= hi) {
                int mid = (lo + hi) >>> 1;
                if (ends[mid] <= page) {
                    lo = mid + 1;
                } else {
                    hi = mid - 1;
                }
            }
            if (lo < segments) {
                next = Math.min(next, starts[lo] > page ? starts[lo] : ends[lo]);
            }
            return next;
        }
    }

    /** Widens each request to granules and merges overlapping ones, so no page is planned twice. */
    private static List<Interval> normalize(List<MigrationRequest> requests, boolean widen) {
        List<MigrationRequest> sorted = new ArrayList<>(requests);
        sorted.sort(Comparator.comparingInt((MigrationRequest r) -> r.region().id()).thenComparingLong(MigrationRequest::from));
        List<Interval> out = new ArrayList<>();
        Interval last = null;
        for (MigrationRequest r : sorted) {
            long from = widen ? r.region().granuleStart(r.from()) : r.from();
            long to = widen ? r.region().granuleEnd(r.to()) : r.to();
            if (last == null || last.region != r.region() || from > last.to) {
                last = new Interval(r.region(), from, to);
                out.add(last);
            } else {
                last.to = Math.max(last.to, to);
            }
            last.add(r.from(), r.to(), r.write());
        }
        for (Interval iv : out) {
            iv.seal();
        }
        return out;
    }

    private static List<Block> lockAll(List<Interval> intervals) {
        List<Block> locked = new ArrayList<>();
        try {
            for (Interval iv : intervals) {
                long first = iv.from >>> 9;
                long last = (iv.to - 1) >>> 9;
                for (long bi = first; bi <= last; bi++) {
                    Block b = iv.region.table().blockOrCreate(bi);
                    if (!locked.isEmpty() && locked.getLast() == b) {
                        continue;
                    }
                    b.lock.lock();
                    locked.add(b);
                }
            }
        } catch (RuntimeException | Error e) {
            unlockAll(locked);
            throw e;
        }
        return locked;
    }

    private static void unlockAll(List<Block> locked) {
        for (int i = locked.size() - 1; i >= 0; i--) {
            locked.get(i).lock.unlock();
        }
    }

    // ------------------------------------------------------------------------------------------
    // plan
    // ------------------------------------------------------------------------------------------

    private static final class Plan {
        final List<Run> runs = new ArrayList<>();
        long faults;
        Pins.Pin conflict;
        RegionState conflictRegion;
    }

    private Plan plan(List<Interval> intervals, int target, int onlyFrom) {
        Plan plan = new Plan();
        for (Interval iv : intervals) {
            long lastGranule = -1;
            long page = iv.from;
            while (page < iv.to) {
                Block b = iv.region.table().block(page >>> 9);
                int p = (int) (page & (Block.PAGES - 1));
                int blockEnd = (int) Math.min(Block.PAGES, iv.to - (b.index() << 9));
                int seg = iv.segmentOf(page);
                boolean needed = seg >= 0;
                boolean write = needed && iv.writes(seg);
                var attrs = iv.region.attributes().at(page);
                boolean readMostly = attrs.readMostly();
                boolean remoteOk = target != 0 && device(target).driver().canMapHost()
                        && (attrs.accessedBy(target) || (thrashControl && onlyFrom < 0 && b.heldHome(System.nanoTime())));
                int action = decide(b, p, target, write, onlyFrom, readMostly, remoteOk);
                int holders = b.residentMask(p);
                int n;
                // a run never crosses a change of neededness or of attributes
                int runEnd = (int) Math.min(blockEnd, Math.min(iv.nextBoundary(page),
                        iv.region.attributes().nextChange(page)) - (b.index() << 9));
                if (runEnd - p > 1 && b.uniformHolders(p, runEnd) == holders && b.uniformRemote(p, runEnd)) {
                    // the rest of the stretch is in one state: one run, found with word-level checks
                    n = runEnd - p;
                } else {
                    n = 1;
                    int writer = b.writer(p);
                    int remote = b.remoteMask(p);
                    while (p + n < runEnd && b.writer(p + n) == writer && b.remoteMask(p + n) == remote
                            && sameRun(iv, b, page + n, p + n, needed, write, holders, action, target, onlyFrom,
                            readMostly, remoteOk)) {
                        n++;
                    }
                }
                if (action != 0) {
                    Pins.Pin conflict = action == Run.REMOTE_MAP ? null   // changes nothing for anyone else
                            : (holders & 1) != 0 && b.remoteMask(p) != 0
                            // a host copy that devices reach in place: a kernel of any node, the
                            // target's own included, may be using those entries right now
                            ? iv.region.pins().any(page, page + n)
                            : action == Run.DUPLICATE
                            ? iv.region.pins().writingConflict(page, page + n, target)
                            : iv.region.pins().conflict(page, page + n, target);
                    if (conflict != null) {
                        if (needed) {
                            plan.conflict = conflict;
                            plan.conflictRegion = iv.region;
                            return plan;
                        }
                        // only shares a granule with what was asked: leave it where it is
                        page += n;
                        continue;
                    }
                    int source = action == Run.MOVE || action == Run.DUPLICATE ? sourceOf(b, p, holders) : -1;
                    Run run = new Run(iv.region, b, p, n, action, holders, source);
                    run.write = write;
                    plan.runs.add(run);
                    long g = 1L << (iv.region.attributes().at(page).granuleShift() - Block.PAGE_SHIFT);
                    long firstG = page / g;
                    long lastG = (page + n - 1) / g;
                    plan.faults += lastG - firstG + 1 - (firstG == lastGranule ? 1 : 0);
                    lastGranule = lastG;
                }
                page += n;
            }
        }
        return plan;
    }

    private static boolean sameRun(Interval iv, Block b, long page, int p, boolean needed, boolean write, int holders,
                                   int action, int target, int onlyFrom, boolean readMostly, boolean remoteOk) {
        int seg = iv.segmentOf(page);
        boolean qNeeded = seg >= 0;
        return qNeeded == needed && (!qNeeded || iv.writes(seg) == write)
                && b.residentMask(p) == holders && decide(b, p, target, write, onlyFrom, readMostly, remoteOk) == action;
    }

    /** 0 when the page is fine where it is, else the action that brings it to the target. */
    private static int decide(Block b, int p, int target, boolean write, int onlyFrom, boolean readMostly,
                              boolean remoteOk) {
        int holders = b.residentMask(p);
        if (onlyFrom >= 0 && (holders & (1 << onlyFrom)) == 0) {
            return 0;
        }
        if (holders == 0) {
            return Run.POPULATE;
        }
        if ((holders & (1 << target)) != 0) {
            if (!write || b.isWritable(target, p)) {
                return 0;
            }
            return Run.COLLAPSE;
        }
        // ACCESSED_BY: map the host's copy in place, if the host may give the access asked for
        if (remoteOk && (holders & 1) != 0 && (!write || b.isWritable(0, p))) {
            return b.isRemote(target, p) && (!write || b.isRemoteWritable(target, p)) ? 0 : Run.REMOTE_MAP;
        }
        // a read of a read-mostly page copies it; release (onlyFrom) always moves
        return readMostly && !write && onlyFrom < 0 ? Run.DUPLICATE : Run.MOVE;
    }

    /** The writer if there is one, else the host if it holds a copy, else the lowest holder. */
    private static int sourceOf(Block b, int p, int holders) {
        int w = b.writer(p);
        if (w >= 0) {
            return w;
        }
        return (holders & 1) != 0 ? 0 : Integer.numberOfTrailingZeros(holders);
    }

    // ------------------------------------------------------------------------------------------
    // execute: the phases
    // ------------------------------------------------------------------------------------------

    /** Runs the phases over the planned runs; returns pages whose data moved. */
    private long execute(List<Run> runs, int target, Trigger trigger) {
        if (runs.isEmpty()) {
            return 0;
        }
        if (mode == MigrationMode.VANILLA) {
            long moved = 0;
            for (Run run : runs) {
                for (int i = 0; i < run.count; i++) {
                    moved += executeBatch(List.of(run.slice(i, 1)), target, trigger, "vanilla");
                }
            }
            return moved;
        }
        return executeBatch(runs, target, trigger, "batched");
    }

    private long executeBatch(List<Run> runs, int target, Trigger trigger, String modeName) {
        MigrationEvent event = new MigrationEvent();
        event.begin();
        long pagesMoved = 0;
        for (Run r : runs) {
            if (r.action == Run.MOVE || r.action == Run.DUPLICATE) {
                pagesMoved += r.count;
            }
        }
        boolean undone = true;
        try {
            revoke(runs, target);
            try {
                allocate(runs, target);
                copy(runs, target);
            } catch (RuntimeException | Error e) {
                undo(runs, target);
                throw e;
            }
            commit(runs, target, trigger);
            undone = false;
            return pagesMoved;
        } finally {
            long reserved = 0;
            for (Run r : runs) {
                reserved += r.reserved;
                r.reserved = 0;
            }
            if (reserved > 0) {
                inFlightFrames.addAndGet(target, -reserved);
            }
            if (event.shouldCommit()) {
                event.region = runs.getFirst().region.id();
                event.target = target;
                event.trigger = trigger.name();
                event.mode = modeName;
                event.pages = pagesMoved;
                event.bytes = pagesMoved << Block.PAGE_SHIFT;
                event.undone = undone;
                event.commit();
            }
        }
    }

    /** Phase 1: holders other than the target lose their device mappings; one invalidation per device. */
    private void revoke(List<Run> runs, int target) {
        VaRanges[] ranges = new VaRanges[nodes.length];
        for (Run r : runs) {
            HostMirror mirror = r.region.mirror();
            if (mirror != null && target != 0 && (r.holders & 1) != 0) {
                // the userfaultfd view first: a host write from now on faults, and the fault service
                // gives the page back (the copy being made is then dropped when the engine next looks)
                if (r.action == Run.MOVE || r.action == Run.COLLAPSE) {
                    mirror.leave(r.page(), r.count);
                } else if (r.action == Run.DUPLICATE && r.block.writer(r.first) == 0) {
                    mirror.sync(r.page(), r.count, HostMirror.Want.HOST_READ_ONLY, null);
                }
            }
            if (r.action == Run.POPULATE || r.action == Run.LOAD || r.action == Run.REMOTE_MAP) {
                continue;
            }
            int others = r.holders & ~(1 << target) & ~1;
            int remote = r.block.remoteMask(r.first);
            if (r.action == Run.DUPLICATE) {
                // holders keep their copies; a device writer becomes read-only, and so do remote
                // writers of a host copy that loses write
                int w = r.block.writer(r.first);
                if (w > 0) {
                    device(w).driver().protect(r.va(), r.count, false);
                    rangesOf(ranges, w).add(r.va(), r.bytes());
                } else if (w == 0) {
                    for (int n = Integer.numberOfTrailingZeros(remote); remote != 0; n = Integer.numberOfTrailingZeros(remote)) {
                        remote &= ~(1 << n);
                        device(n).driver().protect(r.va(), r.count, false);
                        rangesOf(ranges, n).add(r.va(), r.bytes());
                    }
                }
                continue;
            }
            if (target != 0 && (r.holders & 1) != 0) {
                // the host's copy goes: every device mapping it remotely lets go too
                for (int n = Integer.numberOfTrailingZeros(remote); remote != 0; n = Integer.numberOfTrailingZeros(remote)) {
                    remote &= ~(1 << n);
                    device(n).driver().unmap(r.va(), r.count);
                    rangesOf(ranges, n).add(r.va(), r.bytes());
                }
            }
            for (int n = Integer.numberOfTrailingZeros(others); others != 0; n = Integer.numberOfTrailingZeros(others)) {
                others &= ~(1 << n);
                device(n).driver().unmap(r.va(), r.count);
                rangesOf(ranges, n).add(r.va(), r.bytes());
            }
        }
        invalidateAll(ranges);
    }

    /** Phase 2: every destination frame, as large aligned pieces as the allocator has. */
    private void allocate(List<Run> runs, int target) {
        if (target == 0) {
            return;
        }
        DeviceNode dev = device(target);
        BuddyAllocator alloc = dev.allocator();
        long needed = 0;
        for (Run r : runs) {
            needed += r.action == Run.COLLAPSE || r.action == Run.REMOTE_MAP ? 0 : r.count;
        }
        if (needed > alloc.totalFrames()) {
            throw new DeviceMemoryException("device node " + target + " (" + dev.driver().name() + ") has "
                    + alloc.totalFrames() * Block.PAGE_BYTES + " bytes; one batch (one kernel launch's arguments, or one "
                    + "load chunk) needs " + needed * Block.PAGE_BYTES + " bytes on it at once");
        }
        for (Run r : runs) {
            if (r.action == Run.COLLAPSE || r.action == Run.REMOTE_MAP) {
                continue;
            }
            int[] frames = new int[r.count];
            int done = 0;
            try {
                while (done < r.count) {
                    int order = Math.min(BuddyAllocator.MAX_ORDER, 31 - Integer.numberOfLeadingZeros(r.count - done));
                    int f = -1;
                    long epoch = alloc.changes();
                    while (order >= 0 && (f = allocateCounted(alloc, target, order)) < 0) {
                        order--;
                    }
                    if (f < 0 && makeRoom(target, r.count - done, runs, epoch)) {
                        continue;
                    }
                    if (f < 0) {
                        f = allocateCounted(alloc, target, 0);   // a frame another batch gave back while we looked
                        order = 0;
                    }
                    if (f < 0) {
                        throw new DeviceMemoryException("device node " + target + " (" + dev.driver().name()
                                + ") is out of memory: needed " + (long) (r.count - done) * Block.PAGE_BYTES
                                + " more bytes for " + r.region + ", " + alloc.freeBytes() + " bytes free of "
                                + alloc.totalFrames() * Block.PAGE_BYTES + " (" + whoHolds(target, runs) + ")");
                    }
                    int n = 1 << order;
                    r.reserved += n;   // counted in flight by allocateCounted already
                    for (int i = 0; i < n; i++) {
                        frames[done + i] = f + i;
                    }
                    done += n;
                    r.frames = frames;
                    dev.driver().prepareFrames(f, n);
                }
            } catch (RuntimeException | Error e) {
                r.frames = frames;
                // record how many are really ours, for undo
                r.framesAllocated = done;
                throw e;
            }
            r.frames = frames;
            r.framesAllocated = r.count;
        }
    }

    /**
     * Allocates 2^order frames, counting them in flight before they leave the allocator, so that no
     * thread looking for room ever sees them neither free nor counted; -1 (and nothing counted) if none.
     */
    private int allocateCounted(BuddyAllocator alloc, int node, int order) {
        inFlightFrames.addAndGet(node, 1L << order);
        int f = alloc.allocate(order);
        if (f < 0) {
            inFlightFrames.addAndGet(node, -(1L << order));
        }
        return f;
    }

    /** Where a full device's frames are, for the out-of-memory message: the numbers a user needs. */
    private String whoHolds(int node, List<Run> batch) {
        long mine = 0;
        long locked = 0;
        long other = 0;
        for (ResidencyRegistry.Resident v : residency.coldestFirst(node)) {
            int n = v.block().residentCount(node);
            if (v.block().lock.isHeldByCurrentThread()) {
                mine += n;
            } else if (v.block().lock.isLocked()) {
                locked += n;
            } else {
                other += n;
            }
        }
        long reserved = 0;
        for (Run r : batch) {
            reserved += r.reserved;
        }
        return "pages held: " + mine + " of the blocks this call uses, " + locked + " of blocks other calls hold, "
                + other + " elsewhere; frames in flight: " + reserved + " of this batch, "
                + (inFlightFrames.get(node) - reserved) + " of others";
    }

    /** Evict at least this much at once: one batch per eviction, not one per page. */
    static final int EVICT_MIN_PAGES = 1024;

    /**
     * The device is full: moves its coldest pages home (GMEM's host DRAM as the device's swap).
     * Victims are blocks not in the current batch, taken with tryLock (this thread holds the batch's
     * block locks, so waiting could deadlock), skipping pages pinned by a running kernel. Returns
     * whether anything was freed; retries briefly when every candidate is busy in another thread.
     */
    private boolean makeRoom(int node, int pages, List<Run> batch, long epoch) {
        java.util.Set<Block> mine = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        for (Run r : batch) {
            mine.add(r.block);
        }
        long want = Math.max(pages, EVICT_MIN_PAGES);
        long freed = 0;
        long mineInFlight = 0;
        for (Run r : batch) {
            mineInFlight += r.reserved;
        }
        // read before looking at the residents: a frame another batch holds is either still counted
        // here, or (it committed) already resident and so among the candidates below
        boolean blocked = inFlightFrames.get(node) > mineInFlight;
        for (ResidencyRegistry.Resident v : residency.coldestFirst(node)) {
            if (freed >= want) {
                break;
            }
            // never a block this thread holds: the batch's own, or one whose pages the request
            // found in place and is about to pin (block locks are reentrant, so tryLock alone
            // would succeed on them)
            if (mine.contains(v.block()) || v.block().lock.isHeldByCurrentThread()) {
                continue;
            }
            if (!v.block().lock.tryLock()) {
                blocked = true;
                continue;
            }
            try {
                long moved = evict(v.region(), v.block(), node);
                if (moved > 0) {
                    freed += moved;
                } else if (v.block().hasPagesOn(node)) {
                    blocked = true;   // its pages are pinned by a running kernel
                }
            } finally {
                v.block().lock.unlock();
            }
        }
        if (freed == 0 && batch.getFirst().needed != null) {
            // only the caller's own blocks hold the device: their pages that nobody asked for and
            // that the batch does not move may go home to make room
            Needed needed = batch.getFirst().needed;
            // pages moved; pages left because a running kernel holds them; pages the call itself needs
            long[] got = {0, 0, 0};
            needed.forEachBlock((region, b) -> {
                if (b.hasPagesOn(node)) {
                    got[0] += evictUnneeded(region, b, node, batch, needed, got, Math.max(0, pages - got[0]));
                }
            });
            freed += got[0];
            blocked |= got[1] > 0;   // those kernels end, and their pages can go then
            if (freed == 0 && device(node).allocator().totalFrames() - got[2] - mineInFlight < stillToAllocate(batch)) {
                return false;   // cannot fit even with every other page gone: no waiting helps
            }
        }
        if (freed > 0) {
            return true;
        }
        blocked |= inFlightFrames.get(node) > mineInFlight;   // frames that left residency while we looked
        if (device(node).allocator().changes() != epoch) {
            // frames were freed or taken while this thread looked (other batches undoing, committing,
            // evicting): what it saw is stale, so it looks again rather than give up
            blocked = true;
        }
        if (blocked) {
            // room will come (kernels finish, other batches commit), but not while this thread
            // holds its block locks: undo, let go of everything, and start the operation again
            throw new RetryBatch();
        }
        return false;
    }

    /**
     * Thrown from the allocate phase when the device can only make room after other threads move
     * on; {@link #ensure} and {@link #fill} undo, unlock, wait briefly and start over.
     */
    static final class RetryBatch extends RuntimeException {
        RetryBatch() {
            super(null, null, false, false);
        }
    }

    /** How long an operation keeps retrying for room on a device whose frames are all pinned or busy. */
    static final long ROOM_DEADLINE_NANOS = 60_000_000_000L;

    private static long checkRoomDeadline(long started, int target) {
        if (System.nanoTime() - started > ROOM_DEADLINE_NANOS) {
            throw new DeviceMemoryException("device node " + target + " has had no frame to spare for "
                    + ROOM_DEADLINE_NANOS / 1_000_000_000L + " s: all of its memory is pinned by running kernels or "
                    + "in use by other migrations");
        }
        // a random pause, so that two batches that each wait for the other's frames do not retry in step
        java.util.concurrent.locks.LockSupport.parkNanos(500_000 + java.util.concurrent.ThreadLocalRandom.current().nextLong(1_500_000));
        return started;
    }

    /**
     * Moves home the pages of a block of the current batch that are on {@code node}, unpinned,
     * not asked for and not part of any of the batch's runs (block locked by this thread).
     */
    private long evictUnneeded(RegionState region, Block b, int node, List<Run> batch, Needed needed, long[] counts,
                               long budget) {
        int pages = region.table().pagesIn(b.index());
        long base = b.index() << 9;
        boolean[] keep = new boolean[pages];
        for (Run r : batch) {
            if (r.block == b) {
                java.util.Arrays.fill(keep, r.first, r.first + r.count, true);
            }
        }
        List<Run> runs = new ArrayList<>();
        VaRanges[] dropped = new VaRanges[nodes.length];
        long droppedPages = 0;
        int p = 0;
        while (p < pages) {
            if (!b.isResident(node, p)) {
                p++;
                continue;
            }
            if (keep[p] || needed.needed(region, base + p)) {
                counts[2]++;   // the call needs it where it is
                p++;
                continue;
            }
            int holders = b.residentMask(p);
            Pins.Pin pin = pinKeeping(region, holders, base + p);
            if (pin != null) {
                if (pin.owner() != Thread.currentThread()) {
                    counts[1]++;   // another thread's kernel or view: it ends, and the page can go then
                }
                p++;
                continue;
            }
            if (droppedPages + moving(runs) >= budget) {
                p++;   // enough room made; the rest is only counted
                continue;
            }
            boolean zero = b.isZero(p);
            int q = p + 1;
            while (q < pages && !keep[q] && b.isResident(node, q) && b.residentMask(q) == holders && b.isZero(q) == zero
                    && !needed.needed(region, base + q) && pinKeeping(region, holders, base + q) == null) {
                q++;
            }
            if (holders != 1 << node || zero) {
                // another node holds a copy (or they are zeros nobody wrote): this device's copy just goes
                droppedPages += dropCopy(region, b, node, p, q, dropped);
            } else {
                runs.add(new Run(region, b, p, q - p, Run.MOVE, holders, node));
            }
            p = q;
        }
        return finishEviction(region, node, dropped, droppedPages, runs);
    }

    /**
     * Ends the eviction of one block: one invalidation per device for the copies dropped, one
     * batch home for the rest, one eviction counted. Returns the pages that left the device.
     */
    private long finishEviction(RegionState region, int node, VaRanges[] dropped, long droppedPages, List<Run> runs) {
        invalidateAll(dropped);
        if (!runs.isEmpty()) {
            executeBatch(runs, 0, Trigger.EVICTION, "batched");
        }
        long moved = droppedPages + moving(runs);
        if (moved > 0) {
            region.counters().evicted(node);
            memoryCounters.evicted(node);
        }
        return moved;
    }

    /**
     * A pin that keeps this device's copy of a page in place: any pin, or, where the host holds a
     * copy too, a device pin only (a host view does not need the device's copy).
     */
    private static Pins.Pin pinKeeping(RegionState region, int holders, long page) {
        return (holders & 1) != 0 ? region.pins().conflict(page, page + 1, 0) : region.pins().any(page, page + 1);
    }

    private static long moving(List<Run> runs) {
        long n = 0;
        for (Run r : runs) {
            n += r.count;
        }
        return n;
    }

    /** Frames the batch still has to allocate (each run's count less what it holds already). */
    private static long stillToAllocate(List<Run> batch) {
        long n = 0;
        for (Run r : batch) {
            if (r.action != Run.COLLAPSE && r.action != Run.REMOTE_MAP) {
                n += r.count - r.reserved;
            }
        }
        return n;
    }

    /** Moves one block's unpinned pages on {@code node} home in one batch; returns how many moved. */
    private long evict(RegionState region, Block b, int node) {
        if (!b.hasPagesOn(node)) {
            return 0;
        }
        List<Run> runs = new ArrayList<>();
        VaRanges[] dropped = new VaRanges[nodes.length];
        long droppedPages = 0;
        int pages = region.table().pagesIn(b.index());
        long base = b.index() << 9;
        int p = 0;
        while (p < pages) {
            if (!b.isResident(node, p)) {
                p++;
                continue;
            }
            int holders = b.residentMask(p);
            int q = p + 1;
            while (q < pages && b.isResident(node, q) && b.residentMask(q) == holders && b.isZero(q) == b.isZero(p)) {
                q++;
            }
            // pages a running kernel uses stay
            if (region.pins().any(base + p, base + q) == null) {
                if (holders == 1 << node && b.isZero(p)) {   // the run is all zeros or none
                    // zeros nobody wrote: dropped, they read as zeros again (untouched)
                    droppedPages += dropCopy(region, b, node, p, q, dropped);
                } else if ((holders & 1) == 0) {
                    runs.add(new Run(region, b, p, q - p, Run.MOVE, holders, node));
                } else {
                    // the host holds a copy too (read duplication): the device's copy just goes
                    droppedPages += dropCopy(region, b, node, p, q, dropped);
                }
            }
            p = q;
        }
        return finishEviction(region, node, dropped, droppedPages, runs);
    }

    /**
     * Removes the read-only copy of pages [p, q) of a block from a device: another node still holds
     * them, or they are zeros nobody wrote (then they become untouched).
     */
    private long dropCopy(RegionState region, Block b, int node, int p, int q, VaRanges[] ranges) {
        long va = region.pageAddress((b.index() << 9) + p);
        int[] old = new int[q - p];
        for (int i = p; i < q; i++) {
            old[i - p] = b.frame(node, i);
        }
        device(node).driver().unmap(va, q - p);
        rangesOf(ranges, node).add(va, (long) (q - p) << Block.PAGE_SHIFT);
        inFlightFrames.addAndGet(node, q - p);   // see FrameReleases.add
        try {
            b.removeResidentRange(node, p, q - p);
            syncMirror(region, b, p, q);
            freeFrames(region, node, old, q - p, (b.index() << 9) + p);
        } finally {
            inFlightFrames.addAndGet(node, -(q - p));
        }
        return q - p;
    }

    /** Phase 3: one copy phase: device-to-host first (also staging for device-to-device), then to the target. */
    private void copy(List<Run> runs, int target) {
        CopyBatch[] toHost = new CopyBatch[nodes.length];
        CopyBatch toTarget = new CopyBatch();
        List<Run> peer = new ArrayList<>();
        List<Run> homes = new ArrayList<>();
        for (Run r : runs) {
            long va = r.va();
            if (r.action == Run.POPULATE) {
                if (target != 0) {
                    addFrames(toTarget, CopyBatch.ZERO, 0, r.frames, r.count);
                }
                continue;
            }
            if (r.action == Run.LOAD) {
                addFrames(toTarget, CopyBatch.TO_DEVICE, r.bufferAddress, r.frames, r.count);
                continue;
            }
            if (r.action != Run.MOVE && r.action != Run.DUPLICATE) {
                continue;
            }
            if (r.source != 0 && target != 0
                    && device(target).driver().canCopyFrom(device(r.source).driver())) {
                peer.add(r);
                continue;
            }
            if (r.source != 0 && r.region.mirror() != null) {
                // into the view by the fault service's own ioctl, under its page locks, so that a
                // page the service takes home meanwhile is not overwritten with older data
                homes.add(r);
            } else if (r.source != 0) {
                CopyBatch b = toHost[r.source];
                if (b == null) {
                    b = toHost[r.source] = new CopyBatch();
                }
                for (int i = 0; i < r.count; i++) {
                    b.add(CopyBatch.TO_HOST, va + ((long) i << Block.PAGE_SHIFT), r.block.frame(r.source, r.first + i), 1);
                }
            }
            if (target != 0) {
                addFrames(toTarget, CopyBatch.TO_DEVICE, va, r.frames, r.count);
            }
        }
        for (int n = 1; n < nodes.length; n++) {
            if (toHost[n] != null) {
                runCopy(device(n).driver(), toHost[n]);
            }
        }
        for (Run r : homes) {
            DeviceDriver from = device(r.source).driver();
            long[] sources = new long[r.count];
            for (int i = 0; i < r.count; i++) {
                sources[i] = from.hostAddress(r.block.frame(r.source, r.first + i));
            }
            r.region.mirror().home(r.page(), r.count, sources);
        }
        if (target != 0) {
            runCopy(device(target).driver(), toTarget);
            copyPeers(peer, target);
        }
    }

    /** Device-to-device runs over the drivers' peer path: contiguous frames in one call. */
    private void copyPeers(List<Run> peer, int target) {
        DeviceDriver to = device(target).driver();
        for (Run r : peer) {
            DeviceDriver from = device(r.source).driver();
            int i = 0;
            while (i < r.count) {
                int src = r.block.frame(r.source, r.first + i);
                int n = 1;
                while (i + n < r.count && r.frames[i + n] == r.frames[i] + n
                        && r.block.frame(r.source, r.first + i + n) == src + n) {
                    n++;
                }
                to.copyFromPeer(from, src, r.frames[i], n);
                i += n;
            }
        }
    }

    private static void addFrames(CopyBatch batch, byte op, long va, int[] frames, int count) {
        int i = 0;
        while (i < count) {
            int n = 1;
            while (i + n < count && frames[i + n] == frames[i] + n) {
                n++;
            }
            batch.add(op, op == CopyBatch.ZERO ? 0 : va + ((long) i << Block.PAGE_SHIFT), frames[i], n);
            i += n;
        }
    }

    private void runCopy(DeviceDriver driver, CopyBatch batch) {
        if (batch.isEmpty()) {
            return;
        }
        CopyEngine engine = copyPath == CopyPath.ENGINE ? driver.copyEngine() : null;
        if (engine == null) {
            pool.copy(driver, batch);
            return;
        }
        try {
            engine.submit(batch, 0, batch.size()).join();
        } catch (CompletionException e) {
            if (e.getCause() instanceof RuntimeException re) {
                throw re;
            }
            throw e;
        }
    }

    /** Undo after a failed allocation or copy: frames back to the allocator, source mappings back. */
    private void undo(List<Run> runs, int target) {
        HostReleases written = new HostReleases();
        for (Run r : runs) {
            if (target != 0 && r.frames != null) {
                freeFrames(device(target).allocator(), r.frames, r.framesAllocated);
                r.frames = null;
                r.framesAllocated = 0;
            }
            if ((r.action == Run.MOVE || r.action == Run.DUPLICATE) && (target == 0 || r.source != 0)
                    && r.region.mirror() == null) {
                // host pages written by a copy (or staging) that did not finish: not resident, give them back
                written.add(r.region, r.page() << Block.PAGE_SHIFT, r.bytes());
            }
        }
        written.flush(pool);
        restoreMappings(runs, target);
        for (Run r : runs) {
            syncMirror(r.region, r.block, r.first, r.first + r.count);
        }
    }

    private void restoreMappings(List<Run> runs, int target) {
        for (Run r : runs) {
            if (r.action == Run.POPULATE || r.action == Run.LOAD) {
                continue;
            }
            if (r.action == Run.REMOTE_MAP) {
                continue;
            }
            boolean ro = r.region.attributes().anyReadOnly(r.page(), r.page() + r.count);
            int remote = r.block.remoteMask(r.first);
            if (r.action == Run.DUPLICATE) {
                int w = r.block.writer(r.first);
                if (w > 0 && !ro) {
                    device(w).driver().protect(r.va(), r.count, true);
                } else if (w > 0) {
                    protectEach(r, device(w).driver());
                } else if (w == 0) {
                    for (int n = Integer.numberOfTrailingZeros(remote); remote != 0; n = Integer.numberOfTrailingZeros(remote)) {
                        remote &= ~(1 << n);
                        restoreRemote(r, n, false);
                    }
                }
                continue;
            }
            if (target != 0 && (r.holders & 1) != 0) {
                for (int n = Integer.numberOfTrailingZeros(remote); remote != 0; n = Integer.numberOfTrailingZeros(remote)) {
                    remote &= ~(1 << n);
                    restoreRemote(r, n, true);
                }
            }
            int others = r.holders & ~(1 << target) & ~1;
            for (int n = Integer.numberOfTrailingZeros(others); others != 0; n = Integer.numberOfTrailingZeros(others)) {
                others &= ~(1 << n);
                for (int i = 0; i < r.count; i++) {
                    int p = r.first + i;
                    boolean w = r.block.isWritable(n, p) && !r.region.attributes().at(r.page() + i).readOnly();
                    device(n).driver().map(r.va() + ((long) i << Block.PAGE_SHIFT), r.block.frame(n, p), 1, w);
                }
            }
        }
    }

    /*
     * FREED_FRAMES_AFTER_MIRROR: why a device frame is freed only after the userfaultfd view stops
     * naming it.
     *
     * The fault service copies an AWAY page home from the device frame its state word names, at
     * any moment, without any Java lock. Commit used to free a move's source frames first and
     * repoint the state words (syncMirror) after. With two devices that left a window in which a
     * page moving from device 1 to device 2 still named its old device 1 frame although that frame
     * was back in the allocator; a second migration on another block (its own block locks, so not
     * excluded) allocated the frame and copied other data into it; a plain load or store of the
     * first page in that window faulted, the service copied the other data home and marked the
     * page STOLEN; the engine then took the stolen page as the host's truth. The store landed on
     * the wrong bytes and the bytes its owner had stored before were gone (one device, or one
     * mover, cannot reach it: a device-to-device move needs both).
     *
     * The rule now: the page table changes, then syncMirror repoints or drops the state words,
     * then the frames go back. A state word never names a frame the allocator can hand out, so
     * whatever the service copies is the page's own data. freeFrames(region, ...) asserts it.
     */

    /** Frames of one locked block to free once its mirror is in line (see FREED_FRAMES_AFTER_MIRROR). */
    private final class FrameReleases {
        private record Pending(int node, int[] frames, long firstPage) {}

        private final List<Pending> pending = new ArrayList<>(2);

        void add(int node, int[] frames, long firstPage) {
            // no longer resident, not yet free: counted in flight, so that a thread looking for room
            // meanwhile waits for them instead of concluding the device is full for good
            inFlightFrames.addAndGet(node, frames.length);
            pending.add(new Pending(node, frames, firstPage));
        }

        /** Frees them; {@code mirrorInLine} is false only for a killed region (its view reads no frame). */
        void flush(RegionState region, boolean mirrorInLine) {
            RuntimeException first = null;
            for (Pending f : pending) {
                try {
                    if (mirrorInLine) {
                        freeFrames(region, f.node, f.frames, f.frames.length, f.firstPage);
                    } else {
                        freeFrames(device(f.node).allocator(), f.frames, f.frames.length);
                    }
                } catch (RuntimeException e) {
                    first = first == null ? e : first;
                } finally {
                    inFlightFrames.addAndGet(f.node, -f.frames.length);
                }
            }
            pending.clear();
            if (first != null) {
                throw first;
            }
        }

        /**
         * The mirror could not be brought in line (a failed userfaultfd call): the frames stay
         * allocated rather than risk the fault service copying from a reused one; verify() reports them.
         */
        void abandon() {
            for (Pending f : pending) {
                inFlightFrames.addAndGet(f.node, -f.frames.length);
            }
            pending.clear();
        }
    }

    /**
     * Frees device frames that held pages [firstPage, firstPage+count) of a region, after checking
     * (with assertions on) that no state word of the userfaultfd view still names one of them.
     */
    private void freeFrames(RegionState region, int node, int[] frames, int count, long firstPage) {
        HostMirror mirror = region.mirror();
        if (mirror != null) {
            assert mirrorNamesNone(mirror, device(node).driver(), frames, count, firstPage)
                    : region + ": freeing a device frame that the userfaultfd view of pages from " + firstPage + " still names";
        }
        freeFrames(device(node).allocator(), frames, count);
    }

    private static boolean mirrorNamesNone(HostMirror mirror, DeviceDriver d, int[] frames, int count, long firstPage) {
        for (int i = 0; i < count; i++) {
            long st = mirror.state(firstPage + i);
            if ((st & HostMirror.KIND) == HostMirror.KIND_AWAY && (st & HostMirror.STOLEN) == 0
                    && (st & HostMirror.SOURCE) == d.hostAddress(frames[i])) {
                return false;
            }
        }
        return true;
    }

    /**
     * Puts back device {@code n}'s entries for the host's copy of a run's pages, each as writable
     * as the page table says (pages of one run can differ there: a remote entry made while the
     * host was not the writer stays read-only), in stretches of like pages. {@code map}: the
     * entries were unmapped (else only write-protected).
     */
    private void restoreRemote(Run r, int n, boolean map) {
        DeviceDriver d = device(n).driver();
        int i = 0;
        while (i < r.count) {
            boolean w = remoteWritable(r, n, i);
            int j = i + 1;
            while (j < r.count && remoteWritable(r, n, j) == w) {
                j++;
            }
            long va = r.va() + ((long) i << Block.PAGE_SHIFT);
            if (map) {
                d.mapHost(va, va, j - i, w);
            } else if (w) {
                d.protect(va, j - i, true);
            }
            i = j;
        }
    }

    private static boolean remoteWritable(Run r, int n, int i) {
        return r.block.isRemoteWritable(n, r.first + i) && !r.region.attributes().at(r.page() + i).readOnly();
    }

    private static void freeFrames(BuddyAllocator alloc, int[] frames, int count) {
        int i = 0;
        while (i < count) {
            int n = 1;
            while (i + n < count && frames[i + n] == frames[i] + n) {
                n++;
            }
            alloc.freeRun(frames[i], n);
            i += n;
        }
    }

    /** Phase 4: destination mappings, page-table update, source frames freed. */
    private void commit(List<Run> runs, int target, Trigger trigger) {
        HostReleases hostReleases = new HostReleases();
        for (Run r : runs) {
            RegionState region = r.region;
            boolean anyReadOnly = region.attributes().anyReadOnly(r.page(), r.page() + r.count);
            // source copies go (device frames freed, host frames handed back)
            if (r.action == Run.DUPLICATE) {
                commitDuplicate(r, target, trigger);
                continue;
            }
            if (r.action == Run.REMOTE_MAP) {
                boolean w = r.block.isWritable(0, r.first) && !region.attributes().anyReadOnly(r.page(), r.page() + r.count);
                device(target).driver().mapHost(r.va(), r.va(), r.count, w);
                r.block.setRemoteRange(target, r.first, r.count, w);
                continue;
            }
            if (target != 0 && (r.holders & 1) != 0) {
                int remote = r.block.remoteMask(r.first);
                for (int n = Integer.numberOfTrailingZeros(remote); remote != 0; n = Integer.numberOfTrailingZeros(remote)) {
                    remote &= ~(1 << n);
                    r.block.clearRemoteRange(n, r.first, r.count);
                }
            }
            int others = r.action == Run.POPULATE || r.action == Run.LOAD ? 0 : r.holders & ~(1 << target);
            // source device frames are freed only after syncMirror below: see FREED_FRAMES_AFTER_MIRROR
            int[][] oldFrames = null;
            for (int n = Integer.numberOfTrailingZeros(others); others != 0; n = Integer.numberOfTrailingZeros(others)) {
                others &= ~(1 << n);
                if (n != 0) {
                    int[] old = new int[r.count];
                    for (int i = 0; i < r.count; i++) {
                        old[i] = r.block.frame(n, r.first + i);
                    }
                    inFlightFrames.addAndGet(n, r.count);   // counted before they leave residency: see FrameReleases.add
                    r.block.removeResidentRange(n, r.first, r.count);
                    if (oldFrames == null) {
                        oldFrames = new int[nodes.length][];
                    }
                    oldFrames[n] = old;
                } else {
                    r.block.removeResidentRange(0, r.first, r.count);
                    if (region.mirror() == null) {   // a mirrored region's host pages go in syncMirror
                        hostReleases.add(region, r.page() << Block.PAGE_SHIFT, r.bytes());
                    }
                }
            }
            // the target becomes the only holder and the writer; untouched pages a device only
            // reads come into being there as zeros nobody may write yet (see Block's zero pages):
            // eviction drops them rather than copying zeros home
            boolean zeros = r.action == Run.POPULATE && target != 0 && !r.write;
            r.block.addResidentRange(target, r.first, r.count, !zeros);
            if (zeros) {
                r.block.setZeroRange(r.first, r.count);
            }
            if (target != 0 && r.frames != null) {
                r.block.setFrames(target, r.first, r.frames, r.count);
            }
            // the host's view lets go (its readers fault from now on) before a device may write:
            // never a writer on one node while another still maps the page
            boolean inLine = false;
            try {
                syncMirror(region, r.block, r.first, r.first + r.count);
                inLine = true;
            } finally {
                // frames the view may still name stay allocated (verify() reports them) rather than be reused
                RuntimeException first = null;
                for (int n = 1; oldFrames != null && n < nodes.length; n++) {
                    if (oldFrames[n] != null) {
                        try {
                            if (inLine) {
                                freeFrames(region, n, oldFrames[n], r.count, r.page());
                            }
                        } catch (RuntimeException e) {
                            first = first == null ? e : first;
                        } finally {
                            inFlightFrames.addAndGet(n, -r.count);
                        }
                    }
                }
                if (first != null) {
                    throw first;
                }
            }
            if (target != 0) {
                DeviceDriver driver = device(target).driver();
                if (r.action == Run.COLLAPSE) {
                    if (anyReadOnly) {
                        protectEach(r, driver);
                    } else {
                        driver.protect(r.va(), r.count, true);
                    }
                } else if (anyReadOnly || zeros) {
                    for (int i = 0; i < r.count; i++) {
                        boolean w = !zeros && !region.attributes().at(r.page() + i).readOnly();
                        driver.map(r.va() + ((long) i << Block.PAGE_SHIFT), r.frames[i], 1, w);
                    }
                } else {
                    int i = 0;
                    while (i < r.count) {
                        int n = 1;
                        while (i + n < r.count && r.frames[i + n] == r.frames[i] + n) {
                            n++;
                        }
                        driver.map(r.va() + ((long) i << Block.PAGE_SHIFT), r.frames[i], n, true);
                        i += n;
                    }
                }
            }
            if (r.action == Run.MOVE || r.action == Run.LOAD) {
                region.counters().migrated(target, trigger, r.count);
                memoryCounters.migrated(target, trigger, r.count);
            }
            // fault-driven ping-pong and capacity thrashing (evicted, faulted back) both count
            if (r.action == Run.MOVE && (trigger == Trigger.FAULT || trigger == Trigger.EVICTION) && thrashControl
                    && r.block.recordMove(target, System.nanoTime(), THRASH_WINDOW_NANOS, thrashHoldNanos)) {
                region.counters().thrashed(target);
                memoryCounters.thrashed(target);
            }
        }
        hostReleases.flush(pool);
    }

    /** A read-only copy joins the holders; the former writer keeps its copy without write. */
    private void commitDuplicate(Run r, int target, Trigger trigger) {
        int w = r.block.writer(r.first);
        if (w >= 0) {
            r.block.clearWritableRange(w, r.first, r.count);
        }
        if (w == 0) {
            int remote = r.block.remoteMask(r.first);
            for (int n = Integer.numberOfTrailingZeros(remote); remote != 0; n = Integer.numberOfTrailingZeros(remote)) {
                remote &= ~(1 << n);
                r.block.clearRemoteWritableRange(n, r.first, r.count);
            }
        }
        r.block.addResidentRange(target, r.first, r.count, false);
        if (target != 0) {
            // a local copy replaces any remote entry the target had (the map below overwrites it)
            r.block.clearRemoteRange(target, r.first, r.count);
            r.block.setFrames(target, r.first, r.frames, r.count);
            DeviceDriver driver = device(target).driver();
            int i = 0;
            while (i < r.count) {
                int n = 1;
                while (i + n < r.count && r.frames[i + n] == r.frames[i] + n) {
                    n++;
                }
                driver.map(r.va() + ((long) i << Block.PAGE_SHIFT), r.frames[i], n, false);
                i += n;
            }
        }
        syncMirror(r.region, r.block, r.first, r.first + r.count);
        r.region.counters().migrated(target, trigger, r.count);
        memoryCounters.migrated(target, trigger, r.count);
    }

    private static void protectEach(Run r, DeviceDriver driver) {
        for (int i = 0; i < r.count; i++) {
            boolean w = !r.region.attributes().at(r.page() + i).readOnly();
            driver.protect(r.va() + ((long) i << Block.PAGE_SHIFT), 1, w);
        }
    }

    // ------------------------------------------------------------------------------------------
    // discard, protection, teardown
    // ------------------------------------------------------------------------------------------

    /**
     * DONT_NEED: frees every node's copy of pages [from, to) so they read as zeros everywhere.
     * Waits while any of them is pinned by another thread.
     */
    public void discard(RegionState region, long from, long to) {
        List<Interval> ivs = wholeRange(region, from, to);
        while (true) {
            List<Block> locked = lockAll(ivs);
            long seen;
            boolean abandoned;
            try {
                Pins.Pin p = region.pins().any(from, to);
                if (p == null) {
                    reconcile(region, from, to);
                    dropAll(region, locked, from, to, true);
                    if (region.mirror() == null) {
                        region.host().discard(from << Block.PAGE_SHIFT, (to - from) << Block.PAGE_SHIFT);
                    }
                    return;
                }
                if (p.owner() == Thread.currentThread()) {
                    throw new PinnedByCallerException(region, p.node(), p.from(), p.to());
                }
                seen = region.pins().version();
                abandoned = !p.owner().isAlive();
            } finally {
                unlockAll(locked);
            }
            if (abandoned) {
                region.lifecycle().reapAbandonedViews();
                continue;
            }
            awaitRelease(region.pins(), seen);
        }
    }

    /** One interval covering [from, to) with nothing requested inside: for operations on a whole range. */
    private static List<Interval> wholeRange(RegionState region, long from, long to) {
        Interval whole = new Interval(region, from, to);
        whole.seal();
        return List.of(whole);
    }

    /** The block's first page index inside [from, ...). */
    private static int firstIn(Block b, long from) {
        return (int) Math.max(0, from - (b.index() << 9));
    }

    /** The block's page index where [..., to) ends, clamped to the region's last page. */
    private static int endIn(RegionState region, Block b, long to) {
        return (int) Math.min(region.table().pagesIn(b.index()), to - (b.index() << 9));
    }

    /** One TLB invalidation per device that had entries released or protected. */
    private void invalidateAll(VaRanges[] ranges) {
        for (int n = 1; n < nodes.length; n++) {
            if (ranges[n] != null) {
                device(n).driver().invalidate(ranges[n]);
            }
        }
    }

    private static VaRanges rangesOf(VaRanges[] ranges, int node) {
        if (ranges[node] == null) {
            ranges[node] = new VaRanges();
        }
        return ranges[node];
    }

    /** Removes pages [from, to) of the locked blocks from every node; device entries and frames go. */
    private void dropAll(RegionState region, List<Block> blocks, long from, long to, boolean mirror) {
        VaRanges[] ranges = new VaRanges[nodes.length];
        for (Block b : blocks) {
            long base = b.index() << 9;
            int p0 = firstIn(b, from);
            int p1 = endIn(region, b, to);
            for (int n = 1; n < nodes.length; n++) {
                if (b.hasRemoteOn(n) && b.clearRemoteRange(n, p0, p1 - p0) > 0) {
                    // remote entries of the host's copy go with it
                    long va = region.pageAddress(base + p0);
                    device(n).driver().unmap(va, p1 - p0);
                    rangesOf(ranges, n).add(va, (long) (p1 - p0) << Block.PAGE_SHIFT);
                }
            }
            FrameReleases frees = new FrameReleases();
            try {
                for (int n = 1; n < nodes.length; n++) {
                    dropDeviceCopies(region, b, n, p0, p1, ranges, frees);
                }
                if (b.hasPagesOn(0)) {
                    b.removeResidentRange(0, p0, p1 - p0);
                }
                if (mirror) {
                    syncMirror(region, b, p0, p1);
                }
            } catch (RuntimeException | Error e) {
                frees.abandon();   // see FrameReleases.abandon
                throw e;
            }
            frees.flush(region, mirror);
        }
        invalidateAll(ranges);
    }

    /** Brings device entries of [from, to) in line with the range's protection. */
    public void reprotect(RegionState region, long from, long to) {
        List<Block> locked = lockAll(wholeRange(region, from, to));
        try {
            // pages the fault service took are the host's now: they must be protected too
            reconcile(region, from, to);
            VaRanges[] ranges = new VaRanges[nodes.length];
            for (Block b : locked) {
                long base = b.index() << 9;
                int p0 = firstIn(b, from);
                int p1 = endIn(region, b, to);
                for (int n = 1; n < nodes.length; n++) {
                    if (!b.hasPagesOn(n) && !b.hasRemoteOn(n)) {
                        continue;
                    }
                    for (int p = p0; p < p1; p++) {
                        boolean local = b.isResident(n, p);
                        if (local || b.isRemote(n, p)) {
                            long va = region.pageAddress(base + p);
                            boolean w = (local ? b.isWritable(n, p) : b.isRemoteWritable(n, p))
                                    && !region.attributes().at(base + p).readOnly();
                            device(n).driver().protect(va, 1, w);
                            rangesOf(ranges, n).add(va, Block.PAGE_BYTES);
                        }
                    }
                }
                syncMirror(region, b, p0, p1);
            }
            invalidateAll(ranges);
        } finally {
            unlockAll(locked);
        }
    }

    /** Frees every device frame of a region that is being freed (its lifecycle has drained). */
    public void dropRegion(RegionState region) {
        List<Block> all = new ArrayList<>();
        region.table().forEachBlock(all::add);
        for (Block b : all) {
            b.lock.lock();
        }
        try {
            // a mirrored region was killed first: its view is going away, nothing to keep in line
            dropAll(region, all, 0, region.pages(), false);
        } finally {
            unlockAll(all);
        }
    }

    // ------------------------------------------------------------------------------------------
    // the userfaultfd view: a mirror of the host column, kept by the native fault service
    // ------------------------------------------------------------------------------------------

    /**
     * Makes the view of pages [p0, p1) of a locked block mirror the page table: mapped (read-only
     * where the host may not write) where the host holds them, otherwise pointing the fault service
     * at a device frame holding them, or at nothing (zeros).
     */
    private void syncMirror(RegionState region, Block b, int p0, int p1) {
        HostMirror mirror = region.mirror();
        if (mirror == null) {
            return;
        }
        long base = b.index() << 9;
        int p = p0;
        while (p < p1) {
            int holders = b.residentMask(p);
            boolean hostWrites = (holders & 1) != 0 && b.isWritable(0, p);
            int q = p + 1;
            while (q < p1 && b.residentMask(q) == holders && ((holders & 1) == 0 || b.isWritable(0, q) == hostWrites)) {
                q++;
            }
            if ((holders & 1) != 0) {
                boolean ro = !hostWrites || region.attributes().anyReadOnly(base + p, base + q);
                mirror.sync(base + p, q - p, ro ? HostMirror.Want.HOST_READ_ONLY : HostMirror.Want.HOST, null);
            } else if (holders != 0) {
                int n = Integer.numberOfTrailingZeros(holders);
                DeviceDriver d = device(n).driver();
                long[] sources = new long[q - p];
                for (int i = 0; i < q - p; i++) {
                    sources[i] = d.hostAddress(b.frame(n, p + i));
                }
                mirror.sync(base + p, q - p, HostMirror.Want.AWAY, sources);
            } else {
                mirror.sync(base + p, q - p, HostMirror.Want.EMPTY, null);
            }
            p = q;
        }
    }

    /**
     * Takes into the page table what the fault service did on its own in pages [from, to) of a
     * region whose blocks this thread has locked: each page it took home (or let the host write)
     * becomes the host's alone, every device copy of it dropped.
     */
    private void reconcile(RegionState region, long from, long to) {
        HostMirror mirror = region.mirror();
        if (mirror == null || to <= from) {
            return;
        }
        VaRanges[] ranges = null;
        long runs = 0;
        long arrived = 0;
        long firstPage = Long.MAX_VALUE;
        long endPage = 0;
        for (long bi = from >>> 9; bi <= (to - 1) >>> 9; bi++) {
            long[] taken = mirror.collect(bi);
            if (taken == null) {
                continue;
            }
            if (ranges == null) {
                ranges = new VaRanges[nodes.length];
            }
            Block b = region.table().blockOrCreate(bi);
            int pages = region.table().pagesIn(bi);
            int p = 0;
            while (p < pages) {
                if (!Bits.get(taken, p)) {
                    p++;
                    continue;
                }
                int q = p + 1;
                while (q < pages && Bits.get(taken, q)) {
                    q++;
                }
                arrived += takeHome(region, b, p, q, ranges);
                runs++;
                firstPage = Math.min(firstPage, (bi << 9) + p);
                endPage = Math.max(endPage, (bi << 9) + q);
                p = q;
            }
        }
        if (ranges != null) {
            invalidateAll(ranges);
        }
        if (runs > 0) {
            // the service resolved these faults on its own, earlier; this is when Java hears of them
            FaultEvent event = new FaultEvent();
            if (event.shouldCommit()) {
                event.path = FaultEvent.USERFAULTFD;
                event.node = 0;
                event.region = region.id();
                event.offset = firstPage << Block.PAGE_SHIFT;
                event.length = (endPage - firstPage) << Block.PAGE_SHIFT;
                event.faults = runs;
                event.pagesMigrated = arrived;
                event.commit();
            }
        }
    }

    /** Removes device {@code n}'s copies of pages [p0, p1) of a locked block: entries released, frames freed. */
    private void dropDeviceCopies(RegionState region, Block b, int n, int p0, int p1, VaRanges[] ranges,
                                  FrameReleases frees) {
        if (!b.hasPagesOn(n)) {
            return;
        }
        long base = b.index() << 9;
        int p = p0;
        while (p < p1) {
            if (!b.isResident(n, p)) {
                p++;
                continue;
            }
            int q = p;
            while (q < p1 && b.isResident(n, q)) {
                q++;
            }
            long va = region.pageAddress(base + p);
            int[] old = new int[q - p];
            for (int i = p; i < q; i++) {
                old[i - p] = b.frame(n, i);
            }
            device(n).driver().unmap(va, q - p);
            rangesOf(ranges, n).add(va, (long) (q - p) << Block.PAGE_SHIFT);
            frees.add(n, old, base + p);   // counted in flight before the frames leave residency
            b.removeResidentRange(n, p, q - p);
            p = q;
        }
    }

    /** Pages [p, q) of a locked block were taken by the host: it becomes their only holder and writer. */
    private int takeHome(RegionState region, Block b, int p, int q, VaRanges[] ranges) {
        int arrived = 0;
        for (int i = p; i < q; i++) {
            // data came from a device only where a device held the page and the host did not;
            // a first touch of a page nobody held moved nothing
            int holders = b.residentMask(i);
            arrived += (holders & 1) == 0 && holders != 0 ? 1 : 0;
        }
        FrameReleases frees = new FrameReleases();
        try {
            for (int n = 1; n < nodes.length; n++) {
                dropDeviceCopies(region, b, n, p, q, ranges, frees);
            }
            b.addResidentRange(0, p, q - p, true);
            syncMirror(region, b, p, q);
        } catch (RuntimeException | Error e) {
            frees.abandon();   // see FrameReleases.abandon
            throw e;
        }
        frees.flush(region, true);
        if (arrived > 0) {
            region.counters().migrated(0, Trigger.FAULT, arrived);
            memoryCounters.migrated(0, Trigger.FAULT, arrived);
        }
        return arrived;
    }

    /**
     * Takes into the page table what the fault service did on its own anywhere in a region: for
     * readers of the page table (statistics, verification, snapshots) that want it current.
     */
    public void reconcileAll(RegionState region) {
        if (region.mirror() == null || region.pages() == 0) {
            return;
        }
        try {
            region.lifecycle().enter();   // a region being freed has nothing left to reconcile
        } catch (IllegalStateException freed) {
            return;
        }
        try {
            if (!region.mirror().takeAnySteals()) {
                return;
            }
            List<Block> locked = lockAll(wholeRange(region, 0, region.pages()));
            try {
                reconcile(region, 0, region.pages());
            } finally {
                unlockAll(locked);
            }
        } finally {
            region.lifecycle().exit();
        }
    }

    @Override
    public void close() {
        pool.close();
    }
}

