package dev.hetmem;

import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.driver.DeviceFaultHandler;
import dev.hetmem.driver.DeviceKernel;
import dev.hetmem.driver.DeviceMemoryException;
import dev.hetmem.driver.KernelBinding;
import dev.hetmem.internal.CallerThreads;
import dev.hetmem.internal.DeviceNode;
import dev.hetmem.internal.Pins;
import dev.hetmem.internal.RegionState;
import dev.hetmem.migrate.MigrationEngine;
import dev.hetmem.migrate.MigrationRequest;
import dev.hetmem.migrate.NoRunException;
import dev.hetmem.observe.FaultEvent;
import dev.hetmem.observe.TileEvent;
import dev.hetmem.pagetable.Block;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Objects;

import static dev.hetmem.driver.PageGeometry.BLOCK_PAGES;
import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;
import static dev.hetmem.driver.PageGeometry.PAGE_SHIFT;
import static dev.hetmem.driver.PageGeometry.blockOf;
import static dev.hetmem.driver.PageGeometry.pageInBlock;

/**
 * {@link UnifiedMemory#launch}: GMEM's device fault, in one of three ways.
 *
 * <ol>
 *   <li><b>Resident</b>, when the arguments fit the device: every argument's range is made
 *       resident with the access it declares and pinned for the run, then the kernel runs.</li>
 *   <li><b>Tiled</b>, when they do not fit but arguments declare per-item windows
 *       ({@link KernelArg#perItem}): the work items are cut into tiles whose windows fit beside
 *       the whole arguments as often as tiles are on the device at once (the first three smaller,
 *       ramping up to that size); each tile's pages are made resident and pinned while it
 *       runs (with the global offset of its first item), and the next tile's windows are
 *       prefetched meanwhile (double buffering, as a hand-tiled program does; on a device whose
 *       kernels read through the CPU caches, {@link DeviceDriver#tileCacheBytes}, small tiles, two
 *       ahead, dropped behind: {@link #tiling}). A launch that fits
 *       runs so too when a plain argument with a window finds no run of consecutive frames for all
 *       of it (the launch's own other arguments cut the free frames: {@link NoRunException}) and
 *       the launch cuts into more than one tile: its tiles need shorter runs.</li>
 *   <li><b>Faulting</b>, when they do not fit, declare no window, the device takes device faults
 *       (HMM's device fault, UVM's replayable faults): nothing is brought in up front; a
 *       work item that touches a page not on the device faults, the core brings its granule over
 *       (evicting other pages, this launch's too where no item is using them), and the access is
 *       retried. Nothing is pinned: the driver keeps a page's translation valid only while an item
 *       may use it (its invalidation waits), see the driver SPI. In userfaultfd mode the fault
 *       service leaves the arguments' pages alone as neighbours of host faults meanwhile
 *       ({@code RegionState.beginFaulting}); pages host code touches itself are taken back in by the
 *       engine (README says what host code may do to a running kernel's pages).</li>
 * </ol>
 *
 * Arguments that do not fit, declare no window, on a device that cannot take faults: the launch
 * fails at once with the sizes. Regions are entered in ascending id, so two launches never wait
 * for each other's regions in opposite order.
 */
final class KernelLaunch {
    /**
     * The tiles a launch holds on the device at once, the running one and those prefetched ahead,
     * take at most this share of it (and no more than the whole arguments leave): half, as a
     * hand-written double-buffered program sizes its two buffer sets; the other half is left to
     * the whole arguments and to what else is resident.
     */
    private static final double TILES_SHARE = 0.5;

    /**
     * Tiles prefetched ahead of the running one: one on a device with memory of its own (each tile
     * as large as the share allows, a quarter of the device); two where tiles keep to the caches
     * ({@link DeviceDriver#tileCacheBytes}), whose small tiles' prefetches would otherwise wait for
     * a hand-over to the prefetch thread each (one ahead, 2 MiB tiles: 66 us a tile).
     */
    private static final int AHEAD = 1;
    private static final int AHEAD_CACHED = 2;

    /** How many tiles ramp up to full size ({@link #tileItems}): the first holds an eighth. */
    private static final int RAMP_TILES = 3;

    private final UnifiedMemory memory;

    KernelLaunch(UnifiedMemory memory) {
        this.memory = memory;
    }

    /**
     * One argument, checked, as the engine and the driver see it; {@code plain} when the kernel
     * reaches it by a plain pointer ({@link DeviceKernel#plainArgument}): its pages are then placed
     * in consecutive device frames.
     */
    private record Arg(KernelArg arg, RegionState state, long firstPage, long endPage, boolean plain) {
        long pages() {
            return endPage - firstPage;
        }

        MigrationRequest request() {
            return new MigrationRequest(state, firstPage, endPage, arg.access().writes(), exclusive(), plain, false);
        }

        /** As {@link #request}, in a tiled launch: a read leaves the host its copy (the pages go again soon). */
        MigrationRequest streamedRequest() {
            return new MigrationRequest(state, firstPage, endPage, arg.access().writes(), exclusive(), plain, streamed());
        }

        /** A read of a launch larger than the device: duplicated, so that its eviction copies nothing back. */
        boolean streamed() {
            return !arg.access().writes();
        }

        /** The binding of items [from, to)'s window (the whole argument without one). */
        KernelBinding windowBinding(long from, long to) {
            long[] w = arg.window(from, to);
            return new KernelBinding(state.pageAddress(0) + arg.offset() + w[0], w[1] - w[0], arg.access());
        }

        /** The pages items [from, to) touch (all of the argument without a window); null if they touch none of it. */
        MigrationRequest windowRequest(long from, long to) {
            long[] w = arg.window(from, to);
            if (w[0] >= w[1]) {
                // items past the argument's end touch none of it: no request (not one of no pages, which
                // is refused, nor the argument's last page, which they do not touch either)
                return null;
            }
            long a = (arg.offset() + w[0]) >>> PAGE_SHIFT;
            long b = Math.max(a + 1, Math.ceilDiv(arg.offset() + w[1], PAGE_BYTES));
            return new MigrationRequest(state, Math.max(firstPage, a), Math.min(endPage, b), arg.access().writes(),
                    exclusive(), plain, streamed());
        }

        boolean exclusive() {
            return arg.access() == Access.EXCLUSIVE;
        }
    }

