package dev.hetmem.migrate;

import dev.hetmem.driver.DeviceMemoryException;
import dev.hetmem.driver.RunTooLargeException;
import dev.hetmem.internal.DeviceNode;
import dev.hetmem.internal.Pins;
import dev.hetmem.internal.RegionState;
import dev.hetmem.pagetable.Block;
import dev.hetmem.phys.BuddyAllocator;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

import static dev.hetmem.driver.PageGeometry.blockOf;
import static dev.hetmem.driver.PageGeometry.bytes;
import static dev.hetmem.driver.PageGeometry.firstPage;
import static dev.hetmem.driver.PageGeometry.pageInBlock;

/**
 * Contiguous placement: the pages of a plain kernel argument ({@link MigrationRequest#contiguous})
 * lie in consecutive frames of the device, in page order, so that the kernel reaches them through
 * one base pointer while the page table stays page by page.
 *
 * <p>The unit is a <em>span</em>: the union of a region's contiguous requests that overlap (two
 * plain arguments sharing pages are placed as one, so that both are contiguous). A span is in
 * place when every page of it is on the target and page {@code from + i} is in frame
 * {@code base + i}, within one {@link dev.hetmem.driver.DeviceDriver#contiguousFrames} stretch.
 *
 * <p>Protocol, inside one locked pass of {@link MigrationEngine#ensure} (every block of every
 * request locked by the caller, so no other thread moves a page of a span meanwhile):
 * <ol>
 *   <li>{@link #misplaced}: the spans not in place.</li>
 *   <li>{@link #claimRuns}: where the driver copies within its memory, a run for every misplaced
 *       span, free or cleared by {@link Compaction}, claimed; if one span finds none, none keeps
 *       one.</li>
 *   <li>{@link #vacate}: the pages on the target of a span with a claimed run that can move within
 *       the device ({@link #relocates}: no kernel of the target holds the page, and the target may
 *       write it where the call writes) stay for the planner; the others leave it as
 *       eviction sends pages away (home, or only dropped where another node holds a copy). A
 *       pinned page stays, and the caller waits for that pin and starts over, unless the kernels
 *       that pin it only read it through frames they bound at launch: then it leaves the page
 *       table and its frame is kept for them.</li>
 *   <li>The plan then gives every page of a misplaced span an allocating action:
 *       {@link Action#RELOCATE} for the pages that stayed (the planner finds them fine but for
 *       their frames), a move, duplicate or populate for the rest (the planner maps none of them
 *       in place); the batch carries the spans and {@link #allocate} takes one run of consecutive
 *       frames per span before the allocate phase gives the other runs theirs.</li>
 * </ol>
 * So pages out of place move device to device, one copy, and only the pages that cannot
 * (pinned, or needing write access the target does not have) travel through the host. A batch
 * that relocates holds the old frames until it commits; when the rest of it then finds no room,
 * {@link MigrationEngine#ensure} places the spans again without relocating. The rare path (a
 * plain argument's pages scattered by earlier migrations, or prefetched where frames were free),
 * kept to the phases every other migration uses.
 */
final class Placement {
    private Placement() {
    }

    /**
     * Pages [from, to) of a region, to be placed in consecutive frames of the target; {@code written}:
     * some request of the call (plain or not) writes a page of it. {@code run}: the first of the
     * frames {@link #claimRuns} claimed for it (counted in flight, prepared), or -1; the span owns
     * them until {@link #allocate} hands them to its runs ({@code handedOver}) or
     * {@link #releaseRuns} gives them back. Confined to the thread of one pass of
     * {@link MigrationEngine#ensure}.
     */
    static final class Span {
        private final RegionState region;
        private final long from;
        private final long to;
        private final boolean written;
        private int run = -1;
        private boolean handedOver;

        Span(RegionState region, long from, long to, boolean written) {
            this.region = region;
            this.from = from;
            this.to = to;
            this.written = written;
        }

        RegionState region() {
            return region;
        }

        long from() {
            return from;
        }

        long to() {
            return to;
        }

        int pages() {
            return Math.toIntExact(to - from);
        }

        boolean holds(Run r) {
            return r.region == region && r.page() >= from && r.page() + r.count <= to;
        }

        /** Whether a span of {@code spans} holds page {@code page} of {@code region}. */
        static boolean anyHolds(List<Span> spans, RegionState region, long page) {
            for (Span s : spans) {
                if (s.region == region && s.from <= page && page < s.to) {
                    return true;
                }
            }
            return false;
        }

        @Override
        public String toString() {
            return "pages [" + from + ", " + to + ") of " + region;
        }
    }

