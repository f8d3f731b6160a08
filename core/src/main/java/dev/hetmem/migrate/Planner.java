package dev.hetmem.migrate;

import dev.hetmem.internal.Pins;
import dev.hetmem.internal.RangeAttributes;
import dev.hetmem.internal.RegionState;
import dev.hetmem.pagetable.Block;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

import static dev.hetmem.driver.PageGeometry.BLOCK_PAGES;
import static dev.hetmem.driver.PageGeometry.PAGE_SHIFT;
import static dev.hetmem.driver.PageGeometry.blockOf;
import static dev.hetmem.driver.PageGeometry.firstPage;
import static dev.hetmem.driver.PageGeometry.pageInBlock;

/**
 * The planning step of a migration: walks the locked intervals page by page and cuts them into
 * {@link Run}s, each a stretch of one block in one state that needs one {@link Action} (or none:
 * pages already in place are skipped). A run never crosses a change of holders, writer, remote
 * mappings, neededness, write access or range attributes.
 *
 * <p>Caller's contract: the block locks of every interval are held (see {@link BlockLocks}); the
 * plan is valid only while they stay held. A page that must move but is kept in place by a pin
 * (an open host view, a running kernel) makes the plan a conflict if the caller needs it, and is
 * left where it is if it only shares the caller's granule.
 */
final class Planner {
    private final EngineContext ctx;

    Planner(EngineContext ctx) {
        this.ctx = ctx;
    }

    /** The runs to execute, the faults they count, or the pin in the way. */
    static final class Plan {
        final List<Run> runs = new ArrayList<>();
        /** Granules faulted in, in all regions and per region. */
        long faults;
        final Map<RegionState, Long> faultsByRegion = new IdentityHashMap<>(2);
        Pins.Pin conflict;
        RegionState conflictRegion;

        /** Whether a run moves pages within the target ({@link Action#RELOCATE}). */
        boolean relocates() {
            for (Run r : runs) {
                if (r.action == Action.RELOCATE) {
                    return true;
                }
            }
            return false;
        }

        void countFaults(RegionState region, long count) {
            if (count > 0) {
                faults += count;
                faultsByRegion.merge(region, count, Long::sum);
            }
        }

        /** Device frames the batch allocates on its target. */
        long framesNeeded() {
            return MigrationBatch.framesNeeded(runs);
        }
    }

    /**
     * @param onlyFrom if ≥ 0, only pages resident on this node are planned (release)
     * @param requests the caller's requests: pages of an exclusive one (device-exclusive access)
     *                 are mapped in place where the target can map host memory and host code
     *                 touches the region only through views, and are never mapped in place
     *                 otherwise (they must end up the device's alone)
     */
    Plan plan(List<Interval> intervals, int target, int onlyFrom, List<MigrationRequest> requests) {
        return plan(intervals, target, onlyFrom, requests, List.of());
    }