    LaunchResult launch(DeviceNode dev, int node, DeviceKernel kernel, long globalSize, KernelArg... args) {
        Objects.requireNonNull(kernel, "kernel");
        Objects.requireNonNull(args, "args");
        if (globalSize < 1) {
            throw new IllegalArgumentException("global size " + globalSize + " must be at least 1");
        }
        memory.checkOpen();
        long multiple = kernel.itemMultiple();
        if (multiple > 1 && globalSize % multiple != 0) {
            // before anything runs: a tiled launch's tiles keep to the multiple, and only its last tile,
            // after the others had run and written, was refused by the device
            throw new IllegalArgumentException("global size " + globalSize + " is not a multiple of " + multiple
                    + ", the work items (the rows, for a 2-D range) of the kernel's work-group");
        }
        memory.engine().refuseFromFaultingItem("a launch");
        List<Arg> checked = new ArrayList<>(args.length);
        List<KernelBinding> bindings = new ArrayList<>(args.length);
        List<RegionState> entered = new ArrayList<>();
        for (KernelArg a : args) {
            Objects.requireNonNull(a, "kernel argument");
            memory.checkMine(a.region());
            Checks.range(a.offset(), a.length(), a.region().size(), a.region());
            RegionState s = a.region().state();
            long from = a.offset() >>> PAGE_SHIFT;
            long to = Math.ceilDiv(a.offset() + a.length(), PAGE_BYTES);
            s.refuseFreed(from, to, "kernel argument " + checked.size());
            if (a.access().writes()) {
                long ro = s.attributes().firstReadOnly(from, to);
                if (ro >= 0) {
                    throw new ProtectionException("kernel argument writes [" + a.offset() + ", " + (a.offset() + a.length())
                            + ") of " + a.region() + " but the page at offset " + (ro << PAGE_SHIFT) + " is read-only");
                }
            }
            checked.add(new Arg(a, s, from, to, kernel.plainArgument(checked.size())));
            bindings.add(new KernelBinding(s.pageAddress(0) + a.offset(), a.length(), a.access()));
            if (!entered.contains(s)) {
                entered.add(s);
            }
        }
        entered.sort(Comparator.comparingInt(RegionState::id));
        int enteredCount = 0;
        try {
            for (RegionState s : entered) {
                s.lifecycle().enter();
                enteredCount++;
            }
            long frames = dev.allocator().totalFrames();
            long total = distinctPages(checked, false);
            Arg tooLong = longestPlain(checked, dev.driver().contiguousFrames());
            if (total <= frames && tooLong == null) {
                try {
                    return resident(dev, node, kernel, 0, globalSize, checked, bindings, null, null, null, true);
                } catch (NoRunBeforeRun refused) {
                    return tiledForWantOfARun(dev, node, kernel, globalSize, checked, bindings, frames, refused.noRun);
                }
            }
            refuseOwnPins(checked);   // the pages move on other threads: a pin of this thread would never go
            boolean windows = checked.stream().anyMatch(a -> a.arg().hasWindow());
            if (windows) {
                return tiled(dev, node, kernel, globalSize, checked, bindings, frames,
                        tiling(dev, kernel, globalSize, checked, frames), true);
            }
            Arg plain = checked.stream().filter(Arg::plain).findFirst().orElse(null);
            if (plain != null) {
                // a plain pointer reaches its pages with no page table to fault through
                Arg shown = tooLong != null ? tooLong : plain;
                throw new DeviceMemoryException("the arguments of this launch need " + total * PAGE_BYTES + " bytes on device node "
                        + node + " (" + dev.driver().name() + "), which has " + frames * PAGE_BYTES + " bytes, "
                        + (long) dev.driver().contiguousFrames() * PAGE_BYTES + " of them reachable by one pointer; plain argument "
                        + checked.indexOf(shown) + " (" + shown.arg().length() + " bytes) must be resident in consecutive frames: "
                        + "declare what each work item touches (KernelArg.perItem(stride, extent)) so that the launch runs "
                        + "tile by tile");
            }
            if (dev.driver().takesDeviceFaults()) {
                return faulting(dev, node, kernel, globalSize, checked, bindings);
            }
            throw new DeviceMemoryException("the arguments of this launch need " + total * PAGE_BYTES + " bytes on device node "
                    + node + " (" + dev.driver().name() + "), which has " + frames * PAGE_BYTES + " bytes and cannot "
                    + "take faults while a kernel runs: declare what each work item touches (KernelArg.perItem(stride, "
                    + "extent)) so that the launch runs tile by tile");
        } finally {
            for (int i = 0; i < enteredCount; i++) {
                entered.get(i).lifecycle().exit();
            }
        }
    }

    /**
     * The resident launch's own placement found no run for a plain argument ({@link NoRunException}
     * from its {@code ensure}, before any pin and before the kernel: an exception of the kernel, such
     * as one a kernel it launched threw, is never wrapped so).
     */
    private static final class NoRunBeforeRun extends RuntimeException {
        final NoRunException noRun;

        NoRunBeforeRun(NoRunException noRun) {
            super(null, noRun, false, false);
            this.noRun = noRun;
        }
    }

    /**
     * A launch that fits the device, whose placement found no run for a plain argument: the free
     * frames lie on both sides of pages that cannot leave, the launch's own other arguments. If that
     * argument declares a per-item window and the launch cuts into more than one tile, it runs tile
     * by tile, each tile's window needing a shorter run (declaring a window allows that: see
     * {@link KernelArg}); otherwise the failure is reported, naming the window to declare where none is.
     */
    private LaunchResult tiledForWantOfARun(DeviceNode dev, int node, DeviceKernel kernel, long globalSize, List<Arg> args,
                                           List<KernelBinding> bindings, long frames, NoRunException e) {
        // the argument of the span; where two of one region share it, one without a window decides (its
        // tiles would ask for the same run again)
        Arg cut = null;
        for (Arg a : args) {
            if (a.plain() && e.spans(a.state(), a.firstPage(), a.endPage()) && (cut == null || !a.arg().hasWindow())) {
                cut = a;
            }
        }
        if (cut != null && !cut.arg().hasWindow()) {
            DeviceMemoryException hinted = new DeviceMemoryException(e.getMessage() + "; declare what each work item of plain "
                    + "argument " + args.indexOf(cut) + " touches (KernelArg.perItem(stride, extent)) so that the launch can run "
                    + "tile by tile, each tile needing a shorter run");
            hinted.initCause(e);
            throw hinted;
        }
        Tiling tiling = tiling(dev, kernel, globalSize, args, frames);
        if (cut == null || tiling.items() < 1 || tiling.items() >= globalSize) {
            throw e;   // tiles would need the same run, or none fit
        }
        System.getLogger(KernelLaunch.class.getName()).log(System.Logger.Level.DEBUG,
                "no run for a plain argument; the launch runs tile by tile", e);
        try {
            refuseOwnPins(args);   // the pages move on other threads: a pin of this thread would never go
            return tiled(dev, node, kernel, globalSize, args, bindings, frames, tiling, false);   // it fits: nothing dropped
        } catch (RuntimeException | Error t) {
            t.addSuppressed(e);
            throw t;
        }
    }