    /** The spans of {@code requests}' contiguous requests that are not in place on {@code target} (blocks locked). */
    static List<Span> misplaced(EngineContext ctx, List<MigrationRequest> requests, int target) {
        List<Span> spans = spans(requests);
        if (spans.isEmpty()) {
            return spans;
        }
        int boundary = ctx.driver(target).contiguousFrames();
        List<Span> out = new ArrayList<>();
        for (Span s : spans) {
            if (s.pages() > boundary) {
                // before anything leaves the device: a span no run of frames can hold is refused as it is
                throw new DeviceMemoryException("a plain argument of " + bytes(s.pages()) + " bytes (" + s.region()
                        + ", pages [" + s.from() + ", " + s.to() + ")) does not fit the " + bytes(boundary) + " bytes that "
                        + "one pointer spans on device node " + target + " (" + ctx.driver(target).name() + "); declare a "
                        + "per-item window (KernelArg.perItem) so that it runs tile by tile");
            }
            if (!inPlace(s, target, boundary)) {
                boolean written = false;
                for (MigrationRequest r : requests) {
                    written |= r.write() && r.region() == s.region() && r.from() < s.to() && s.from() < r.to();
                }
                out.add(new Span(s.region(), s.from(), s.to(), written));
            }
        }
        return out;
    }

    /** The contiguous requests merged per region where they overlap, in region and page order. */
    static List<Span> spans(List<MigrationRequest> requests) {
        List<MigrationRequest> c = null;   // allocated only if needed: every ensure passes here
        for (MigrationRequest r : requests) {
            if (r.contiguous()) {
                if (c == null) {
                    c = new ArrayList<>();
                }
                c.add(r);
            }
        }
        if (c == null) {
            return List.of();
        }
        c.sort(Comparator.comparingInt((MigrationRequest r) -> r.region().id()).thenComparingLong(MigrationRequest::from));
        List<Span> out = new ArrayList<>();
        RegionState region = null;
        long from = 0;
        long to = 0;
        for (MigrationRequest r : c) {
            if (r.region() == region && r.from() < to) {
                to = Math.max(to, r.to());
                continue;
            }
            if (region != null) {
                out.add(new Span(region, from, to, false));
            }
            region = r.region();
            from = r.from();
            to = r.to();
        }
        out.add(new Span(region, from, to, false));
        return out;
    }

    /** Whether every page of {@code s} is on {@code target}, in consecutive frames within one stretch. */
    private static boolean inPlace(Span s, int target, int boundary) {
        long base = -1;
        for (long page = s.from(); page < s.to(); page++) {
            Block b = s.region().table().block(blockOf(page));
            int p = pageInBlock(page);
            if (!b.isResident(target, p)) {
                return false;
            }
            long f = b.frame(target, p);
            if (base < 0) {
                base = f;
            } else if (f != base + (page - s.from())) {
                return false;
            }
        }
        return base / boundary == (base + s.pages() - 1) / boundary;
    }

    /**
     * A page of a span that stayed on the target: the pin that keeps it there (null when that pin
     * has gone since: look again at once), and the region whose pin it is.
     */
    record Stuck(Pins.Pin pin, RegionState region) {}

    /**
     * Sends the spans' pages that are on {@code target} away from it; returns the pin that keeps one
     * of them there (the caller waits for it and starts over), or null when none is left. A page a
     * running kernel only reads, through a frame it bound at its launch, leaves the page table and
     * keeps its frame for that kernel (DETACHABLE_PINS in {@link Pins}): the next tile of a stencil
     * places its window, which shares the running tile's halo pages, without waiting for that tile.
     */
    static Stuck vacate(EngineContext ctx, Eviction eviction, List<Span> spans, int target) {
        boolean bindsByFrame = ctx.driver(target).bindsPlainArgumentsByFrame();
        for (Span s : spans) {
            boolean copiesWithin = s.run >= 0;   // its run is claimed: pages that can, move into it within the device
            long page = s.from();
            while (page < s.to()) {
                long bi = blockOf(page);
                long end = Math.min(s.to(), firstPage(bi + 1));
                Block b = s.region().table().block(bi);
                int p0 = pageInBlock(page);
                int p1 = p0 + (int) (end - page);
                if (b.residentCount(target, p0, p1) > 0) {
                    long first = firstPage(bi);
                    int p = p0;
                    while (p < p1) {
                        // stretches of pages that leave; the others stay for the planner to relocate
                        if (copiesWithin && relocates(s, b, p, first + p, target)) {
                            p++;
                            continue;
                        }
                        int q = p + 1;
                        while (q < p1 && !(copiesWithin && relocates(s, b, q, first + q, target))) {
                            q++;
                        }
                        eviction.evictRange(s.region(), b, target, p, q);
                        if (bindsByFrame && b.residentCount(target, p, q) > 0) {
                            // a running kernel reads them through frames it bound: they may be placed anew beside it
                            eviction.detachFromRunningKernels(s.region(), b, target, p, q);
                        }
                        p = q;
                    }
                    for (p = p0; p < p1; p++) {
                        if (b.isResident(target, p) && !(copiesWithin && relocates(s, b, p, first + p, target))) {
                            // the pin that kept it; none if it went since (unpinning takes no block lock):
                            // then the caller looks again at once
                            return new Stuck(Eviction.pinKeeping(s.region(), b.residentMask(p), target, firstPage(bi) + p),
                                    s.region());
                        }
                    }
                }
                page = end;
            }
        }
        return null;
    }