    /**
     * As above, for a pass that places {@code misplaced} spans ({@link Placement}): a page of one of
     * them that the target holds already, as writable as asked (so {@link Placement#vacate} left it
     * there), is planned {@link Action#RELOCATE}: its copy moves to the span's frames within the device.
     */
    Plan plan(List<Interval> intervals, int target, int onlyFrom, List<MigrationRequest> requests,
              List<Placement.Span> misplaced) {
        Plan plan = new Plan();
        // each kind's requests, once: a prefetch list has a request per range and usually none of
        // these kinds, and scanning all of them for every run made planning quadratic
        List<MigrationRequest> exclusives = only(requests, MigrationRequest::exclusive);
        List<MigrationRequest> contiguous = only(requests, MigrationRequest::contiguous);
        List<MigrationRequest> duplicates = only(requests, MigrationRequest::duplicate);
        // thrashing control's hold-home test reads the clock once for the plan, not once per run: a
        // hold that ends while the plan runs counts as held for the rest of it (the holds change only
        // under the block locks the plan holds, so no hold starts meanwhile)
        long now = System.nanoTime();
        boolean targetMapsHost = target != 0 && ctx.driver(target).canMapHost();
        // the block and the attributes of the page before, kept while they hold (a scattered list plans
        // one page at a time: a directory lookup and two attribute searches a page otherwise)
        Block b = null;
        RegionState attrsOf = null;
        RangeAttributes.Attrs attrs = null;
        long attrsFrom = 0;
        long attrsEnd = 0;
        // faults counted per region (a launch's statistics are per region), added up while the
        // intervals stay in one region: a map update per region, not per run
        RegionState countedFor = null;
        long counted = 0;
        for (Interval iv : intervals) {
            if (iv.region != countedFor) {
                plan.countFaults(countedFor, counted);
                countedFor = iv.region;
                counted = 0;
            }
            long lastGranule = -1;
            long page = iv.from;
            while (page < iv.to) {
                if (b == null || b.table() != iv.region.table() || b.index() != blockOf(page)) {
                    b = iv.region.table().block(blockOf(page));
                }
                int p = pageInBlock(page);
                long base = firstPage(b.index());
                int blockEnd = (int) Math.min(BLOCK_PAGES, iv.to - base);
                int seg = iv.segmentOf(page);
                boolean needed = seg >= 0;
                boolean write = needed && iv.writes(seg);
                if (attrsOf != iv.region || page < attrsFrom || page >= attrsEnd) {
                    // one snapshot's answers: the attributes here and where they next change
                    RangeAttributes.Stretch st = iv.region.attributes().stretchAt(page);
                    attrsOf = iv.region;
                    attrs = st.attrs();
                    attrsFrom = page;
                    attrsEnd = st.end();
                }
                long exclusiveEnd = stretchEnd(exclusives, iv.region, page);   // > page: inside one
                boolean exclusive = exclusiveEnd > page;
                // a plain argument's pages need frames of their own on the target (Placement): never mapped in place
                long contiguousEnd = stretchEnd(contiguous, iv.region, page);
                // a streamed read leaves the holders their copies, as READ_MOSTLY does
                long duplicateEnd = stretchEnd(duplicates, iv.region, page);
                boolean readMostly = attrs.readMostly() || duplicateEnd > page;
                boolean remoteOk = targetMapsHost && contiguousEnd < page && (exclusive
                        ? !iv.region.host().takesPagesOnItsOwn()
                        : attrs.accessedBy(target) || (ctx.thrashControl && onlyFrom < 0 && b.heldHome(now)))
                        // NO_REMOTE_UNDER_FAULTING_UFFD: never mapped in place while a launch runs by device
                        // faults over a userfaultfd region: the stress program lost a work item's stores
                        // there (thrashing control's held-home blocks and accessed-by advice alike),
                        // and the cause is not found yet; moving the pages instead loses nothing
                        && !(iv.region.host().takesPagesOnItsOwn() && iv.region.faultingLaunchesRunning());
                if (attrs.freed() && needed && onlyFrom < 0) {
                    // freed since the caller's check (the mark takes no block lock): refuse, as the check would have
                    iv.region.refuseFreed(page, page + 1, "a migration");
                }
                // a freed page that only shares a granule with what was asked stays where it is: nowhere
                int holders = b.residentMask(p);
                Action action = attrs.freed() ? null : decide(b, p, holders, target, write, onlyFrom, readMostly, remoteOk);
                // the whole stretch below lies in one span or none (runs stop where contiguous requests do)
                boolean relocating = !attrs.freed() && Placement.Span.anyHolds(misplaced, iv.region, page);
                action = relocated(action, holders, target, relocating);
                int n;
                // a run never crosses a change of neededness or of attributes
                long stretch = Math.min(Math.abs(exclusiveEnd), Math.min(Math.abs(contiguousEnd), Math.abs(duplicateEnd)));
                int runEnd = (int) Math.min(blockEnd, Math.min(Math.min(iv.nextBoundary(page), attrsEnd), stretch) - base);
                if (runEnd - p > 1 && b.uniformHolders(p, runEnd) == holders && b.uniformRemote(p, runEnd)) {
                    // the rest of the stretch is in one state: one run, found with word-level checks
                    n = runEnd - p;
                } else {
                    n = 1;
                    if (runEnd - p > 1) {
                        int writer = b.writer(p);
                        int remote = b.remoteMask(p);
                        while (p + n < runEnd && b.writer(p + n) == writer && b.remoteMask(p + n) == remote
                                && sameRun(iv, b, page + n, p + n, needed, write, holders, action, target, onlyFrom,
                                readMostly, remoteOk, relocating)) {
                            n++;
                        }
                    }
                }
                if (action != null) {
                    Pins.Pin conflict = conflictOf(iv.region, b, p, page, n, holders, action, target);
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
                    int source = action.copies() ? sourceOf(b, p, holders) : -1;
                    Run run = new Run(iv.region, b, p, n, action, holders, source);
                    run.write = write;
                    plan.runs.add(run);
                    if (action == Action.RELOCATE) {
                        page += n;   // no fault: the page is on the target already
                        continue;
                    }
                    long g = 1L << (attrs.granuleShift() - PAGE_SHIFT);
                    long firstG = page / g;
                    long lastG = (page + n - 1) / g;
                    counted += lastG - firstG + 1 - (firstG == lastGranule ? 1 : 0);
                    lastGranule = lastG;
                }
                page += n;
            }
        }
        plan.countFaults(countedFor, counted);
        return plan;
    }

    private static List<MigrationRequest> only(List<MigrationRequest> requests,
                                               java.util.function.Predicate<MigrationRequest> kind) {
        List<MigrationRequest> out = new java.util.ArrayList<>(0);
        for (MigrationRequest r : requests) {
            if (kind.test(r)) {
                out.add(r);
            }
        }
        return out;
    }