    /**
     * Items [first, first + count) with every request resident and pinned for the run.
     * {@code noRunBeforeRun}: a {@link NoRunException} of the placement is thrown as
     * {@link NoRunBeforeRun}, so that the caller can tell it from one of the kernel's.
     */
    private LaunchResult resident(DeviceNode dev, int node, DeviceKernel kernel, long first, long count, List<Arg> args,
                                  List<KernelBinding> bindings, List<MigrationRequest> requests,
                                  DeviceFaultHandler faults, Runnable onPinned, boolean noRunBeforeRun) {
        if (requests == null) {
            requests = new ArrayList<>(args.size());
            for (Arg a : args) {
                requests.add(a.request());
            }
        }
        List<Pins.Pin> pins = List.of();
        try {
            FaultEvent event = new FaultEvent();
            event.begin();
            long t0 = System.nanoTime();
            MigrationEngine.Outcome out;
            // the bring-in the kernel waits for: asynchronous prefetches to the node start after it (BringIns);
            // its pins are the launch's before it ends, so that they are let go whatever happens after
            long ticket = memory.bringIns().begin(node);
            try {
                out = requests.isEmpty() ? new MigrationEngine.Outcome(0, 0, List.of())
                        : memory.engine().ensure(requests, node, Trigger.FAULT, MigrationEngine.Pinning.PIN,
                        MigrationEngine.FROM_ANY_NODE);
                pins = out.pins();
            } catch (NoRunException e) {
                if (noRunBeforeRun) {
                    throw new NoRunBeforeRun(e);
                }
                throw e;
            } finally {
                memory.bringIns().end(node, ticket);
            }
            long t1 = System.nanoTime();
            if (!requests.isEmpty() && out.faults() > 0) {
                MigrationRequest firstRequest = requests.getFirst();   // region and range of one request, as the event says
                countFaults(node, firstRequest.region(), out.faults(), out.pagesMigrated(), FaultEvent.KERNEL, event,
                        firstRequest.from() << PAGE_SHIFT, (firstRequest.to() - firstRequest.from()) << PAGE_SHIFT,
                        out.faultsByRegion());
            }
            if (dev.driver().bindsPlainArgumentsByFrame()) {
                bindings = boundByFrame(node, args, bindings, requests, pins);
            }
            if (onPinned != null) {
                onPinned.run();
            }
            List<KernelBinding> bound = bindings;
            // its work items, on whatever compute thread, take what this thread holds now (the launch's pins
            // among it) for their own (CallerThreads)
            CallerThreads.launching(() -> dev.driver().execute(kernel, first, count, bound, faults));
            long t2 = System.nanoTime();
            return new LaunchResult(out.pagesTouched(), out.faults(), out.pagesMigrated(),
                    out.pagesMigrated() << PAGE_SHIFT, t1 - t0, t2 - t1, out.faults() > 0 ? 1 : 0);
        } finally {
            unpinAll(requests, pins);
        }
    }

    /** Releases every pin, even where one's release fails (kept device frames whose release throws); then throws that. */
    private static void unpinAll(List<MigrationRequest> requests, List<Pins.Pin> pins) {
        List<Runnable> unpins = new ArrayList<>(pins.size());
        for (int i = 0; i < pins.size(); i++) {
            Pins.Pin p = pins.get(i);
            RegionState region = requests.get(i).region();
            unpins.add(() -> region.unpin(p));
        }
        Pins.run(unpins);   // each one, whatever an earlier one threw (an Error too)
    }

    /**
     * The bindings with each plain argument's first frame named, read while this launch's pins keep
     * its pages where they are; then its read-only plain pins let their pages be placed elsewhere
     * (DETACHABLE_PINS in {@link Pins}): from here on the kernel needs only the frames, which stay
     * allocated until the pins go. A read pin that also covers a page some argument reaches through
     * the page table is not marked, so that page stays mapped.
     */
    private static List<KernelBinding> boundByFrame(int node, List<Arg> args, List<KernelBinding> bindings,
                                                    List<MigrationRequest> requests, List<Pins.Pin> pins) {
        List<KernelBinding> out = new ArrayList<>(bindings);
        List<Bound> bound = new ArrayList<>(args.size());
        for (int i = 0; i < args.size(); i++) {
            KernelBinding b = bindings.get(i);
            if (args.get(i).plain() && b.length() > 0) {
                RegionState s = args.get(i).state();
                long first = (b.va() - s.pageAddress(0)) >>> PAGE_SHIFT;
                long end = Math.ceilDiv(b.va() + b.length() - s.pageAddress(0), PAGE_BYTES);
                long frame = firstFrame(node, s, first, end, b.access().writes());
                bound.add(new Bound(s, first, end, frame));
                out.set(i, b.atFrame(frame));
            }
        }
        for (int j = 0; j < pins.size(); j++) {
            MigrationRequest r = requests.get(j);
            if (r.contiguous() && !r.write() && r.to() > r.from() && !reachedThroughPageTable(args, bindings, r)) {
                r.region().pins().allowDetach(pins.get(j), frameOf(bound, node, r));
            }
        }
        return out;
    }

    /** A plain argument's pages [first, end) of a region and the frame the first lies in. */
    private record Bound(RegionState region, long first, long end, long frame) {}