    /**
     * Whether a page of a misplaced span that the target holds moves to the span's frames within the
     * device ({@link Action#RELOCATE}) rather than leaving it: no kernel of the target holds it (its
     * old frame may go), and the target may write it if the call writes the span (else the planner
     * would have it COLLAPSE, which keeps the frame). The planner decides RELOCATE for exactly these
     * pages: a page of the span on the target that it finds fine but for its frame.
     */
    private static boolean relocates(Span s, Block b, int p, long page, int target) {
        return b.isResident(target, p) && (!s.written || b.isWritable(target, p))
                && s.region().pins().on(target, page, page + 1) == null;
    }

    /**
     * Relocation's precondition, before {@link #vacate}: a run of consecutive frames for every
     * misplaced span, free now or made free by {@link Compaction} (pages moved out of a window
     * within the device), claimed (counted in flight, prepared by the driver). A span whose pages
     * move within the device holds its old frames and its new run at once; taking the run without
     * evicting anything keeps relocation from pushing other data out of the device where leaving
     * and coming back would not have needed to (its old frames freed first). Returns whether every
     * span got one; if any did not, none keeps one, and all are placed through the host as before.
     * Only where the driver copies within its memory.
     */
    static boolean claimRuns(EngineContext ctx, Compaction compaction, List<Span> spans, int target) {
        DeviceNode dev = ctx.device(target);
        if (!dev.driver().canCopyWithin()) {
            return false;
        }
        int boundary = dev.driver().contiguousFrames();
        for (Span s : spans) {
            int n = s.pages();
            int base = ctx.inFlight.allocateContiguous(dev.allocator(), target, n, boundary);
            if (base >= 0) {
                s.run = base;
                s.handedOver = false;
                prepareAligned(dev, base, n);   // a failure leaves the run to releaseRuns
                continue;
            }
            // a fragmented device: a window cleared within it (prepared by compaction), nothing sent home
            base = compaction.makeRun(target, n, boundary);
            if (base < 0) {
                releaseRuns(ctx, spans, target);
                return false;
            }
            s.run = base;
            s.handedOver = false;
        }
        return true;
    }

    /**
     * Gives back the runs spans claimed and their batch did not take (the pass ended before its
     * allocate phase, or a span could not claim one). Called at the end of every pass.
     */
    static void releaseRuns(EngineContext ctx, List<Span> spans, int target) {
        RuntimeException failed = null;   // every span's run, whatever an earlier one's release threw
        for (Span s : spans) {
            if (s.run >= 0 && !s.handedOver) {
                try {
                    ctx.inFlight.free(ctx.device(target).allocator(), target, s.run, s.pages());
                } catch (RuntimeException e) {
                    failed = (RuntimeException) CommitPhase.keep(failed, e);
                }
            }
            s.run = -1;
        }
        if (failed != null) {
            throw failed;
        }
    }