    /**
     * Where the stretch of {@code page} in or out of {@code requests} (all of one kind: exclusive,
     * contiguous, duplicating) ends: the furthest end of those requests that hold it (a value
     * greater than {@code page}), or minus the start of the next one (minus {@code Long.MAX_VALUE}
     * if none) when none holds it. A run stops there.
     */
    private static long stretchEnd(List<MigrationRequest> requests, RegionState region, long page) {
        long end = -1;
        long next = Long.MAX_VALUE;
        for (MigrationRequest r : requests) {
            if (r.region() != region) {
                continue;
            }
            if (r.from() <= page && page < r.to()) {
                end = Math.max(end, r.to());
            } else if (r.from() > page) {
                next = Math.min(next, r.from());
            }
        }
        return end > page ? end : -next;
    }

    /** The pin that keeps pages [page, page+n) from taking {@code action}, or null. */
    private static Pins.Pin conflictOf(RegionState region, Block b, int p, long page, int n, int holders, Action action,
                                       int target) {
        if (action == Action.RELOCATE) {
            return region.pins().on(target, page, page + n);   // a kernel of the target reads the old frames
        }
        if (action == Action.REMOTE_MAP) {
            // changes nothing for anyone else, but another device's exclusive access to the host copy:
            // the commit ends it, so a kernel of that device using the pages is waited for first, as
            // any other device's access waits (Access.EXCLUSIVE). It did not: a mapping in place
            // ended the exclusivity in the middle of the kernel
            return b.exclusiveToAnotherThan(target, p, n) ? region.pins().conflict(page, page + n, target) : null;
        }
        if ((holders & 1) != 0 && b.remoteMask(p) != 0) {
            // a host copy that devices reach in place: a kernel of any device, the target's own
            // included, may be using those entries right now (host views count as elsewhere: a thread's
            // read view then its write view of the page was refused as waiting for itself)
            return region.pins().inPlaceConflict(page, page + n, target, action == Action.DUPLICATE);
        }
        return action == Action.DUPLICATE
                ? region.pins().writingConflict(page, page + n, target)
                : region.pins().conflict(page, page + n, target);
    }

    private static boolean sameRun(Interval iv, Block b, long page, int p, boolean needed, boolean write, int holders,
                                   Action action, int target, int onlyFrom, boolean readMostly, boolean remoteOk,
                                   boolean relocating) {
        int seg = iv.segmentOf(page);
        boolean qNeeded = seg >= 0;
        return qNeeded == needed && (!qNeeded || iv.writes(seg) == write) && b.residentMask(p) == holders
                && relocated(decide(b, p, holders, target, write, onlyFrom, readMostly, remoteOk), holders, target,
                relocating) == action;
    }

    /** RELOCATE where a page of a misplaced span is fine on the target but for its frame, else {@code action}. */
    private static Action relocated(Action action, int holders, int target, boolean relocating) {
        return relocating && action == null && target != 0 && (holders & (1 << target)) != 0 ? Action.RELOCATE : action;
    }

    /** Null when the page is fine where it is, else the action that brings it to the target; {@code holders} its resident mask. */
    private static Action decide(Block b, int p, int holders, int target, boolean write, int onlyFrom, boolean readMostly,
                                 boolean remoteOk) {
        if (onlyFrom >= 0 && (holders & (1 << onlyFrom)) == 0) {
            return null;
        }
        if (onlyFrom >= 0 && holders != 1 << onlyFrom) {
            // release: a copy another node holds too is only dropped (Eviction.dropShared), never moved home
            // (that took the other devices' copies and waited for their kernels), and stays where one of
            // the releasing device's own kernels pins it
            return null;
        }
        if (holders == 0) {
            return Action.POPULATE;
        }
        if ((holders & (1 << target)) != 0) {
            if (!write || b.isWritable(target, p)) {
                return null;
            }
            return Action.COLLAPSE;
        }
        // ACCESSED_BY: map the host's copy in place, if the host may give the access asked for
        if (remoteOk && (holders & 1) != 0 && (!write || b.isWritable(0, p))) {
            return b.isRemote(target, p) && (!write || b.isRemoteWritable(target, p)) ? null : Action.REMOTE_MAP;
        }
        // a read of a read-mostly page copies it; release (onlyFrom) always moves
        return readMostly && !write && onlyFrom < 0 ? Action.DUPLICATE : Action.MOVE;
    }

    /** The writer if there is one, else the host if it holds a copy, else the lowest holder. */
    private static int sourceOf(Block b, int p, int holders) {
        if (Integer.bitCount(holders) == 1) {
            return Integer.numberOfTrailingZeros(holders);   // the writer if there is one: a writer holds the page
        }
        int w = b.writer(p);
        if (w >= 0) {
            return w;
        }
        return (holders & 1) != 0 ? 0 : Integer.numberOfTrailingZeros(holders);
    }

    /** Every requested page already on the target with the access asked (blocks locked). */
    static boolean satisfied(List<MigrationRequest> requests, int target) {
        for (MigrationRequest r : requests) {
            long page = r.from();
            while (page < r.to()) {
                long bi = blockOf(page);
                long end = Math.min(r.to(), firstPage(bi + 1));
                Block b = r.region().table().block(bi);
                if (!b.allAt(target, pageInBlock(page), (int) (end - firstPage(bi)), r.write())) {
                    return false;
                }
                page = end;
            }
        }
        return true;
    }
}
