package dev.hetmem.migrate;

import dev.hetmem.CopyPath;
import dev.hetmem.MigrationMode;
import dev.hetmem.PinnedByCallerException;
import dev.hetmem.Trigger;
import dev.hetmem.internal.CallerThreads;
import dev.hetmem.internal.DeviceNode;
import dev.hetmem.internal.Pins;
import dev.hetmem.internal.RegionState;
import dev.hetmem.internal.ResidencyRegistry;
import dev.hetmem.observe.Counters;
import dev.hetmem.pagetable.Block;

import java.util.ArrayList;
import java.util.BitSet;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import static dev.hetmem.driver.PageGeometry.BLOCK_PAGES;
import static dev.hetmem.driver.PageGeometry.PAGE_SHIFT;
import static dev.hetmem.driver.PageGeometry.blockOf;
import static dev.hetmem.driver.PageGeometry.bytes;
import static dev.hetmem.driver.PageGeometry.firstPage;
import static dev.hetmem.driver.PageGeometry.pageInBlock;

/**
 * The migration engine's coordinator: faults, launches, prefetch and release all come through
 * {@link #ensure}; loads through {@link #fill}; DONT_NEED through {@link #discard}; protection
 * changes through {@link #reprotect}; freeing through {@link #dropRegion}.
 *
 * <p>Reading map. One call of {@link #ensure} is, as Linux's {@code migrate_vma_*} sequence:
 * <ol>
 *   <li>{@link Interval#normalize}: requests widened to granules, merged, sorted;</li>
 *   <li>{@link BlockLocks#lockAll}: every block locked, ascending (docs/design.md, lock table);</li>
 *   <li>{@link StealReconciler#reconcile}: what host code did on its own is taken in first;</li>
 *   <li>{@link Planner#plan}: runs of pages, each with its {@link Action}, or the pin in the way;</li>
 *   <li>{@link BatchRunner#run}: revoke → allocate ({@link Eviction} when the device is full) →
 *       copy → commit, or undo;</li>
 *   <li>the requested pages pinned (PIN_AFTER_STEAL below), locks released.</li>
 * </ol>
 * A pass that cannot finish (a pin to wait for, room that other threads will free, a page stolen
 * before its pin) lets go of every lock and starts over; the reasons are one {@link Next} object.
 *
 * <p>Locking: all blocks a call touches are locked before planning and held to the end; no other
 * lock is held while waiting for a pin. A page kept elsewhere by a pin (an open host view, a
 * running kernel) is waited for if the caller needs it, and left alone if it only shares the
 * caller's granule.
 */
public final class MigrationEngine implements AutoCloseable {

    /**
     * What an {@link #ensure} did: pages it covered, granules faulted in (all told, and per region in
     * {@code faultsByRegion}, for the regions' own statistics), pages migrated, and its pins (one
     * per request when pinning was asked).
     */
    public record Outcome(long pagesTouched, long faults, long pagesMigrated, List<Pins.Pin> pins,
                          Map<RegionState, Long> faultsByRegion) {
        /** An outcome of no fault. */
        public Outcome(long pagesTouched, long pagesMigrated, List<Pins.Pin> pins) {
            this(pagesTouched, 0, pagesMigrated, pins, Map.of());
        }
    }

    /** Throws if the calling thread is a work item of a faulting launch (see EngineContext). */
    public void refuseFromFaultingItem(String call) {
        ctx.refuseFromFaultingItem(call);
    }

    /** Whether {@link #ensure} pins the requested pages on the target before it returns. */
    public enum Pinning { PIN, NO_PIN }

    /** {@link #ensure}'s {@code onlyFrom} for "move pages wherever they are". */
    public static final int FROM_ANY_NODE = -1;

    /** Prefetch and release work in batches of at most this many blocks (1 GiB). */
    static final int MAX_BATCH_BLOCKS = 512;

    private final EngineContext ctx;
    private final Planner planner;
    private final BatchRunner runner;
    private final StealReconciler steals;
    private final Exclusivity exclusivity;

    public MigrationEngine(DeviceNode[] nodes, int copyThreads, MigrationMode mode, CopyPath copyPath, Counters memoryCounters,
                           ResidencyRegistry residency) {
        this.ctx = new EngineContext(nodes, copyThreads, mode, copyPath, memoryCounters, residency);
        this.planner = new Planner(ctx);
        this.runner = new BatchRunner(ctx);
        this.steals = new StealReconciler(ctx);
        this.exclusivity = new Exclusivity(ctx, steals);
    }

    public void thrashControl(boolean on, long holdNanos) {
        ctx.thrashControl = on;
        ctx.thrashHoldNanos = holdNanos;
    }

    public MigrationMode mode() {
        return ctx.mode;
    }

    public void mode(MigrationMode m) {
        ctx.mode = m;
    }

    public CopyPath copyPath() {
        return ctx.copyPath;
    }

    public void copyPath(CopyPath p) {
        ctx.copyPath = p;
    }

    public int copyThreads() {
        return ctx.pool.threads();
    }

    /**
     * Frames of device {@code node} counted in flight now ({@link InFlightFrames}): held by batches
     * that have not committed or undone, or kept for running kernels. On a quiet memory, the kept
     * frames alone; anything more is a count that drifted, and a full device would wait for room
     * that never comes.
     */
    public long framesInFlight(int node) {
        return ctx.inFlight.get(node);
    }

    /**
     * The frames of device {@code node} that left the page table while running kernels still read
     * them (DETACHABLE_PINS in {@link Pins}): allocated until those kernels end. A copy.
     */
    public BitSet keptFrames(int node) {
        return ctx.kept.on(node);
    }