    /**
     * The allocate phase's first step for a batch with spans: one run of consecutive frames per
     * span (the one {@link #claimRuns} claimed, or one taken now: free, cleared by
     * {@link Compaction}, or free once cold pages are evicted), prepared by the driver in aligned
     * pieces, and handed to the span's runs in page order. Every page of a span must be in one of
     * the batch's allocating runs ({@link #vacate} and the planner see to it).
     */
    static void allocate(EngineContext ctx, MigrationBatch batch, Eviction eviction) {
        int target = batch.target;
        DeviceNode dev = ctx.device(target);
        BuddyAllocator alloc = dev.allocator();
        int boundary = dev.driver().contiguousFrames();
        for (Span s : batch.spans) {
            int n = s.pages();   // at most one stretch: misplaced() refused longer spans
            boolean claimed = s.run >= 0;
            int base = claimed ? s.run : takeRun(ctx, batch, eviction, dev, s, boundary);
            // the span's runs and their frame arrays first, then the hand-over, which allocates nothing: an
            // Error (no memory for an array) midway left the first runs holding frames of a run the span
            // still owned, freed twice then (undo, and releaseRuns), or never (a run taken here)
            List<Run> takers;
            int[][] frames;
            try {
                takers = new ArrayList<>();
                int covered = 0;
                for (Run r : batch.runs) {
                    if (r.action.allocates() && s.holds(r)) {
                        takers.add(r);
                        covered += r.count;
                    }
                }
                if (covered != n) {
                    throw new IllegalStateException("placing pages [" + s.from() + ", " + s.to() + ") of " + s.region()
                            + " in consecutive frames: only " + covered + " of " + n + " pages were planned to move");
                }
                frames = new int[takers.size()][];
                for (int t = 0; t < frames.length; t++) {
                    Run r = takers.get(t);
                    frames[t] = new int[r.count];
                    int first = base + (int) (r.page() - s.from());
                    for (int i = 0; i < r.count; i++) {
                        frames[t][i] = first + i;
                    }
                }
            } catch (RuntimeException | Error e) {
                if (!claimed) {
                    // a run taken here is nobody's yet (a claimed one stays the span's: releaseRuns gives it back)
                    try {
                        ctx.inFlight.free(alloc, target, base, n);
                    } catch (RuntimeException | Error f) {
                        e.addSuppressed(f);
                    }
                }
                throw e;
            }
            for (int t = 0; t < frames.length; t++) {
                Run r = takers.get(t);
                r.frames = frames[t];
                r.framesAllocated = r.count;
                r.reserved += r.count;   // counted in flight by allocateContiguous
            }
            s.handedOver = true;   // the runs hold the frames now: undo frees them, as any batch's
        }
    }

    /**
     * {@code n} consecutive frames within one stretch, counted in flight and prepared by the driver:
     * free ones, else a window compaction clears, else evicting cold pages until a run is free.
     */
    private static int takeRun(EngineContext ctx, MigrationBatch batch, Eviction eviction, DeviceNode dev, Span span,
                               int boundary) {
        int n = span.pages();
        int target = batch.target;
        BuddyAllocator alloc = dev.allocator();
        int base;
        boolean compacted = false;
        while (true) {
            long epoch = alloc.changes();
            base = ctx.inFlight.allocateContiguous(alloc, target, n, boundary);
            if (base >= 0) {
                break;
            }
            if (!compacted) {
                // free frames enough but scattered: pages move out of a window within the device (Compaction)
                // rather than cold pages going home until a run comes free; tried once, then a free run is
                // looked for again (one may have come free while it tried) before anything is evicted
                compacted = true;
                base = eviction.compaction().makeRun(target, n, boundary);
                if (base >= 0) {
                    return base;   // counted in flight and prepared
                }
                continue;
            }
            if (!eviction.makeRoom(target, n, batch, epoch)) {
                throw new NoRunException("device node " + target + " (" + dev.driver().name() + ") has no "
                        + bytes(n) + " consecutive free bytes for a plain argument: " + alloc.freeBytes() + " bytes free of "
                        + bytes(alloc.totalFrames()) + ", the rest held by pages that cannot leave ("
                        + eviction.whoHolds(target, batch) + ")", span.region(), span.from(), span.to());
            }
        }
        try {
            prepareAligned(dev, base, n);
        } catch (RuntimeException | Error e) {
            ctx.inFlight.free(alloc, target, base, n);
            throw e;
        }
        return base;
    }

    /** The driver prepares [base, base + n) in aligned power-of-two pieces of at most a block, as its contract says. */
    static void prepareAligned(DeviceNode dev, int base, int n) {
        int f = base;
        int left = n;
        int maxOrder = BuddyAllocator.MAX_ORDER;
        while (left > 0) {
            int o = Math.min(maxOrder, Integer.numberOfTrailingZeros(f | (1 << BuddyAllocator.MAX_ORDER)));
            while ((1 << o) > left) {
                o--;
            }
            try {
                dev.driver().prepareFrames(f, 1 << o);
            } catch (RunTooLargeException e) {
                if (o == 0) {
                    throw e;
                }
                maxOrder = o - 1;   // the same frames, prepared in smaller pieces
                continue;
            }
            f += 1 << o;
            left -= 1 << o;
        }
    }
}
