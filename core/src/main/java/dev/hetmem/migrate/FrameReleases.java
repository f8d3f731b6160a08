package dev.hetmem.migrate;

import dev.hetmem.internal.RegionState;
import dev.hetmem.phys.BuddyAllocator;

import java.util.ArrayList;
import java.util.List;

/**
 * Device frames of one locked block that leave residency and go back to the allocator only once
 * the host side stops naming them: the rule FREED_FRAMES_AFTER_MIRROR.
 *
 * <p>FREED_FRAMES_AFTER_MIRROR. The userfaultfd fault service copies a page that is away home from
 * the device frame its state word names, at any moment, without any Java lock. Commit once freed a
 * move's source frames first and repointed the state words after. With two devices that left a
 * window in which a page moving from device 1 to device 2 still named its old device 1 frame
 * although that frame was back in the allocator; a second migration on another block (its own
 * block locks, so not excluded) allocated the frame and copied other data into it; a plain load or
 * store of the first page in that window faulted, the service copied the other data home and
 * marked the page STOLEN; the engine then took the stolen page as the host's truth, and the bytes
 * its owner had stored were gone. The rule: the page table changes, then the host side is synced
 * ({@link EngineContext#syncHost}), then the frames go back. A state word never names a frame the
 * allocator can hand out. {@link #flush} asserts it (with assertions on) for every frame it frees.
 *
 * <p>Frames here are counted in flight from before they leave residency until they are free, so
 * a thread looking for room meanwhile waits for them instead of deciding the device is full.
 */
final class FrameReleases {
    private record Pending(int node, int[] frames, long firstPage) {}

    private final EngineContext ctx;
    private final List<Pending> pending = new ArrayList<>(2);
    private int pendingFrames;

    FrameReleases(EngineContext ctx) {
        this.ctx = ctx;
    }

    /** Call before the frames leave residency. */
    void add(int node, int[] frames, long firstPage) {
        ctx.inFlight.add(node, frames.length);
        pending.add(new Pending(node, frames, firstPage));
        pendingFrames += frames.length;
    }

    /** Frees them; {@code hostInLine} is false only for a killed region (its host side reads no frame). */
    void flush(RegionState region, boolean hostInLine) {
        flush(region, hostInLine, null);
    }

    /**
     * Frees them, except those of nodes marked in {@code keep} (a device whose invalidation failed may
     * still use them: they stay allocated, uncounted, and verify() reports them). Each node's frames
     * go back under one hold of its allocator's lock: a commit of thousands of scattered pages gives
     * them back at once, not one lock a page.
     */
    void flush(RegionState region, boolean hostInLine, boolean[] keep) {
        Throwable first = null;
        for (int node = 0; node < ctx.nodeCount() && !pending.isEmpty(); node++) {
            int total = 0;
            for (Pending f : pending) {
                if (f.node == node) {
                    total += f.frames.length;
                }
            }
            if (total == 0) {
                continue;
            }
            try {
                if (keep == null || !keep[node]) {
                    int[] all = new int[total];
                    int k = 0;
                    for (Pending f : pending) {
                        if (f.node == node) {
                            assert !hostInLine || region.host().namesNone(ctx.driver(node), f.frames, f.frames.length, f.firstPage)
                                    : region + ": freeing a device frame that the host side of pages from " + f.firstPage
                                    + " still names";
                            System.arraycopy(f.frames, 0, all, k, f.frames.length);
                            k += f.frames.length;
                        }
                    }
                    ctx.device(node).allocator().freeAll(all, total);
                }
            } catch (Throwable e) {
                // every node's frames are still uncounted (below): a count left behind would make
                // eviction wait for frames that never come back
                if (first == null) {
                    first = e;
                } else if (first != e) {
                    first.addSuppressed(e);
                }
            } finally {
                ctx.inFlight.add(node, -total);
            }
        }
        pending.clear();
        pendingFrames = 0;
        if (first instanceof RuntimeException re) {
            throw re;
        }
        if (first instanceof Error err) {
            throw err;
        }
    }

    /** Frames added and not yet freed or abandoned. */
    int pendingFrames() {
        return pendingFrames;
    }

    /** How many additions this holds: what {@link #abandonFrom} goes back to. */
    int mark() {
        return pending.size();
    }

    /**
     * Abandons the frames added since {@code mark} (as {@link #abandon} does), keeping the earlier
     * ones for {@link #flush}: a commit whose host sync failed for one run still frees those of the
     * runs synced before it.
     */
    void abandonFrom(int mark) {
        while (pending.size() > mark) {
            Pending f = pending.removeLast();
            ctx.inFlight.add(f.node, -f.frames.length);
            pendingFrames -= f.frames.length;
        }
    }

    /**
     * The host side could not be brought in line (a failed userfaultfd call): the frames stay
     * allocated rather than risk the fault service copying from a reused one; verify() reports them.
     */
    void abandon() {
        for (Pending f : pending) {
            ctx.inFlight.add(f.node, -f.frames.length);
        }
        pending.clear();
        pendingFrames = 0;
    }

    /**
     * Gives frames back to the allocator, one stretch at a time; a stretch it refuses (freed twice)
     * does not keep the later ones from going back: the first refusal is thrown after.
     */
    static void free(BuddyAllocator alloc, int[] frames, int count) {
        alloc.freeAll(frames, count);
    }
}
