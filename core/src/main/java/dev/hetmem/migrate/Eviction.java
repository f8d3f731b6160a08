package dev.hetmem.migrate;

import dev.hetmem.Trigger;
import dev.hetmem.driver.DeviceMemoryException;
import dev.hetmem.internal.CallerThreads;
import dev.hetmem.internal.Pins;
import dev.hetmem.internal.RegionState;
import dev.hetmem.internal.ResidencyRegistry;
import dev.hetmem.pagetable.Bits;
import dev.hetmem.pagetable.Block;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.locks.LockSupport;

import static dev.hetmem.driver.PageGeometry.bytes;
import static dev.hetmem.driver.PageGeometry.firstPage;

/**
 * Making room on a full device (GMEM's host DRAM as the device's swap): the coldest blocks' pages
 * go home in one batch per block, read-only copies and zeros nobody wrote are simply dropped.
 *
 * <p>The retry protocol. The thread that needs room holds its own batch's block locks, so it may
 * only {@code tryLock} victims, and never waits here. When nothing could be freed although room
 * will come without it (frames in flight in other batches, victims locked by other threads or
 * pinned by running kernels, or the allocator changed while it looked), it throws
 * {@link RetryBatch}: the caller undoes its batch, lets go of every lock, pauses briefly and starts
 * over, up to {@link #ROOM_DEADLINE_NANOS}. When the batch cannot fit even with every page it does
 * not need gone, it fails at once.
 *
 * <p>Victims, in order: blocks of other calls, coldest first; then the caller's own blocks' pages
 * that it did not ask for and that its batch does not move (a launch's granules larger than what
 * it touches), never a page the call needs.
 */
final class Eviction {
    /** Evict at least this much at once: one batch per eviction, not one per page. */
    static final int EVICT_MIN_PAGES = 1024;
    /** How long an operation keeps retrying for room on a device whose frames are all pinned or busy. */
    static final long ROOM_DEADLINE_NANOS = 60_000_000_000L;

    private final EngineContext ctx;
    private final BatchRunner runner;
    private final Compaction compaction;

    Eviction(EngineContext ctx, BatchRunner runner) {
        this.ctx = ctx;
        this.runner = runner;
        this.compaction = new Compaction(ctx, runner);
    }

    /** Room for a plain argument's run on a fragmented device without sending pages home. */
    Compaction compaction() {
        return compaction;
    }

    /**
     * Thrown from the allocate phase when the device can only make room after other threads move
     * on; the engine undoes, unlocks, waits briefly ({@link #pauseBeforeRetry}) and starts over.
     */
    static final class RetryBatch extends RuntimeException {
        /** Pages batches of the same call committed before this one had to wait (page-by-page migration). */
        private long committedBefore;

        RetryBatch() {
            super(null, null, false, false);
        }

        /** This exception, carrying the pages earlier batches of the call moved: they stay moved, and count. */
        RetryBatch afterCommitting(long pages) {
            committedBefore += pages;
            return this;
        }

        long committedBefore() {
            return committedBefore;
        }
    }

    /**
     * The allocate phase found no room and none will come (nothing left to evict, nothing in flight):
     * a {@link DeviceMemoryException} the engine can tell from a driver's refusal or a lost device.
     * A batch that held frames it could have let go first ({@link Action#RELOCATE}'s old frames) is
     * planned again without them; any other reaches the caller as it is.
     */
    static class DeviceFull extends DeviceMemoryException {
        DeviceFull(String message) {
            super(message);
        }
    }