    // ------------------------------------------------------------------------------------------
    // ensure: the entry point of faults, launches, prefetch and release
    // ------------------------------------------------------------------------------------------

    /**
     * Makes every page of every request resident on {@code target} (writable where the request
     * writes), migrating whole granules where possible, and pins the requested pages there if
     * asked. Either everything is in place (and pinned), or an exception is thrown and nothing
     * changed for the batch that failed.
     *
     * @param onlyFrom a node: only pages resident there move (release); or {@link #FROM_ANY_NODE}
     */
    public Outcome ensure(List<MigrationRequest> requests, int target, Trigger trigger, Pinning pinning, int onlyFrom) {
        return ensure(requests, target, trigger, pinning, onlyFrom, true);
    }

    /** As above; with {@code widen} false only the pages asked for move, not the rest of their granules. */
    private Outcome ensure(List<MigrationRequest> requests, int target, Trigger trigger, Pinning pinning, int onlyFrom,
                           boolean widen) {
        ctx.refuseFromFaultingItem("a migration");
        boolean pin = pinning == Pinning.PIN;
        List<Interval> intervals = Interval.normalize(requests, widen);
        long started = 0;
        long stealWaitSince = 0;
        // pages that passes before the last moved (committed, then taken home by host code before they
        // were pinned, so the call went round again): the outcome counts them too
        long migratedEarlier = 0;
        // a plain argument's pages on the target move to its new run within the device where the run is
        // free at once, unless a batch that did so found no room for the rest of its frames (the old
        // ones held till commit): then, for the rest of the call, they go through the host as before
        boolean relocate = true;
        while (true) {
            List<Block> locked = BlockLocks.lockAll(intervals);
            Next next = new Next();
            List<Placement.Span> spans = List.of();
            try {
                for (Interval iv : intervals) {
                    steals.reconcile(iv.region, iv.from, iv.to);
                }
                // checked under the block locks: a partial free marks its pages before it drops them
                // under the same locks, so no batch planned after the mark can bring one back. Release
                // and eviction sweep whole regions: the planner passes over freed pages for them
                if (trigger != Trigger.RELEASE && trigger != Trigger.EVICTION) {
                    String what = "a " + trigger.name().toLowerCase(java.util.Locale.ROOT);   // once: a prefetch list has thousands
                    for (MigrationRequest r : requests) {
                        r.region().refuseFreed(r.from(), r.to(), what);
                        refuseReadOnly(r, what);
                    }
                }
                // device-exclusive access: host views and exclusive kernels wait for each other (Exclusivity)
                Exclusivity.Blocker blocker = trigger == Trigger.FAULT ? exclusivity.blocker(requests, target) : null;
                // plain arguments: spans not yet in consecutive frames get a free run, into which the pages the
                // target holds move within it; without one for every span, they leave the target (Placement)
                spans = blocker == null && onlyFrom < 0 && target != 0
                        ? Placement.misplaced(ctx, requests, target) : List.of();
                boolean relocating = relocate && !spans.isEmpty() && Placement.claimRuns(ctx, runner.eviction().compaction(), spans, target);
                Placement.Stuck stuck = spans.isEmpty() ? null : Placement.vacate(ctx, runner.eviction(), spans, target);
                if (blocker != null) {
                    next.waitFor(blocker.pin(), blocker.region());
                } else if (stuck != null) {
                    if (stuck.pin() != null) {
                        next.waitFor(stuck.pin(), stuck.region());
                    }   // else the pin went meanwhile: nothing set, so the loop looks again at once
                } else if (onlyFrom < 0 && spans.isEmpty() && Planner.satisfied(requests, target)) {
                    // the common case of a host access: nothing to move, so no granule to plan
                    if (trigger == Trigger.FAULT && target != 0) {
                        writableEntriesInLine(requests, target);
                    }
                    List<Pins.Pin> pins = pin ? pinChecked(requests, target) : List.of();
                    if (pins != null && pins != LOOK_AGAIN) {
                        if (pin) {
                            markExclusive(requests, target, pins);
                        }
                        // a use with nothing to move is a use all the same: eviction ranks by it
                        touch(locked);
                        return new Outcome(touched(requests), migratedEarlier, pins);
                    }
                    next.afterSteal(requests, pins);
                } else {
                    Planner.Plan plan = planner.plan(intervals, target, onlyFrom, requests, relocating ? spans : List.of());
                    if (widen && plan.conflict == null && target != 0 && plan.framesNeeded() > batchPages(target)) {
                        // whole granules would take more than one batch may hold of the device: move only
                        // the pages asked for (as UVM does under memory pressure); the locks cover them
                        plan = planner.plan(Interval.normalize(requests, false), target, onlyFrom, requests,
                                relocating ? spans : List.of());
                    }
                    if (plan.conflict != null) {
                        next.waitFor(plan.conflict, plan.conflictRegion);
                    } else {
                        Needed needed = new Needed(intervals);
                        for (Run r : plan.runs) {
                            r.needed = needed;
                        }
                        if (plan.runs.isEmpty() && trigger == Trigger.FAULT && target != 0) {
                            // nothing to do where the pages are not all held on the target (some mapped in place,
                            // writable by the table): the entries, as where nothing is to move, in line
                            writableEntriesInLine(requests, target);
                        }
                        try {
                            long migrated;
                            try {
                                migrated = runner.execute(plan.runs, target, trigger, spans);
                            } finally {
                                // dated when its pages are there, not when it began (a batch that fails
                                // part-way, or page by page waits for room, has some there too): a prefetch
                                // that ran beside a launch ranks after that launch's pages, as what it brought
                                // is wanted next (a batch's own blocks are locked while it runs, so no
                                // eviction ranks them meanwhile)
                                touch(locked);
                            }
                            List<Pins.Pin> pins = pin ? pinChecked(requests, target) : List.of();
                            if (pins != null && pins != LOOK_AGAIN) {
                                if (pin) {
                                    markExclusive(requests, target, pins);
                                }
                                return new Outcome(touched(requests), plan.faults, migratedEarlier + migrated, pins,
                                        plan.faultsByRegion);
                            }
                            migratedEarlier += migrated;
                            next.afterSteal(requests, pins);
                        } catch (Eviction.RetryBatch | Eviction.DeviceFull e) {
                            if (e instanceof Eviction.RetryBatch retry) {
                                migratedEarlier += retry.committedBefore();   // page by page: those went before the wait
                            }
                            if (plan.relocates()) {
                                // the rest of the batch found no room while the relocated pages' old frames
                                // are held (the batch was undone): they leave and come back instead, which
                                // frees those frames first, at once rather than after a pause for room
                                relocate = false;
                                next.lookAgain = true;
                            } else if (e instanceof Eviction.DeviceFull full) {
                                throw full;
                            } else {
                                next.retryForRoom = true;
                            }
                        }
                    }
                }
            } finally {
                try {
                    Placement.releaseRuns(ctx, spans, target);   // runs claimed for spans and not taken
                } finally {
                    BlockLocks.unlockAll(locked);
                }
            }
            if (next.retryForRoom) {
                started = Eviction.pauseBeforeRetry(started == 0 ? System.nanoTime() : started, target);
                continue;
            }
            started = 0;   // the deadline is for room alone, not for waiting on pins
            if (!next.stolenWait) {
                stealWaitSince = 0;   // the deadline counts one unbroken wait on a steal
            } else if (stealWaitSince == 0) {
                stealWaitSince = System.nanoTime();
            } else if (System.nanoTime() - stealWaitSince > Eviction.ROOM_DEADLINE_NANOS) {
                throw new IllegalStateException("a page of " + requests.getFirst().region() + " that this call needs was "
                        + "taken home by host code while another kernel still holds it; waited "
                        + Eviction.ROOM_DEADLINE_NANOS / 1_000_000_000L + " s for that kernel to end");
            }
            if (next.waitOn == null || next.lookAgain) {
                continue;
            }
            if (next.abandoned != null && next.abandoned.lifecycle().reapAbandonedViews() > 0) {
                continue;   // a dead thread's views closed: look again at once
            }
            // a pin of a dead thread with no view to reap (an Error leaked it) is waited for as any pin,
            // a pause at a time: looking again at once spun without end
            awaitRelease(next.waitOn, next.seen);
        }
    }