    /** The first frame of a request's pages: the one read for the argument of those pages, if any; else read now. */
    private static long frameOf(List<Bound> bound, int node, MigrationRequest r) {
        for (Bound b : bound) {
            if (b.region() == r.region() && b.first() == r.from() && b.end() == r.to()) {
                return b.frame();
            }
        }
        return firstFrame(node, r.region(), r.from(), r.to(), false);
    }

    /** Whether an argument that is not plain reaches any page of {@code r}. */
    private static boolean reachedThroughPageTable(List<Arg> args, List<KernelBinding> bindings, MigrationRequest r) {
        for (int i = 0; i < args.size(); i++) {
            KernelBinding b = bindings.get(i);
            if (!args.get(i).plain() && args.get(i).state() == r.region() && b.length() > 0) {
                long from = (b.va() - r.region().pageAddress(0)) >>> PAGE_SHIFT;
                long to = Math.ceilDiv(b.va() + b.length() - r.region().pageAddress(0), PAGE_BYTES);
                if (from < r.to() && r.from() < to) {
                    return true;
                }
            }
        }
        return false;
    }

    /**
     * The frame of page {@code first} on {@code node}, after checking that pages [first, end) lie in
     * the frames after it (the placement every plain argument is given before its pin), writable
     * where the kernel writes.
     */
    private static long firstFrame(int node, RegionState s, long first, long end, boolean writes) {
        long frame0 = -1;
        long page = first;
        while (page < end) {
            Block blk = s.table().block(blockOf(page));
            long blockEnd = Math.min(end, (blockOf(page) + 1) * BLOCK_PAGES);
            blk.lock.lock();   // L6 under this launch's pins (L3): allowed, and the frames cannot move meanwhile
            try {
                for (; page < blockEnd; page++) {
                    int p = pageInBlock(page);
                    if (!blk.isResident(node, p) || (frame0 >= 0 && blk.frame(node, p) != frame0 + (page - first))
                            || (writes && !blk.isWritable(node, p))) {
                        throw new IllegalStateException("plain argument pages [" + first + ", " + end + ") of " + s
                                + " are not in consecutive" + (writes ? " writable" : "") + " frames of node " + node
                                + " at page " + page);
                    }
                    if (frame0 < 0) {
                        frame0 = blk.frame(node, p);
                    }
                }
            } finally {
                blk.lock.unlock();
            }
        }
        return frame0;
    }

    /**
     * Tile by tile: as many items per tile as keep the whole arguments plus the windows of the tiles
     * on the device at once within it ({@code tiling}); the coming tiles' windows are prefetched
     * while a tile runs. {@code dropsBehind}: a launch too large for the device, whose read windows
     * may go once their tile ran where tiles keep to the caches ({@link #dropBehind}); false for one
     * that fits but is tiled for want of a run.
     */
    private LaunchResult tiled(DeviceNode dev, int node, DeviceKernel kernel, long globalSize, List<Arg> args,
                               List<KernelBinding> bindings, long frames, Tiling tiling, boolean dropsBehind) {
        long items = tiling.items();
        long multiple = tiling.multiple();
        long whole = tiling.whole();
        if (items < 1) {
            long one = windowPages(args, 0, multiple);
            throw new DeviceMemoryException("device node " + node + " (" + dev.driver().name() + ") has " + frames * PAGE_BYTES
                    + " bytes: the arguments without a per-item window need " + whole * PAGE_BYTES + " and the windows of "
                    + (multiple == 1 ? "one work item " : "one work-group of " + multiple + " items ") + one * PAGE_BYTES
                    + ", " + (tiling.depth() == 1 ? "twice over for double buffering" : (tiling.depth() + 1)
                    + " times over (the running tile and those prefetched ahead)") + "; declare windows on the large "
                    + "arguments or use a larger device");
        }
        boolean relative = args.stream().anyMatch(Arg::plain);
        if (!relative && items < globalSize && !dev.driver().runsFromAnyItem()) {
            // checked before the first tile: its items would have run and written, the second refused
            throw new DeviceMemoryException("device node " + node + " (" + dev.driver().name() + ") has " + frames * PAGE_BYTES
                    + " bytes and runs whole launches only (its driver does not run a kernel from a later item): this "
                    + "launch's arguments need " + (whole + windowPages(args, 0, globalSize)) * PAGE_BYTES + " bytes and "
                    + "would run in tiles of " + items + " items; use a larger device, or a kernel with plain arguments "
                    + "(each tile then runs as a launch of its own)");
        }
        long touched = 0;
        long faults = 0;
        long batches = 0;
        long migrated = 0;
        long faultNanos = 0;
        long kernelNanos = 0;
        TilePrefetches prefetches = new TilePrefetches(memory.background());
        ArrayDeque<TilePrefetches.Prefetch> ahead = new ArrayDeque<>();   // tiles tile + 1, tile + 2, ...
        long depth = tiling.depth();
        long firstTileEnd = Math.min(tileItems(0, items, multiple, globalSize), globalSize);
        ComingTiles planned = new ComingTiles(firstTileEnd, windows(args, 0, firstTileEnd, true));
        // where the device takes faults, an item that reaches outside its declared window faults the
        // page in (and its translations are tracked) instead of touching whatever is mapped there
        long[] faultCounts = new long[3];
        boolean hostTakesPages = args.stream().anyMatch(a -> a.state().host().takesPagesOnItsOwn());
        DeviceFaultHandler handler = dev.driver().takesDeviceFaults() && !hostTakesPages
                ? faultHandler(node, args, faultCounts) : null;
        try {
            long tile = 0;
            long count;
            for (long first = 0; first < globalSize; first += count, tile++) {   // never past globalSize: no wrap
                count = Math.min(tileItems(tile, items, multiple, globalSize), globalSize - first);
                TileEvent event = new TileEvent();
                event.begin();
                long faultedBefore = migratedByFaults(faultCounts);
                long waitStart = System.nanoTime();
                long prefetched = 0;
                if (!ahead.isEmpty()) {
                    prefetched = prefetches.await(ahead.poll());   // this tile's prefetch, started while a predecessor ran
                }
                long prefetchWait = System.nanoTime() - waitStart;
                long next = first + count;
                // the coming tiles' windows are prefetched once this tile is pinned: started before, a prefetch
                // sharing a page with this tile (overlapping windows) would take it off this tile's placement;
                // a tile beyond the next only where its plain windows share no page with its predecessor's, for
                // the same reason (a page reached through the page table may be anywhere on the device)
                long current = tile;
                Runnable prefetchNext = next >= globalSize ? null : () -> {
                    while (planned.tile <= current + depth && planned.first < globalSize) {
                        long from = planned.first;
                        long to = from + Math.min(tileItems(planned.tile, items, multiple, globalSize), globalSize - from);
                        List<MigrationRequest> w = windows(args, from, to, true);
                        if (planned.tile > current + 1 && sharesPlacedPage(planned.previousWindows, w)) {
                            break;
                        }
                        // beside the running tile's kernel: its copies on its own thread (MigrationEngine.besideOtherWork)
                        ahead.add(prefetches.submit(tiling.cached()
                                ? () -> MigrationEngine.besideOtherWorkReadSoon(() -> prefetch(w, node))
                                : () -> MigrationEngine.besideOtherWork(() -> prefetch(w, node))));
                        planned.previousWindows = w;
                        planned.tile++;
                        planned.first = to;
                    }
                };
                // plain pointers cannot be offset below their window: a kernel with plain arguments sees each
                // tile as a launch of its own (ids from 0, windowed arguments from their window's first byte),
                // as the kernel of a hand-tiled program does; otherwise ids stay global
                LaunchResult r = relative
                        ? resident(dev, node, kernel, 0, count, args, tileBindings(args, first, next), windows(args, first, next, false),
                        handler, prefetchNext, false)
                        : resident(dev, node, kernel, first, count, args,
                        handler == null ? declaredWindows(args, bindings, first, next) : bindings,
                        windows(args, first, next, false), handler, prefetchNext, false);
                long dropped = tiling.cached() && dropsBehind ? dropBehind(args, first, next, globalSize, node, frames) : 0;
                faults += r.faults();
                batches += r.faultBatches();
                migrated += prefetched + r.pagesMigrated();
                faultNanos += r.faultNanos();
                kernelNanos += r.kernelNanos();
                if (event.shouldCommit()) {
                    event.node = node;
                    event.region = args.getFirst().state().id();
                    event.tile = tile;
                    event.firstItem = first;
                    event.items = count;
                    event.prefetchWait = prefetchWait;
                    event.pin = r.faultNanos();
                    event.kernel = r.kernelNanos();
                    // with the pages its kernel's device faults brought in (counted apart, for the whole launch)
                    event.pagesMigrated = prefetched + r.pagesMigrated() + migratedByFaults(faultCounts) - faultedBefore;
                    event.pagesDropped = dropped;
                    event.commit();
                }
            }
        } catch (Throwable e) {
            // a coming tile's prefetch may wait for a pin of a thread that waits for this launch's
            // outcome (a host view over its window): stopped, not waited for, so the failure is reported
            Error late = prefetches.cancel();
            if (late != null && late != e) {
                e.addSuppressed(late);
            }
            throw e;
        }
        synchronized (faultCounts) {
            faults += faultCounts[0];
            migrated += faultCounts[1];
            batches += faultCounts[2];
        }
        for (Arg a : args) {
            touched += a.pages();   // each page of each argument once, however many tiles it took part in
        }
        return new LaunchResult(touched, faults, migrated, migrated << PAGE_SHIFT, faultNanos, kernelNanos, batches);
    }