    /**
     * Frees at least {@code pages} frames of {@code node} (or {@link #EVICT_MIN_PAGES}) for
     * {@code batch}, whose block locks this thread holds. Returns whether anything was freed; false
     * when nothing could be and nothing will come; throws {@link RetryBatch} when room will come
     * once this thread lets go. {@code epoch}: the allocator's change count when its last attempt failed.
     */
    boolean makeRoom(int node, int pages, MigrationBatch batch, long epoch) {
        Set<Block> mine = Collections.newSetFromMap(new IdentityHashMap<>());
        for (Run r : batch.runs) {
            mine.add(r.block);
        }
        long want = Math.max(pages, EVICT_MIN_PAGES);
        long freed = 0;
        long mineInFlight = batch.reserved();
        // read before looking at the residents: a frame another batch holds is either still counted
        // here, or (it committed) already resident and so among the candidates below
        boolean blocked = ctx.inFlight.get(node) > mineInFlight;
        // VICTIMS_SHARE_ONE_SHOOTDOWN: the copies dropped from every victim are invalidated together,
        // once, at the end, and each victim stays locked until then (so no other thread sees its page
        // table before the device's translations of the dropped pages are gone, as with one victim).
        // An invalidation waits for the work items of a faulting launch that may hold translations of
        // the range; one per victim made a tiled launch's prefetch wait for a running item once per
        // 2 MiB block it evicted (bench oversub, one_launch_windows: 8 waits of about 0.4 ms per 16 MiB
        // tile, more than the tile's kernel took)
        Invalidations dropped = new Invalidations(ctx.nodeCount());
        List<Block> victims = new ArrayList<>();
        try {
            for (ResidencyRegistry.Resident v : ctx.residency.coldestFirst(node)) {
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
                victims.add(v.block());   // unlocked after the shared invalidation, below
                long moved = evictVictim(v.region(), v.block(), node, dropped);
                if (moved > 0) {
                    freed += moved;
                } else if (v.block().hasPagesOn(node)) {
                    blocked = true;   // its pages are pinned by a running kernel
                }
                if (!dropped.pending()) {
                    // nothing of these victims waits for the invalidation (none dropped, or a batch home
                    // flushed it): they need not stay locked, and a full device of pinned pages would
                    // otherwise have every block it scanned held until the end
                    unlockAll(victims);
                }
            }
            dropped.flush(ctx);
        } catch (RuntimeException | Error e) {
            dropped.flushAfterFailure(ctx, e);
            throw e;
        } finally {
            unlockAll(victims);
        }
        Needed needed = batch.runs.getFirst().needed;
        if (freed == 0 && needed != null) {
            // only the caller's own blocks hold the device: their pages that nobody asked for and
            // that the batch does not move may go home to make room
            OwnBlockCounts got = new OwnBlockCounts();
            needed.forEachBlock((region, b) -> {
                if (b.hasPagesOn(node)) {
                    got.moved += evictUnneeded(region, b, node, batch, needed, got, Math.max(0, pages - got.moved));
                }
            });
            freed += got.moved;
            blocked |= got.heldByKernels > 0;   // those kernels end, and their pages can go then
            if (freed == 0 && ctx.device(node).allocator().totalFrames() - got.neededHere - mineInFlight
                    < batch.stillToAllocate()) {
                return false;   // cannot fit even with every other page gone: no waiting helps
            }
        }
        if (freed > 0) {
            return true;
        }
        blocked |= ctx.inFlight.get(node) > mineInFlight;   // frames that left residency while we looked
        if (ctx.device(node).allocator().changes() != epoch) {
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

    /** Unlocks the victims {@link #makeRoom} holds and forgets them. */
    private static void unlockAll(List<Block> victims) {
        for (Block b : victims) {
            b.lock.unlock();
        }
        victims.clear();
    }

    /** What eviction of the caller's own blocks found: pages moved, pages kernels hold, pages the call needs. */
    private static final class OwnBlockCounts {
        long moved;
        long heldByKernels;
        long neededHere;
    }

    /**
     * Pauses before a retry for room, or throws once the operation that started at {@code started}
     * has waited {@link #ROOM_DEADLINE_NANOS}, or at once when the calling thread is interrupted.
     */
    static long pauseBeforeRetry(long started, int target) {
        if (Thread.currentThread().isInterrupted()) {
            // parkNanos returns at once while the flag is set: without this the retries would spin
            // to the deadline. Nothing of the batch is left (it was undone before the pause); the
            // flag stays set for the caller, as awaitRelease leaves it.
            throw new dev.hetmem.InterruptedOperationException("interrupted while waiting for room on device node " + target, null);
        }
        if (System.nanoTime() - started > ROOM_DEADLINE_NANOS) {
            throw new DeviceMemoryException("device node " + target + " has had no frame to spare for "
                    + ROOM_DEADLINE_NANOS / 1_000_000_000L + " s: all of its memory is pinned by running kernels or "
                    + "in use by other migrations");
        }
        // a random pause, so that two batches that each wait for the other's frames do not retry in step
        LockSupport.parkNanos(500_000 + ThreadLocalRandom.current().nextLong(1_500_000));
        return started;
    }

    /** Where a full device's frames are, for the out-of-memory message: the numbers a user needs. */
    String whoHolds(int node, MigrationBatch batch) {
        long mine = 0;
        long locked = 0;
        long other = 0;
        for (ResidencyRegistry.Resident v : ctx.residency.coldestFirst(node)) {
            int n = v.block().residentCount(node);
            if (v.block().lock.isHeldByCurrentThread()) {
                mine += n;
            } else if (v.block().lock.isLocked()) {
                locked += n;
            } else {
                other += n;
            }
        }
        long reserved = batch.reserved();
        return "pages held: " + mine + " of the blocks this call uses, " + locked + " of blocks other calls hold, "
                + other + " elsewhere; frames in flight: " + reserved + " of this batch, "
                + (ctx.inFlight.get(node) - reserved) + " of others";
    }

    /**
     * Moves home the pages of a block of the current batch that are on {@code node}, unpinned,
     * not asked for and not part of any of the batch's runs (block locked by this thread), at most
     * {@code budget} of them; counts the rest in {@code counts}.
     */
    private long evictUnneeded(RegionState region, Block b, int node, MigrationBatch batch, Needed needed,
                               OwnBlockCounts counts, long budget) {
        int pages = region.table().pagesIn(b.index());
        long base = firstPage(b.index());
        Invalidations dropped = new Invalidations(ctx.nodeCount());
        try {
            return evictUnneeded(region, b, node, batch, needed, counts, budget, pages, base, dropped);
        } catch (RuntimeException | Error e) {
            dropped.flushAfterFailure(ctx, e);
            throw e;
        }
    }

    private long evictUnneeded(RegionState region, Block b, int node, MigrationBatch batch, Needed needed,
                               OwnBlockCounts counts, long budget, int pages, long base, Invalidations dropped) {
        boolean[] keep = new boolean[pages];
        for (Run r : batch.runs) {
            if (r.block == b) {
                Arrays.fill(keep, r.first, r.first + r.count, true);
            }
        }
        List<Run> runs = new ArrayList<>();
        long droppedPages = 0;
        int p = 0;
        while (p < pages) {
            if (!b.isResident(node, p)) {
                p++;
                continue;
            }
            if (keep[p] || needed.needed(region, base + p)) {
                counts.neededHere++;   // the call needs it where it is
                p++;
                continue;
            }
            int holders = b.residentMask(p);
            Pins.Pin pin = pinKeeping(region, holders, node, base + p);
            if (pin != null) {
                if (!CallerThreads.isCallers(pin)) {
                    counts.heldByKernels++;   // another thread's kernel or view: it ends, and the page can go then
                }
                p++;
                continue;
            }
            if (droppedPages + MigrationBatch.pages(runs) >= budget) {
                p++;   // enough room made; the rest is only counted
                continue;
            }
            boolean zero = b.isZero(p);
            int q = p + 1;
            while (q < pages && !keep[q] && b.isResident(node, q) && b.residentMask(q) == holders && b.isZero(q) == zero
                    && !needed.needed(region, base + q) && pinKeeping(region, holders, node, base + q) == null) {
                q++;
            }
            if (holders != 1 << node || zero) {
                // another node holds a copy (or they are zeros nobody wrote): this device's copy just goes
                droppedPages += dropCopy(region, b, node, p, q, dropped);
            } else {
                runs.add(new Run(region, b, p, q - p, Action.MOVE, holders, node));
            }
            p = q;
        }
        return finish(region, node, dropped, droppedPages, runs, false);
    }

    /**
     * Moves one victim block's pages on {@code node} home in one batch, but those a pin needs there
     * ({@link #pinKeeping}); returns how many left the device. The copies it only drops join
     * {@code dropped}, which the caller invalidates with the other victims' (the block stays locked
     * until then); a batch home flushes them first, as any eviction does. Page by page only where a
     * pin touches the block: decided by run, one pinned page kept its whole run (up to the block),
     * and a host view kept the device's read-only duplicates it does not read, so a full device of
     * such pages waited for the views (the caller's own too) for a minute and then failed.
     */
    private long evictVictim(RegionState region, Block b, int node, Invalidations dropped) {
        assert b.lock.isHeldByCurrentThread();
        if (!b.hasPagesOn(node)) {
            return 0;
        }
        long first = firstPage(b.index());
        int pages = region.table().pagesIn(b.index());
        boolean pinned = region.pins().any(first, first + pages) != null;
        return evict(region, b, node, 0, pages, pinned, dropped, true);
    }

    /**
     * As eviction does, sends pages [p0, p1) of a block (locked by this thread) away from
     * {@code node}: home, or just dropped where another node holds a copy (or they are zeros nobody
     * wrote). A page stays only where a pin needs this device's copy ({@link #pinKeeping}: a host
     * view of a page the host holds too does not). {@link Placement} clears a plain argument's
     * misplaced pages so. Returns how many left the device.
     */
    long evictRange(RegionState region, Block b, int node, int p0, int p1) {
        assert b.lock.isHeldByCurrentThread();
        if (!b.hasPagesOn(node)) {
            return 0;
        }
        Invalidations dropped = new Invalidations(ctx.nodeCount());
        try {
            return evict(region, b, node, p0, p1, true, dropped, false);
        } catch (RuntimeException | Error e) {
            dropped.flushAfterFailure(ctx, e);
            throw e;
        }
    }

    /**
     * Release's first step, on a block this thread has locked: {@code node}'s copies of pages another
     * node holds too (read duplication) are dropped, as eviction drops them, but for those a kernel of
     * {@code node} pins. A move home (release's second step) planned nothing for a page the host
     * holds too, and took a page other devices hold too away from them as well, waiting for their
     * kernels. Not counted as an eviction. Returns the copies dropped.
     */
    long dropShared(RegionState region, Block b, int node) {
        return dropShared(region, b, node, 0, Long.MAX_VALUE);
    }

    /** As {@link #dropShared(RegionState, Block, int)}, for the block's pages within region pages [from, to) only. */
    long dropShared(RegionState region, Block b, int node, long from, long to) {
        assert b.lock.isHeldByCurrentThread();
        if (!b.hasPagesOn(node)) {
            return 0;
        }
        Invalidations dropped = new Invalidations(ctx.nodeCount());
        try {
            long base = firstPage(b.index());
            int pages = region.table().pagesIn(b.index());
            // the pins of node for every page of the block, from one pass over the pins (as evict reads them)
            long[] pinned = region.pins().pinnedMasksOf(base, pages, node);
            long n = 0;
            int p = (int) Math.clamp(from - base, 0, pages);
            pages = (int) Math.clamp(to - base, 0, pages);
            while (p < pages) {
                int holders = b.residentMask(p);
                if (!b.isResident(node, p) || holders == 1 << node || keeps(pinned, holders, node, p)) {
                    p++;
                    continue;
                }
                int q = p + 1;
                while (q < pages && b.residentMask(q) == holders && !keeps(pinned, holders, node, q)) {
                    q++;
                }
                n += dropCopy(region, b, node, p, q, dropped);
                p = q;
            }
            dropped.flush(ctx);
            return n;
        } catch (RuntimeException | Error e) {
            dropped.flushAfterFailure(ctx, e);
            throw e;
        }
    }

    /**
     * Pages [p0, pages) of a block on {@code node} away from it. {@code pageByPage}: each page's
     * own pins decide ({@link #pinKeeping}); otherwise a run stays whole if any pin covers it.
     * {@code deferFlush}: the caller invalidates {@code dropped} (unless a batch home flushes it first).
     */
    private long evict(RegionState region, Block b, int node, int p0, int pages, boolean pageByPage, Invalidations dropped,
                       boolean deferFlush) {
        List<Run> runs = new ArrayList<>();
        long droppedPages = 0;
        long base = firstPage(b.index());
        // pinKeeping for every page of the block, from one pass over the pins
        long[] pinned = pageByPage ? region.pins().pinnedMasksOf(base, region.table().pagesIn(b.index()), node) : null;
        int p = p0;
        while (p < pages) {
            int holders = b.residentMask(p);
            if (!b.isResident(node, p) || (pageByPage && keeps(pinned, holders, node, p))) {
                p++;
                continue;
            }
            int q = p + 1;
            while (q < pages && b.isResident(node, q) && b.residentMask(q) == holders && b.isZero(q) == b.isZero(p)
                    && (!pageByPage || !keeps(pinned, holders, node, q))) {
                q++;
            }
            // pages a running kernel uses stay
            if (pageByPage || region.pins().any(base + p, base + q) == null) {
                if (holders != 1 << node || b.isZero(p)) {   // the run is all zeros or none
                    // another node holds a copy (read duplication: the host, or another device, whose
                    // copy a move home would have taken too), or zeros nobody wrote, which read as zeros
                    // again: the device's copy just goes
                    droppedPages += dropCopy(region, b, node, p, q, dropped);
                } else {
                    runs.add(new Run(region, b, p, q - p, Action.MOVE, holders, node));
                }
            }
            p = q;
        }
        return finish(region, node, dropped, droppedPages, runs, deferFlush);
    }

    /**
     * Ends the eviction of one block: one invalidation per device for the copies dropped (left to
     * the caller where {@code deferFlush}, unless a batch home follows), one batch home for the
     * rest, one eviction counted. Returns the pages that left the device.
     */
    private long finish(RegionState region, int node, Invalidations dropped, long droppedPages, List<Run> runs,
                        boolean deferFlush) {
        if (!deferFlush || !runs.isEmpty()) {
            dropped.flush(ctx);
        }
        if (!runs.isEmpty()) {
            runner.run(new MigrationBatch(runs, 0, Trigger.EVICTION, "batched"));
        }
        long moved = droppedPages + MigrationBatch.pages(runs);
        if (moved > 0) {
            region.counters().evicted(node);
            ctx.memoryCounters.evicted(node);
        }
        return moved;
    }

    /**
     * A pin that keeps {@code node}'s copy of a page in place. Where it holds the page alone (the
     * copy goes home), any pin. Where another node holds a copy too (the host, or another device:
     * copies of a page held twice are read-only and alike, and this one is only dropped), only a
     * pin of {@code node} itself: a host view reads the host's copy, and a kernel of another device
     * its own device's copy or the host's in place, never this device's frames. It was any device
     * pin where the host held a copy, and any pin at all where only devices did: a kernel on one
     * device kept another device's read-only duplicates from being evicted, and a full device of
     * them waited for that kernel, a minute and then "all of its memory is pinned".
     */
    static Pins.Pin pinKeeping(RegionState region, int holders, int node, long page) {
        return holders == 1 << node ? region.pins().any(page, page + 1) : region.pins().on(node, page, page + 1);
    }

    /** {@link #pinKeeping} for page {@code p} of a block, from its {@link Pins#pinnedMasksOf} for {@code node}. */
    private static boolean keeps(long[] pinned, int holders, int node, int p) {
        return Bits.get(pinned, (holders == 1 << node ? 0 : 512) + p);
    }

    /**
     * Takes pages of [p0, p1) of a block (locked by this thread) off {@code node}'s page table
     * although running kernels hold them, where that is allowed (DETACHABLE_PINS in {@link Pins}):
     * every pin of {@code node} on the page bound its frame at launch and only reads it, no pin
     * writes it, and another node holds a copy to place anew from. The frames stay allocated,
     * counted in flight and kept ({@link KeptFrames}) until the last pin that bound them goes; the
     * kernels go on reading them. A write from another node waits for those pins; a write on this
     * node by another kernel races the running ones (nothing orders kernels that run at once): it
     * reaches the page's new frame, and they keep reading the bytes from before it. Returns how many
     * pages left the page table.
     */
    long detachFromRunningKernels(RegionState region, Block b, int node, int p0, int p1) {
        assert b.lock.isHeldByCurrentThread();
        long base = firstPage(b.index());
        Invalidations dropped = new Invalidations(ctx.nodeCount());
        List<Kept> kept = new ArrayList<>(1);
        long moved = 0;
        try {
            int p = p0;
            while (p < p1) {
                if (!detachable(region, b, node, base, p)) {
                    p++;
                    continue;
                }
                int q = p + 1;
                while (q < p1 && b.residentMask(q) == b.residentMask(p) && detachable(region, b, node, base, q)) {
                    q++;
                }
                kept.add(takeOff(region, b, node, p, q, dropped));
                moved += q - p;
                p = q;
            }
            dropped.flush(ctx);
        } catch (RuntimeException | Error e) {
            // the device may still use the frames of what was taken off: neither kept nor freed, and verify() reports them
            for (Kept k : kept) {
                ctx.kept.release(node, k.frames);
                k.frees.abandon();
            }
            dropped.flushAfterFailure(ctx, e);
            throw e;
        }
        // after the invalidation, as for any frame that leaves the page table: from here only the kernels that
        // bound these frames use them. Each run is registered even if an earlier one's release fails at once
        List<Runnable> registrations = new ArrayList<>(kept.size());
        for (Kept k : kept) {
            Runnable release = () -> {
                ctx.kept.release(node, k.frames);   // before the frames go back: a frame is never free and kept
                k.frees.flush(region, true);
            };
            registrations.add(() -> region.pins().afterRelease(k.firstPage, k.firstPage + k.frames.length, node, k.frames,
                    release));
        }
        Pins.run(registrations);
        return moved;
    }

    /** Frames that left the page table while kernels read them: {@code frees} frees them. */
    private record Kept(long firstPage, int[] frames, FrameReleases frees) {}

    private static boolean detachable(RegionState region, Block b, int node, long base, int p) {
        return b.isResident(node, p) && b.residentMask(p) != 1 << node && region.pins().detachable(base + p, node);
    }

    /** One run of {@link #detachFromRunningKernels}: off the page table, its frames kept and counted in flight. */
    private Kept takeOff(RegionState region, Block b, int node, int p, int q, Invalidations inv) {
        long first = firstPage(b.index()) + p;
        long va = region.pageAddress(first);
        int[] old = new int[q - p];
        for (int i = p; i < q; i++) {
            old[i - p] = b.frame(node, i);
        }
        FrameReleases frees = new FrameReleases(ctx);
        frees.add(node, old, first);   // in flight until freed: a thread short of room waits for them
        boolean keptHere = false;
        try {
            ctx.kept.keep(node, old);
            keptHere = true;
            ctx.driver(node).unmap(va, q - p);
            inv.add(node, va, bytes(q - p));
            b.removeResidentRange(node, p, q - p);
            ctx.syncHost(region, b, p, q);
        } catch (RuntimeException | Error e) {
            if (keptHere) {
                ctx.kept.release(node, old);
            }
            frees.abandon();
            throw e;
        }
        return new Kept(first, old, frees);
    }

    /**
     * Removes the read-only copy of pages [p, q) of a block from a device: another node still holds
     * them, or they are zeros nobody wrote (then they become untouched).
     */
    private long dropCopy(RegionState region, Block b, int node, int p, int q, Invalidations inv) {
        long va = region.pageAddress(firstPage(b.index()) + p);
        int[] old = new int[q - p];
        for (int i = p; i < q; i++) {
            old[i - p] = b.frame(node, i);
        }
        ctx.driver(node).unmap(va, q - p);
        inv.add(node, va, bytes(q - p));
        FrameReleases frees = new FrameReleases(ctx);
        frees.add(node, old, firstPage(b.index()) + p);   // counted in flight before they leave residency
        try {
            b.removeResidentRange(node, p, q - p);
            ctx.syncHost(region, b, p, q);
        } catch (RuntimeException | Error e) {
            frees.abandon();
            throw e;
        }
        inv.freeAfter(region, frees, true);   // freed once the device's invalidation returns
        return q - p;
    }
}