    /**
     * A write (a view that writes, a kernel's written argument, a device's write fault) of a page
     * made read-only: refused here, under the block locks, as well as by the caller's check before
     * (which no lock orders with a concurrent {@code protect}). So a {@code protect} that has
     * returned is seen by every write access granted after it: one whose check passed just before
     * the protection changed was handed a writable view or frame after {@code protect} returned.
     * Protection takes the same block locks to change the entries, so the two are ordered.
     */
    private static void refuseReadOnly(MigrationRequest r, String what) {
        if (r.write()) {
            long ro = r.region().attributes().firstReadOnly(r.from(), r.to());
            if (ro >= 0) {
                throw new dev.hetmem.ProtectionException(what + " writes pages [" + r.from() + ", " + r.to() + ") of "
                        + r.region() + " but the page at offset " + (ro << PAGE_SHIFT) + " was made read-only");
            }
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

        /** A pin keeps a needed page elsewhere: wait for it to go (or throw, if it is the caller's own). */
        void waitFor(Pins.Pin p, RegionState region) {
            if (CallerThreads.isCallers(p)) {   // its own, or its kernel's launch's
                throw new PinnedByCallerException(region, p.node(), p.from(), p.to());
            }
            waitOn = region.pins();
            seen = waitOn.version();
            if (!p.owner().isAlive()) {
                abandoned = region;   // a view whose thread ended without closing it
            }
        }

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
    private static final List<Pins.Pin> LOOK_AGAIN = Collections.unmodifiableList(new ArrayList<>());

    /**
     * Marks the pinned requests' exclusive pages ({@link Exclusivity#markLocked}); if that fails (a
     * driver's unmap or invalidate threw), the pins just taken go again before the failure is thrown:
     * the caller never got them, so nothing else would release them, and every later migration of
     * those pages would wait for them for as long as this thread lives.
     */
    private void markExclusive(List<MigrationRequest> requests, int target, List<Pins.Pin> pins) {
        try {
            exclusivity.markLocked(requests, target);
        } catch (RuntimeException | Error e) {
            for (int i = pins.size() - 1; i >= 0; i--) {
                try {
                    requests.get(i).region().unpin(pins.get(i));
                } catch (RuntimeException | Error again) {
                    e.addSuppressed(again);
                }
            }
            throw e;
        }
    }

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
            if (r.region().host().stolenIn(r.from(), r.to(), false)) {
                for (int i = pins.size() - 1; i >= 0; i--) {
                    requests.get(i).region().unpin(pins.get(i));
                }
                // a stolen page another kernel still holds is taken in only when that kernel ends
                if (!r.region().host().stolenIn(r.from(), r.to(), true)) {
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

    /** Records a use of the locked blocks now: eviction takes the least recently used first. */
    private static void touch(List<Block> locked) {
        long now = System.nanoTime();
        for (Block b : locked) {
            b.touch(now);
        }
    }

    private static long touched(List<MigrationRequest> requests) {
        long n = 0;
        for (MigrationRequest r : requests) {
            n += r.to() - r.from();
        }
        return n;
    }

    private static void awaitRelease(Pins pins, long seen) {
        try {
            pins.awaitRelease(seen);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new dev.hetmem.InterruptedOperationException("interrupted while waiting for pinned pages", e);
        }
    }

    // ------------------------------------------------------------------------------------------
    // fill, prefetch in batches
    // ------------------------------------------------------------------------------------------

    /**
     * Fills pages [from, to) of a region on device {@code target} with the bytes at host address
     * {@code buffer} (the loader's device path: no host copy of the region is made). One batch:
     * frames allocated, one copy, then mapped; undone if anything fails.
     *
     * <p>The pages are the load's to write: host code that reached them first (a read of a page
     * already loaded brings in its granule, the rest as zeros; a read or write of a page not yet
     * loaded) sees its copies dropped and the loaded bytes take their place, as a write of the whole
     * page after its access would; a page pinned meanwhile (an open host view) is waited for. A page
     * the userfaultfd service takes while the batch runs (untouched when it looked, so taken as
     * zeros) takes the loaded bytes at the commit ({@link dev.hetmem.host.HostSide#syncLoaded}).
     */
    public void fill(RegionState region, long from, long to, int target, long buffer) {
        if (target == 0) {
            throw new IllegalArgumentException("fill targets a device; host pages are written in place");
        }
        ctx.refuseFromFaultingItem("a load");
        long started = 0;
        long pinnedSince = 0;
        while (true) {
            Next next = new Next();
            if (tryFill(region, from, to, target, buffer, next)) {
                return;
            }
            if (next.waitOn == null) {
                started = Eviction.pauseBeforeRetry(started == 0 ? System.nanoTime() : started, target);
                continue;
            }
            if (next.abandoned != null && next.abandoned.lifecycle().reapAbandonedViews() > 0) {
                continue;   // a dead thread's views closed: look again at once (else wait, below, as for any pin)
            }
            // not for ever: a view opened on a region still loading, whose thread then waits for the load
            if (pinnedSince == 0) {
                pinnedSince = System.nanoTime();
            } else if (System.nanoTime() - pinnedSince > Eviction.ROOM_DEADLINE_NANOS) {
                throw new IllegalStateException("pages [" + from + ", " + to + ") of " + region + " are held by a host view or "
                        + "a kernel that another thread opened on the region while it was being loaded; the load waited "
                        + Eviction.ROOM_DEADLINE_NANOS / 1_000_000_000L + " s for it to close");
            }
            awaitRelease(next.waitOn, next.seen);
        }
    }

    /**
     * One attempt of {@link #fill}; false when the device must make room after other threads move on,
     * or when a pin keeps a page another node holds ({@code next} says which to wait for).
     */
    private boolean tryFill(RegionState region, long from, long to, int target, long buffer, Next next) {
        List<Block> locked = BlockLocks.lockAll(Interval.wholeRange(region, from, to));
        try {
            steals.reconcile(region, from, to);
            region.refuseFreed(from, to, "a load");
            boolean held = false;
            for (Block b : locked) {
                held |= b.uniformHolders(BlockLocks.firstIn(b, from), BlockLocks.endIn(region, b, to)) != 0;
            }
            if (held) {
                Pins.Pin p = region.pins().any(from, to);
                if (p != null) {
                    next.waitFor(p, region);
                    return false;
                }
                // host code reached pages before the load did: what it left goes, the loaded bytes come
                dropEverywhere(region, locked, from, to);
            }
            List<Run> runs = new ArrayList<>();
            for (Block b : locked) {
                int p0 = BlockLocks.firstIn(b, from);
                int p1 = BlockLocks.endIn(region, b, to);
                Run run = new Run(region, b, p0, p1 - p0, Action.LOAD, 0, -1);
                run.bufferAddress = buffer + bytes(firstPage(b.index()) + p0 - from);
                runs.add(run);
            }
            long now = System.nanoTime();
            for (Block b : locked) {
                b.touch(now);
            }
            try {
                runner.run(new MigrationBatch(runs, target, Trigger.LOAD, "batched"));
            } catch (Eviction.RetryBatch r) {
                return false;
            }
            return true;
        } finally {
            BlockLocks.unlockAll(locked);
        }
    }

    /**
     * The most pages one prefetch batch should move to {@code target}: 1 GiB, and on a device at
     * most half its memory in whole blocks, so that a range larger than the device streams through
     * it (a batch cannot evict its own pages; the next batch evicts the previous one's).
     */
    public long batchPages(int target) {
        long max = (long) MAX_BATCH_BLOCKS * BLOCK_PAGES;
        if (target == 0) {
            return max;
        }
        long frames = ctx.device(target).allocator().totalFrames();
        // whole blocks where the device has several; on a device of a block or two, half of it
        long half = frames >= 4L * BLOCK_PAGES ? (frames / 2) & -(long) BLOCK_PAGES : frames / 2;
        return Math.max(1, Math.min(max, half));
    }

    /**
     * Prefetch batches of one call ({@code UnifiedMemory.prefetch} of many ranges), each a list of
     * requests that is all-or-nothing as in {@link #ensure} (nothing pinned), run on up to
     * {@code atOnce} threads at once (at most {@link #copyThreads}): the calling thread and tasks
     * on {@code threads}; with {@code atOnce} 1, one after another on the calling thread. Each batch
     * is planned, copied and committed by the thread that runs it, so that the per-page work of
     * planning and committing (most of a batch of scattered 4 KiB pages) is spread over the threads
     * as the copying is. With {@code widen} false only the pages asked for move (the caller found
     * that the list's whole granules would not fit one batch, where {@link #ensure} would have
     * fallen back to them itself).
     *
     * <p>Caller's contract, where {@code atOnce} is above 1: the batches that may run at once need
     * at most {@link #batchPages} frames of the target together; batches meant to run side by side
     * touch disjoint blocks (two that share one only wait for each other); the calling thread holds
     * no pin in their regions (a batch on another thread would wait for it forever) and has entered
     * their regions' lifecycles, which it leaves only after this returns, and this returns only
     * once every batch it started has ended. On a failure no further batch starts and the first
     * failure is thrown, the others suppressed in it. An interrupt of the caller is passed on to the
     * other threads, as it would reach the caller's own waits in a sequential call: a batch that
     * waits for a pin then fails.
     *
     * @return the pages whose data moved
     */
    public long ensureEach(List<List<MigrationRequest>> batches, int target, Trigger trigger, boolean widen, int atOnce,
                           ExecutorService threads) {
        ctx.refuseFromFaultingItem("a migration");
        int parallel = (int) Math.min(batches.size(), Math.min(atOnce, ctx.pool.threads()));
        if (parallel <= 1) {
            long moved = 0;
            for (List<MigrationRequest> b : batches) {
                moved += ensure(b, target, trigger, Pinning.NO_PIN, FROM_ANY_NODE, widen).pagesMigrated();
            }
            return moved;
        }
        AtomicInteger next = new AtomicInteger();
        AtomicLong moved = new AtomicLong();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        Runnable share = () -> {
            try {
                ScopedValue.where(EngineContext.ON_CALLER_ALONE, Boolean.TRUE).run(() -> {
                    for (int i; (i = next.getAndIncrement()) < batches.size(); ) {
                        moved.addAndGet(ensure(batches.get(i), target, trigger, Pinning.NO_PIN, FROM_ANY_NODE, widen)
                                .pagesMigrated());
                    }
                });
            } catch (Throwable e) {
                next.set(batches.size());   // no further batch starts
                Throwable first = failure.compareAndExchange(null, e);
                if (first != null && first != e) {
                    try {
                        first.addSuppressed(e);
                    } catch (Throwable ignored) {
                        // the first failure is what is thrown; a second one that cannot be attached is dropped
                    }
                }
            }
        };
        int helpers = parallel - 1;
        CountDownLatch ended = new CountDownLatch(helpers);
        Thread[] running = new Thread[helpers];
        try {
            for (int t = 0; t < helpers; t++) {
                int slot = t;
                try {
                    threads.execute(() -> {
                        synchronized (running) {
                            running[slot] = Thread.currentThread();
                        }
                        try {
                            share.run();
                        } finally {
                            synchronized (running) {
                                running[slot] = null;   // no interrupt of the caller's reaches it after this
                            }
                            // one that did is this call's, not the next task's, should the executor reuse the thread
                            Thread.interrupted();
                            ended.countDown();
                        }
                    });
                } catch (RuntimeException | Error e) {
                    // no thread for it (the executor refused, or none could start): the caller runs its share
                    for (int u = t; u < helpers; u++) {
                        ended.countDown();
                    }
                    break;
                }
            }
            share.run();
        } finally {
            awaitAll(ended, running, () -> {
                // no batch starts after the interrupt (a helper that begins late takes none); the call fails
                // if some batch never ran, as a sequential one would stop at its next wait (one whose batches
                // had all begun succeeds or fails as they do)
                if (next.getAndSet(batches.size()) < batches.size()) {
                    failure.compareAndExchange(null, new dev.hetmem.InterruptedOperationException(
                            "interrupted while the batches of a migration ran on several threads; some never ran", null));
                }
            });
        }
        Throwable first = failure.get();
        if (first instanceof RuntimeException re) {
            throw re;
        }
        if (first instanceof Error err) {
            throw err;
        }
        if (first != null) {
            throw new IllegalStateException(first);
        }
        return moved.get();
    }

    /**
     * Waits until every helper of {@link #ensureEach} has ended: the caller may leave their regions
     * next. An interrupt meanwhile runs {@code onInterrupt} (no further batch starts; the call fails if
     * some never ran), is passed on to the helpers running (a batch waiting for a pin then fails, as
     * the caller's own would), and is kept for the caller. A helper clears what reached it before it
     * ends. With nothing left to wait for, a set flag changes nothing.
     */
    private static void awaitAll(CountDownLatch ended, Thread[] running, Runnable onInterrupt) {
        boolean interrupted = false;
        while (ended.getCount() != 0) {   // await() throws at once on a set flag even with nothing to wait for
            try {
                ended.await();
            } catch (InterruptedException e) {
                interrupted = true;
                onInterrupt.run();   // before the helpers are interrupted: one that registers later starts no batch
                synchronized (running) {
                    for (Thread th : running) {
                        if (th != null) {
                            th.interrupt();
                        }
                    }
                }
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    /**
     * The blocks with pages on device {@code node} now, by region, each region's in ascending order:
     * what {@link #release} visits (one pass over the residency registry for all regions).
     */
    public Map<RegionState, List<Long>> residentBlocks(int node) {
        Map<RegionState, List<Long>> out = new java.util.HashMap<>();
        for (ResidencyRegistry.Resident v : ctx.residency.residents(node)) {
            out.computeIfAbsent(v.region(), k -> new ArrayList<>()).add(v.block().index());
        }
        for (List<Long> blocks : out.values()) {
            blocks.sort(null);
        }
        return out;
    }

    /**
     * Release of one region from device {@code node} (dmirror's RELEASE), over {@code blocks} (its
     * blocks with pages on the device, ascending: {@link #residentBlocks}): its copies of pages another
     * node holds too are dropped first ({@link Eviction#dropShared}), block by block, then the pages it
     * holds alone go home, waiting for the kernels that pin them. Only those blocks are visited: a
     * sweep of the whole region locked (and so made) a block for every 2 MiB of it, 100 MB of tables
     * kept for good for an untouched terabyte. Returns the pages whose data moved home. A copy shared
     * with another node that a kernel of {@code node} pins stays.
     */
    public long release(RegionState region, int node, List<Long> blocks) {
        ctx.refuseFromFaultingItem("a release");
        for (long index : blocks) {
            long first = firstPage(index);
            long end = Math.min(region.pages(), firstPage(index + 1));
            List<Block> locked = BlockLocks.lockAll(Interval.wholeRange(region, first, end));
            try {
                steals.reconcile(region, first, end);
                for (Block b : locked) {
                    runner.eviction().dropShared(region, b, node);
                }
            } finally {
                BlockLocks.unlockAll(locked);
            }
        }
        // then runs of consecutive such blocks, each moved in batches as a prefetch's range is
        long moved = 0;
        for (int i = 0; i < blocks.size(); ) {
            long start = blocks.get(i);
            long end = start + 1;
            i++;
            while (i < blocks.size() && blocks.get(i) == end) {
                end++;
                i++;
            }
            moved += migrateRange(region, firstPage(start), Math.min(region.pages(), firstPage(end)), 0, Trigger.RELEASE, node);
        }
        return moved;
    }

    /**
     * Drop-behind (a tiled launch on a device whose kernels read through the CPU caches, once a
     * tile has run): {@code node}'s copies of pages [from, to) of a region that another node holds
     * too are dropped, as eviction drops them, but for those a kernel of {@code node} pins; pages
     * the device holds alone (written there) stay. Nothing is copied and no data is lost: the other
     * holder keeps its copy. A block another thread has locked (a coming tile's prefetch) is left
     * as it is. Counted apart from evictions ({@code NodeStats.pagesDroppedBehind}). Returns the
     * copies dropped. The caller's contract: not from a work item that may hold translations.
     */
    public long dropSharedCopies(RegionState region, long from, long to, int node) {
        ctx.refuseFromFaultingItem("a drop-behind");
        long n = 0;
        for (long bi = blockOf(from); bi <= blockOf(to - 1); bi++) {
            Block b = region.table().block(bi);
            // a block another thread holds (a coming tile's prefetch, mid-copy) keeps its copies: waiting
            // for it would hold the next tile back, and dropping is only a saving
            if (b == null || !b.lock.tryLock()) {
                continue;
            }
            try {
                long first = Math.max(from, firstPage(bi));
                long end = Math.min(to, firstPage(bi) + region.table().pagesIn(bi));
                steals.reconcile(region, first, end);
                n += runner.eviction().dropShared(region, b, node, first, end);
            } finally {
                b.lock.unlock();
            }
        }
        region.counters().droppedBehind(node, n);
        ctx.memoryCounters.droppedBehind(node, n);
        return n;
    }

    /** Prefetch or release of a large range: batches of at most {@link #batchPages}, each all-or-nothing. */
    public long migrateRange(RegionState region, long from, long to, int target, Trigger trigger, int onlyFrom) {
        long moved = 0;
        long step = batchPages(target);
        for (long p = from; p < to; p = Math.min(to, (p / step + 1) * step)) {
            long end = Math.min(to, (p / step + 1) * step);
            moved += ensure(List.of(new MigrationRequest(region, p, end, false)), target, trigger, Pinning.NO_PIN,
                    onlyFrom).pagesMigrated();
        }
        return moved;
    }

    /**
     * Runs {@code migration} with its copies on the calling thread alone ({@link EngineContext#ON_CALLER_ALONE}),
     * for a migration that runs beside other work, such as an asynchronous prefetch beside a
     * kernel: the copy pool's other threads would take the cores that work runs on, where the
     * calling thread alone overlaps with it. A migration the caller waits for spreads over the pool.
     */
    public static long besideOtherWork(java.util.function.LongSupplier migration) {
        return ScopedValue.where(EngineContext.ON_CALLER_ALONE, Boolean.TRUE).call(migration::getAsLong);
    }

    /**
     * As {@link #besideOtherWork}, for pages a kernel on this CPU reads soon after (the coming tile
     * of a tiled launch on a device whose kernels read through the CPU caches): its copies keep to
     * the streaming threshold of a fault's batch ({@link EngineContext#READ_SOON}), so that ordinary
     * stores leave the data in the caches for the kernel.
     */
    public static long besideOtherWorkReadSoon(java.util.function.LongSupplier migration) {
        return ScopedValue.where(EngineContext.ON_CALLER_ALONE, Boolean.TRUE).where(EngineContext.READ_SOON, Boolean.TRUE)
                .call(migration::getAsLong);
    }

    /**
     * A prefetch of pages [from, to) that a later launch on {@code target} takes as a plain argument:
     * one batch, the range placed as that launch's {@link Placement} places it (in consecutive frames
     * in page order, a free run, else one compaction clears or cold pages make; not widened to
     * granules), so that the launch finds it in place and moves nothing. Pages in the way that a
     * running kernel pins are waited for, as any batch waits for room ({@link Eviction.RetryBatch});
     * where no run can be had even so ({@link NoRunException}, thrown before the batch committed
     * anything; pages of the range the pass sent away from the device meanwhile kept their data,
     * and come back) it is prefetched as any range is, and counted so
     * ({@code NodeStats.plainPrefetchesUnplaced}). The caller's contract: {@code target} is a
     * device and the range at most its {@code contiguousFrames}, nothing of it pinned by the calling
     * thread on any node.
     */
    public long migrateConsecutive(RegionState region, long from, long to, int target) {
        try {
            return ensure(List.of(new MigrationRequest(region, from, to, false, false, true, false)), target,
                    Trigger.PREFETCH, Pinning.NO_PIN, FROM_ANY_NODE).pagesMigrated();
        } catch (NoRunException e) {
            region.counters().plainPrefetchUnplaced(target);
            ctx.memoryCounters.plainPrefetchUnplaced(target);
            return migrateRange(region, from, to, target, Trigger.PREFETCH, FROM_ANY_NODE);
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
        Pins.Pin view = discard(region, from, to, false, Long.MAX_VALUE);
        assert view == null;
    }

    /**
     * {@link #discardUnlessViewed} gave up: a kernel still pinned a page of the range when the wait
     * ran out. Nothing of the range was dropped ({@code pin} names the kernel's pin); a later call
     * drops it.
     */
    public static final class StillPinned extends IllegalStateException {
        private final transient Pins.Pin pin;

        StillPinned(Pins.Pin pin, long waitedNanos) {
            super("a kernel in thread " + pin.owner().getName() + " still pins pages [" + pin.from() + ", " + pin.to()
                    + ") on node " + pin.node() + " after " + waitedNanos / 1_000_000 + " ms");
            this.pin = pin;
        }

        public Pins.Pin pin() {
            return pin;
        }
    }

    /**
     * {@link #discard} for a partial free, whose caller has marked [from, to) freed and refused
     * the host views it found open before that. A view opened between that check and the mark
     * (its pin is taken under the block locks, so once they are held here no later one can
     * appear) is not waited for, since its thread may keep it open for as long as it likes, or
     * wait for this one: the pages it covers keep their host copy for it (the devices' copies and
     * mappings go; the pages are refused to every new access, and a later free of the range
     * drops the rest), every other page is dropped, and the pin of one such view is returned
     * (it may have closed since); null when no view was open and everything was dropped.
     * Kernels' pins are waited for, as {@link #discard} does, for at most {@code timeoutNanos}:
     * then {@link StillPinned} is thrown and nothing of the range is dropped, on any node (a
     * kernel's item may be waiting for a view of the caller's thread, which waits here: the free's
     * own close timeout, as {@code free()} has).
     */
    public Pins.Pin discardUnlessViewed(RegionState region, long from, long to, long timeoutNanos) {
        return discard(region, from, to, true, timeoutNanos);
    }

    private Pins.Pin discard(RegionState region, long from, long to, boolean spareViews, long timeoutNanos) {
        ctx.refuseFromFaultingItem("DONT_NEED");
        List<Interval> ivs = Interval.wholeRange(region, from, to);
        long start = System.nanoTime();
        while (true) {
            List<Block> locked = BlockLocks.lockAll(ivs);
            Next next = new Next();
            try {
                List<Pins.Pin> views = spareViews ? region.pins().allLiveOn(0, from, to) : List.of();
                Pins.Pin p = region.pins().anyBut(views, from, to);   // a kernel's, or a view not spared
                if (p == null) {
                    steals.reconcile(region, from, to);
                    if (views.isEmpty()) {
                        dropEverywhere(region, locked, from, to);
                        return null;
                    }
                    // in page order: what no view covers goes everywhere; under a view the devices' copies go,
                    // the host's stays for the view
                    List<Pins.Pin> sorted = new ArrayList<>(views);
                    sorted.sort(java.util.Comparator.comparingLong(Pins.Pin::from));
                    long at = from;
                    for (Pins.Pin v : sorted) {
                        long viewFrom = Math.max(at, Math.min(v.from(), to));
                        long viewTo = Math.max(viewFrom, Math.min(v.to(), to));
                        if (viewFrom > at) {
                            dropEverywhere(region, BlockLocks.within(locked, at, viewFrom), at, viewFrom);
                        }
                        if (viewTo > viewFrom) {
                            PageDrops.dropAllButHost(ctx, region, BlockLocks.within(locked, viewFrom, viewTo), viewFrom, viewTo);
                        }
                        at = Math.max(at, viewTo);
                    }
                    if (at < to) {
                        dropEverywhere(region, BlockLocks.within(locked, at, to), at, to);
                    }
                    return views.getFirst();
                }
                next.waitFor(p, region);
                if (System.nanoTime() - start >= timeoutNanos && p.owner().isAlive()) {
                    throw new StillPinned(p, System.nanoTime() - start);
                }
            } finally {
                BlockLocks.unlockAll(locked);
            }
            if (next.abandoned != null && region.lifecycle().reapAbandonedViews() > 0) {
                continue;   // a dead thread's views closed: look again at once (else wait as for any pin)
            }
            awaitRelease(region.pins(), next.seen);
        }
    }

    /**
     * Every node's copy of pages [from, to) goes, and their host frames read as zeros again (DONT_NEED,
     * and a fill over what host code left): the caller holds the blocks' locks (at least those of
     * [from, to), in {@code locked}), has reconciled the range and found no pin on it.
     */
    private void dropEverywhere(RegionState region, List<Block> locked, long from, long to) {
        PageDrops.dropAllAndDiscard(ctx, region, locked, from, to);
    }

    /**
     * Device-exclusive access ({@link Exclusivity}) after a launch that ran by device faults: marks
     * the pages of [from, to) that {@code node} alone holds writable as exclusive to it; returns
     * how many. (Pinned launches ask with {@link MigrationRequest#exclusive} instead.)
     */
    public long markExclusive(RegionState region, long from, long to, int node) {
        ctx.refuseFromFaultingItem("device-exclusive access");
        return exclusivity.mark(region, from, to, node);
    }

    /** Whether every page of [from, to) is still exclusive to {@code node}. */
    public boolean isExclusive(RegionState region, long from, long to, int node) {
        ctx.refuseFromFaultingItem("reading the page table");
        return exclusivity.holds(region, from, to, node);
    }

    /**
     * A device's write fault on pages the page table already gives it writable, held on the device
     * or mapped in place from the host (blocks locked):
     * its entries are made as writable as {@link #reprotect} will make them. Between a range's
     * protection becoming read-write again and {@code reprotect} reaching its blocks (it locks all
     * of them first, and may wait behind a long batch), the entries are still read-only from the
     * read-only spell: the fault found nothing to move, the item faulted again at once, and after
     * 10,000 faults the launch failed although the range was writable. Only write access is given
     * here, where the page table and the attributes allow it (no invalidation needed); taking it
     * away stays {@code reprotect}'s.
     */
    private void writableEntriesInLine(List<MigrationRequest> requests, int target) {
        for (MigrationRequest r : requests) {
            if (!r.write()) {
                continue;
            }
            RegionState region = r.region();
            for (long page = r.from(); page < r.to(); page++) {
                Block b = region.table().block(blockOf(page));
                int p = pageInBlock(page);
                boolean writable = b.isResident(target, p) ? b.isWritable(target, p)
                        : b.isRemote(target, p) && b.isRemoteWritable(target, p);
                if (writable && !region.attributes().at(page).readOnly()) {
                    ctx.driver(target).protect(region.pageAddress(page), 1, true);
                }
            }
        }
    }

    /** Brings device entries of [from, to) in line with the range's protection. */
    public void reprotect(RegionState region, long from, long to) {
        ctx.refuseFromFaultingItem("a protection change");
        List<Block> locked = BlockLocks.lockAll(Interval.wholeRange(region, from, to));
        try {
            // pages the fault service took are the host's now: they must be protected too
            steals.reconcile(region, from, to);
            Invalidations inv = new Invalidations(ctx.nodeCount());
            for (Block b : locked) {
                long base = firstPage(b.index());
                int p0 = BlockLocks.firstIn(b, from);
                int p1 = BlockLocks.endIn(region, b, to);
                for (int n = 1; n < ctx.nodeCount(); n++) {
                    if (!b.hasPagesOn(n) && !b.hasRemoteOn(n)) {
                        continue;
                    }
                    for (int p = p0; p < p1; p++) {
                        if (region.attributes().at(base + p).readOnly()) {
                            b.endExclusive(n, p, 1);   // the device may not write it: no atomics either
                        }
                        boolean local = b.isResident(n, p);
                        if (local || b.isRemote(n, p)) {
                            long va = region.pageAddress(base + p);
                            boolean w = (local ? b.isWritable(n, p) : b.isRemoteWritable(n, p))
                                    && !region.attributes().at(base + p).readOnly();
                            ctx.driver(n).protect(va, 1, w);
                            inv.add(n, va, bytes(1));
                        }
                    }
                }
                ctx.syncHost(region, b, p0, p1);
            }
            inv.flush(ctx);
        } finally {
            BlockLocks.unlockAll(locked);
        }
    }

    /** Frees every device frame of a region that is being freed (its lifecycle has drained, its host side killed). */
    public void dropRegion(RegionState region) {
        List<Block> all = new ArrayList<>();
        region.table().forEachBlock(all::add);
        for (Block b : all) {
            b.lock.lock();
        }
        try {
            // the host side was killed first: it is going away, nothing to keep in line
            PageDrops.dropAll(ctx, region, all, 0, region.pages(), false);
        } finally {
            BlockLocks.unlockAll(all);
        }
    }

    /**
     * Takes into the page table what host code did on its own anywhere in a region: for readers of
     * the page table (statistics, verification, snapshots) that want it current.
     */
    public void reconcileAll(RegionState region) {
        ctx.refuseFromFaultingItem("reading the page table");
        steals.reconcileAll(region);
    }

    /**
     * Takes into the page table what host code did on its own in pages [from, to) of a region,
     * locking their blocks: for a launch that runs by device faults, whose work items reach pages
     * through the device's existing entries without asking the engine, so that nothing would
     * take in a page host code took earlier before the items write the device's stale copy.
     */
    public void reconcile(RegionState region, long from, long to) {
        ctx.refuseFromFaultingItem("reading the page table");
        if (to <= from || !region.host().takesPagesOnItsOwn()) {
            return;
        }
        List<Block> locked = BlockLocks.lockAll(Interval.wholeRange(region, from, to));
        try {
            steals.reconcile(region, from, to);
        } finally {
            BlockLocks.unlockAll(locked);
        }
    }

    @Override
    public void close() {
        ctx.pool.close();
    }
}