    /**
     * The next tile a tiled launch prefetches: its index, its first item, and the windows of the tile
     * before it (which a plain window two ahead must not share a page with). The launching thread's alone.
     */
    private static final class ComingTiles {
        long tile = 1;
        long first;
        List<MigrationRequest> previousWindows;

        ComingTiles(long first, List<MigrationRequest> previousWindows) {
            this.first = first;
            this.previousWindows = previousWindows;
        }
    }

    /**
     * Items of tile {@code tile}: the first tiles ramp up, each twice its predecessor, to the full
     * {@code items} ({@link #RAMP_TILES} halvings below it), as a hand-written pipeline starts with a
     * small piece: the first tile's bring-in is the one no kernel hides, and each tile's prefetch
     * (twice the running tile) overlaps that tile's kernel. Whole multiples of {@code multiple}
     * ({@code items} is one where it cuts the launch); a launch of one tile is not cut.
     */
    static long tileItems(long tile, long items, long multiple, long globalSize) {
        if (tile >= RAMP_TILES || items >= globalSize) {
            return items;
        }
        long ramped = (items >> (RAMP_TILES - tile)) / multiple * multiple;
        return Math.max(Math.min(multiple, items), ramped);
    }

    /**
     * Drop-behind, once items [first, next) have run on a device whose tiles keep to the caches
     * ({@link DeviceDriver#tileCacheBytes}): the device's copies of the tile's read windows that the
     * host holds too go ({@link MigrationEngine#dropSharedCopies}: nothing is copied or lost), so that
     * the coming tiles' prefetches take the frames the caches hold instead of evicting cold ones,
     * as a hand-written program reuses its two buffers. Only for arguments larger than
     * {@link #TILES_SHARE} of the device ({@code frames}), which stream through it: their windows would
     * not stay until the launch's next sweep anyway, where a smaller one (an input beside a large
     * output) may stay for the next launch. Kept: pages a coming tile's window of any windowed
     * argument of the same region takes (from the first page of item {@code next}'s windows on: windows
     * move forward with the items), and every page of a region that an argument without a window
     * reads in every tile. A failure here costs only the frames (the coming tiles evict instead), as
     * a failed prefetch costs only its head start. Returns the copies dropped.
     */
    private long dropBehind(List<Arg> args, long first, long next, long globalSize, int node, long frames) {
        long dropped = 0;
        for (Arg a : args) {
            if (!a.arg().hasWindow() || a.arg().access().writes() || a.pages() <= frames * TILES_SHARE
                    || readWhole(args, a.state())) {
                continue;
            }
            MigrationRequest w = a.windowRequest(first, next);
            if (w == null) {
                continue;
            }
            long to = Math.min(w.to(), comingFrom(args, a.state(), next, globalSize));
            if (w.from() < to) {
                try {
                    dropped += memory.engine().dropSharedCopies(w.region(), w.from(), to, node);
                } catch (RuntimeException e) {
                    System.getLogger(KernelLaunch.class.getName()).log(System.Logger.Level.DEBUG, "drop-behind failed", e);
                }
            }
        }
        return dropped;
    }

    /** The first page of {@code region} that a windowed argument's items from {@code next} on touch (Long.MAX_VALUE: none). */
    private static long comingFrom(List<Arg> args, RegionState region, long next, long globalSize) {
        long from = Long.MAX_VALUE;
        for (Arg a : args) {
            if (a.arg().hasWindow() && a.state() == region && next < globalSize) {
                MigrationRequest coming = a.windowRequest(next, globalSize);
                if (coming != null) {
                    from = Math.min(from, coming.from());
                }
            }
        }
        return from;
    }

    /** Whether an argument without a window covers a part of {@code region} (its pages are read in every tile). */
    private static boolean readWhole(List<Arg> args, RegionState region) {
        for (Arg a : args) {
            if (!a.arg().hasWindow() && a.state() == region) {
                return true;
            }
        }
        return false;
    }

    /** Whether a contiguous request (a plain window, placed in a run of frames) of {@code a} and one of {@code b} share a page. */
    private static boolean sharesPlacedPage(List<MigrationRequest> a, List<MigrationRequest> b) {
        for (MigrationRequest x : a) {
            for (MigrationRequest y : b) {
                if ((x.contiguous() || y.contiguous()) && x.region() == y.region() && x.from() < y.to() && y.from() < x.to()) {
                    return true;
                }
            }
        }
        return false;
    }

    /** Pages the launch's device faults have migrated so far (the fault handler adds to {@code counts[1]}). */
    private static long migratedByFaults(long[] counts) {
        synchronized (counts) {
            return counts[1];
        }
    }

    /**
     * How a launch cuts into tiles: items per tile (below 1 when not even one work-group's windows
     * fit), the multiple of items every tile but the last holds, the pages of the arguments without
     * a window, the tiles prefetched ahead ({@link #AHEAD}, {@link #AHEAD_CACHED}), and whether tiles
     * keep to the caches ({@link DeviceDriver#tileCacheBytes}: then at most that size, and dropped
     * behind). As many items as keep those arguments plus the windows of the tiles on the device at
     * once (the running one and those ahead) within {@link #TILES_SHARE} of the device.
     */
    private record Tiling(long items, long multiple, long whole, int depth, boolean cached) {}

    private static Tiling tiling(DeviceNode dev, DeviceKernel kernel, long globalSize, List<Arg> args, long frames) {
        long cacheBytes = dev.driver().tileCacheBytes();
        if (cacheBytes > 0) {
            Tiling t = tiling(dev, kernel, globalSize, args, frames, cacheBytes);
            if (t.items() >= Math.min(t.multiple(), globalSize)) {
                return t;
            }
            // a work-group's windows larger than the caches, or than a third of what the device leaves:
            // tiled as on a device with memory of its own, which may still fit it
        }
        return tiling(dev, kernel, globalSize, args, frames, 0);
    }

    /** The tiling that keeps tiles to {@code cacheBytes} (0: as on a device with memory of its own). */
    private static Tiling tiling(DeviceNode dev, DeviceKernel kernel, long globalSize, List<Arg> args, long frames,
                                 long cacheBytes) {
        long whole = distinctPages(args, true);
        boolean cached = cacheBytes > 0;
        int depth = cached ? AHEAD_CACHED : AHEAD;
        long budget = Math.min((long) (frames * TILES_SHARE), frames - whole) / (depth + 1);
        if (cached) {
            budget = Math.min(budget, Math.max(1, cacheBytes / PAGE_BYTES));   // a tile's windows never below one page
        }
        long items = itemsPerTile(args, globalSize, budget);
        // tiles start where plain windows can: at a page if tiles that large fit (neighbouring tiles then
        // share no page), else at the device's sub-buffer alignment. Where the device binds plain arguments
        // by frame, read windows that overlap (a stencil's halo) share pages with the running tile anyway,
        // and such a page is placed anew beside it (DETACHABLE_PINS): they need not keep to pages, and tiles
        // are as large as the budget allows (a stencil's 4104-byte rows would otherwise come 512 to a tile)
        long alignment = dev.driver().plainAlignment();
        long multiple = tileMultiple(args, kernel, PAGE_BYTES, dev.driver().bindsPlainArgumentsByFrame() ? alignment : PAGE_BYTES);
        if (items < multiple) {
            multiple = tileMultiple(args, kernel, alignment, alignment);
        }
        if (items < globalSize) {
            items = items / multiple * multiple;   // a tile never splits a work-group
        }
        return new Tiling(items, multiple, whole, depth, cached);
    }

    /**
     * Tiles hold a multiple of this many items: whole work-groups of the kernel, whole groups of
     * items that share a window ({@link KernelArg#perItems}), and, for each plain windowed argument,
     * as many items as make its window start a multiple of {@code readAlignment} bytes if the kernel
     * only reads it and its items' windows overlap, {@code writeAlignment} otherwise (so that each
     * tile's window can be passed as a pointer). Saturates at {@code Long.MAX_VALUE}.
     */
    private static long tileMultiple(List<Arg> args, DeviceKernel kernel, long writeAlignment, long readAlignment) {
        long m = Math.max(1, kernel.itemMultiple());
        for (Arg a : args) {
            if (a.arg().hasWindow()) {
                long items = a.arg().itemsPerWindow();
                // read windows that overlap share pages between tiles whatever the alignment: those may start
                // anywhere the device can begin a buffer; the others keep to pages, so tiles share none
                boolean overlapping = a.arg().itemExtent() > a.arg().itemStride();
                long alignment = a.arg().access().writes() || !overlapping ? writeAlignment : readAlignment;
                if (a.plain()) {
                    items = Math.multiplyHigh(items, alignment) != 0 ? Long.MAX_VALUE
                            : items * (alignment / gcd(a.arg().itemStride(), alignment));
                }
                m = lcm(m, items);
            }
        }
        return m;
    }

    private static long lcm(long a, long b) {
        long x = a / gcd(a, b);
        return Math.multiplyHigh(x, b) != 0 || x * b < 0 ? Long.MAX_VALUE : x * b;
    }

    private static long gcd(long a, long b) {
        while (b != 0) {
            long t = a % b;
            a = b;
            b = t;
        }
        return a;
    }

    /**
     * The whole arguments' bindings of items [from, to), each windowed argument's narrowed to the
     * bytes those items declared: where no fault handler brings in what an item reaches outside
     * its window (a host side that takes pages on its own), such an access must fail, not reach
     * whatever another tile left mapped there, which nothing pins or tracks (its stores could be
     * lost to a copy home, or land in a frame reused since).
     */
    private static List<KernelBinding> declaredWindows(List<Arg> args, List<KernelBinding> bindings, long from, long to) {
        List<KernelBinding> out = new ArrayList<>(args.size());
        for (int i = 0; i < args.size(); i++) {
            Arg a = args.get(i);
            KernelBinding b = bindings.get(i);
            if (a.arg().hasWindow()) {
                long[] w = a.arg().window(from, to);
                long lo = Math.min(w[0], b.length());
                out.add(b.window(lo, Math.max(lo, Math.min(w[1], b.length()))));
            } else {
                out.add(b);
            }
        }
        return out;
    }

    /** The bindings of one tile of a kernel with plain arguments: windows of windowed arguments, whole others. */
    private static List<KernelBinding> tileBindings(List<Arg> args, long from, long to) {
        List<KernelBinding> out = new ArrayList<>(args.size());
        for (Arg a : args) {
            out.add(a.windowBinding(from, to));
        }
        return out;
    }

    /** The first plain argument with no window that one pointer of the device cannot span, or null. */
    private static Arg longestPlain(List<Arg> args, int contiguousFrames) {
        for (Arg a : args) {
            if (a.plain() && a.pages() > contiguousFrames) {
                return a;
            }
        }
        return null;
    }

    /** The requests of items [from, to): windows of windowed arguments, and (unless {@code windowsOnly}) whole others. */
    private static List<MigrationRequest> windows(List<Arg> args, long from, long to, boolean windowsOnly) {
        List<MigrationRequest> out = new ArrayList<>(args.size());
        for (Arg a : args) {
            if (a.arg().hasWindow()) {
                MigrationRequest w = a.windowRequest(from, to);
                if (w != null) {
                    out.add(w);
                }
            } else if (!windowsOnly) {
                out.add(a.streamedRequest());
            }
        }
        return out;
    }

    private static long windowPages(List<Arg> args, long from, long to) {
        long n = 0;
        for (Arg a : args) {
            if (a.arg().hasWindow()) {
                MigrationRequest r = a.windowRequest(from, to);
                n += r == null ? 0 : r.to() - r.from();
            }
        }
        return n;
    }

    /**
     * Pages the arguments cover (those without a window only, if {@code wholeOnly}), each page once:
     * two arguments over the same pages (a read and a write of one region) need them on the device
     * once (counted per argument, a launch that fit was refused, or run by faults or tiles). Saturated:
     * 2^17 arguments of a 64 TiB region count 2^51 pages, in bytes past a long.
     */
    private static long distinctPages(List<Arg> args, boolean wholeOnly) {
        List<Arg> counted = new ArrayList<>(args.size());
        for (Arg a : args) {
            if (!wholeOnly || !a.arg().hasWindow()) {
                counted.add(a);
            }
        }
        counted.sort(Comparator.comparingInt((Arg a) -> a.state().id()).thenComparingLong(Arg::firstPage));
        long total = 0;
        RegionState region = null;
        long end = 0;   // the end of the pages counted so far in region
        for (Arg a : counted) {
            if (a.state() != region) {
                region = a.state();
                end = 0;
            }
            long n = Math.max(0, a.endPage() - Math.max(a.firstPage(), end));
            end = Math.max(end, a.endPage());
            total = n > Long.MAX_VALUE / PAGE_BYTES - total ? Long.MAX_VALUE / PAGE_BYTES : total + n;
        }
        return total;
    }

    /** The most items whose windows take at most {@code budget} pages (windows grow with items). */
    private static long itemsPerTile(List<Arg> args, long globalSize, long budget) {
        if (budget < 1 || windowPages(args, 0, 1) > budget) {
            return 0;
        }
        long lo = 1;
        long hi = globalSize;
        while (lo < hi) {
            long mid = lo + (hi - lo + 1) / 2;
            if (windowPages(args, 0, mid) <= budget) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        return lo;
    }

    /**
     * A coming tile's windows to {@code node}, unpinned: only a head start ({@link TilePrefetches}).
     * Returns the pages whose data moved, which the launch counts as its own.
     */
    private long prefetch(List<MigrationRequest> requests, int node) {
        if (requests.isEmpty()) {
            return 0;
        }
        return memory.engine().ensure(requests, node, Trigger.PREFETCH, MigrationEngine.Pinning.NO_PIN,
                MigrationEngine.FROM_ANY_NODE).pagesMigrated();
    }

    /**
     * The core's side of a device fault at {@code va}: the page's granule on {@code node}, writable
     * if {@code write}, nothing pinned. {@code counts}: faults, pages migrated and fault batches, added up.
     */
    private DeviceFaultHandler faultHandler(int node, List<Arg> args, long[] counts) {
        return (va, write) -> {
            Arg a = argAt(args, va, write);
            RegionState s = a.state();
            long page = (va - s.pageAddress(0)) >>> PAGE_SHIFT;
            if (write && s.attributes().at(page).readOnly()) {
                // protected while the kernel ran: a write fault there can never be satisfied
                throw new ProtectionException("a kernel on node " + node + " wrote offset " + (page << PAGE_SHIFT) + " of "
                        + a.arg().region() + ", which was made read-only while it ran");
            }
            FaultEvent event = new FaultEvent();
            event.begin();
            MigrationEngine.Outcome out = memory.engine().ensure(
                    List.of(new MigrationRequest(s, page, page + 1, write, a.exclusive())), node, Trigger.FAULT,
                    MigrationEngine.Pinning.NO_PIN, MigrationEngine.FROM_ANY_NODE);
            synchronized (counts) {
                counts[0] += out.faults();
                counts[1] += out.pagesMigrated();
                counts[2] += out.faults() > 0 ? 1 : 0;
            }
            countFaults(node, s, out.faults(), out.pagesMigrated(), FaultEvent.DEVICE, event, page << PAGE_SHIFT, PAGE_BYTES,
                    out.faultsByRegion());
        };
    }

    /** A pin of this thread over an argument: the launch's pages move on other threads, and would wait for it. */
    private static void refuseOwnPins(List<Arg> args) {
        for (Arg a : args) {
            Pins.Pin p = a.state().pins().heldByCurrentThread(a.firstPage(), a.endPage());
            if (p != null) {
                throw new PinnedByCallerException(a.state(), p.node(), p.from(), p.to());
            }
        }
    }

    /** No page up front: work items fault their granules in as they touch them. */
    private LaunchResult faulting(DeviceNode dev, int node, DeviceKernel kernel, long globalSize, List<Arg> args,
                                 List<KernelBinding> bindings) {
        long[] faults = new long[3];   // faults, pages migrated, fault batches
        DeviceFaultHandler handler = faultHandler(node, args, faults);
        // the fault service must not take the launch's pages home as neighbours of a host fault
        // while a work item may write them: RegionState.beginFaulting; the steals host code makes by
        // touching a page itself are taken in by the engine (StealReconciler, BUSY_STEALS_OF_FAULTING_LAUNCHES)
        List<Arg> marked = new ArrayList<>(args.size());
        long t0;
        long t1;
        try {
            for (Arg a : args) {
                if (a.state().host().takesPagesOnItsOwn()) {
                    a.state().beginFaulting(a.firstPage(), a.endPage());
                    marked.add(a);
                }
            }
            // pages host code took before the launch (its stores are in the host's copy) may still be
            // mapped on the device, and no item would fault on them: take them in first, BUSY now or
            // not (STOLEN_BEFORE_A_FAULTING_LAUNCH; the stress program lost a granule of a sweep so)
            for (Arg a : marked) {
                memory.engine().reconcile(a.state(), a.firstPage(), a.endPage());
            }
            awaitStealsUnderOtherKernels(marked);
            t0 = System.nanoTime();
            // nothing pinned for it: its items act for what this thread holds (a view kept over the launch) and
            // for the launches it runs inside (a kernel launched from a work item)
            CallerThreads.launching(() -> dev.driver().execute(kernel, 0, globalSize, bindings, handler));
            t1 = System.nanoTime();
        } finally {
            for (Arg a : marked) {
                a.state().endFaulting(a.firstPage(), a.endPage());
            }
        }
        markExclusive(node, args);   // what the faults left on the device alone
        long touched = 0;
        for (Arg a : args) {
            touched += a.pages();
        }
        synchronized (faults) {
            return new LaunchResult(touched, faults[0], faults[1], faults[1] << PAGE_SHIFT, 0, t1 - t0, faults[2]);
        }
    }

    /** How long a faulting launch waits for other kernels holding pages host code took before it ({@link #awaitStealsUnderOtherKernels}). */
    private static final long STEAL_WAIT_NANOS = 60_000_000_000L;

    /**
     * STOLEN_UNDER_ANOTHER_KERNEL: a page host code took home (a read is enough) while another
     * kernel held it pinned is not taken in by the reconcile before a faulting launch (a pinned
     * kernel's steals wait for its end), and that kernel's device entry for it may still be
     * writable: this launch's items would write the device's copy through it without a fault, and
     * the host's copy would win once that kernel ends (the launch's stores lost). So the launch
     * waits, as a pinned launch does (PIN_AFTER_STEAL), until no such page is left in its
     * arguments, taking them in as the kernels end; a kernel of this thread's own would never end.
     */
    private void awaitStealsUnderOtherKernels(List<Arg> marked) {
        long since = System.nanoTime();
        for (Arg a : marked) {
            RegionState s = a.state();
            while (s.host().stolenIn(a.firstPage(), a.endPage(), true)) {
                Pins.Pin mine = s.pins().deviceHeldByCurrentThread(a.firstPage(), a.endPage());
                if (mine != null) {
                    throw new PinnedByCallerException(s, mine.node(), mine.from(), mine.to());
                }
                if (System.nanoTime() - since > STEAL_WAIT_NANOS) {
                    throw new IllegalStateException("a page of " + a.arg().region() + " that this launch takes was taken "
                            + "home by host code while another kernel holds it; waited " + STEAL_WAIT_NANOS / 1_000_000_000L
                            + " s for that kernel to end");
                }
                long seen = s.pins().version();
                memory.engine().reconcile(s, a.firstPage(), a.endPage());   // a kernel that ended meanwhile: taken in now
                if (!s.host().stolenIn(a.firstPage(), a.endPage(), true)) {
                    break;
                }
                try {
                    s.pins().awaitRelease(seen);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new InterruptedOperationException("interrupted while waiting for a kernel holding a "
                            + "page host code took", e);
                }
            }
        }
    }

    /** After a faulting launch: the pages of {@link Access#EXCLUSIVE} arguments that the device now holds alone. */
    private void markExclusive(int node, List<Arg> args) {
        for (Arg a : args) {
            if (a.exclusive()) {
                memory.engine().markExclusive(a.state(), a.firstPage(), a.endPage(), node);
            }
        }
    }

    /** The argument a faulting access belongs to. */
    private static Arg argAt(List<Arg> args, long va, boolean write) {
        for (Arg a : args) {
            long base = a.state().pageAddress(0) + a.arg().offset();
            if (va >= base && va < base + a.arg().length() && (!write || a.arg().access().writes())) {
                return a;
            }
        }
        throw new dev.hetmem.driver.DeviceFaultException("device fault at 0x" + Long.toHexString(va) + (write ? " (write)" : " (read)")
                + " outside every argument of the launch" + (write ? " that may be written" : ""));
    }

    /**
     * Counts the faults, the memory's all together and each region's in its own counters (by
     * {@code byRegion}); the event gets {@code region} and the byte range [offset, offset + length)
     * they were taken for (a launch's event names its first argument's).
     */
    private void countFaults(int node, RegionState region, long faults, long migrated, String path, FaultEvent event,
                             long offset, long length, Map<RegionState, Long> byRegion) {
        if (faults <= 0) {
            return;
        }
        memory.counters().fault(node, faults);
        for (Map.Entry<RegionState, Long> e : byRegion.entrySet()) {
            e.getKey().counters().fault(node, e.getValue());
        }
        if (event.shouldCommit()) {
            event.path = path;
            event.node = node;
            event.region = region.id();
            event.offset = offset;
            event.length = length;
            event.faults = faults;
            event.pagesMigrated = migrated;
            event.commit();
        }
    }
}
