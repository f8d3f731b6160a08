package dev.hetmem.internal;

import dev.hetmem.pagetable.Bits;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * The pages of one region that must stay where they are for now: those under an open host view
 * (pinned on the host) and those used by a running kernel (pinned on its device). A migration that
 * would take a pinned page away from its node waits until the pin is released.
 *
 * <p>Few pins are open at once (one per view or kernel argument), so a list is scanned.
 * This object's monitor is a leaf lock. Waiting for a release uses a version number read while
 * the block locks are still held, so a release between the conflict and the wait is never missed.
 *
 * <p>DETACHABLE_PINS. A kernel that reaches a read-only plain argument through frames it bound
 * at its launch ({@link #allowDetach}) does not need the page table to keep naming those frames,
 * only the frames to stay allocated and unchanged until it ends. Such a page may then be placed
 * elsewhere on the same device for another launch (the next tile of a stencil, whose window
 * shares the running tile's halo pages) while its old frame is kept: {@link #detachable} says
 * whether every pin on the page allows it, and {@link #afterRelease} registers the old frame's
 * release to run once every pin that bound that frame has gone ({@link #remove} returns it, the
 * caller runs it outside this monitor). No pin that writes may be on the page (the two frames
 * would then differ), and a pin is marked only after its owner bound its frames, so no launch
 * reads the page table for a page that was detached under it.
 */
public final class Pins {

    /**
     * Pages [from, to) kept on {@code node}; {@code owner} is the thread that holds the pin, and
     * {@code number} orders the pins that thread took ({@link CallerThreads}).
     */
    public record Pin(int node, long from, long to, boolean write, Thread owner, long number) {}

    /** Lock L3 (pin) is an entry here; this object's monitor is L8 (pins): docs/design.md, lock table, L3, L8. */
    private final List<Pin> pins = new ArrayList<>();
    /**
     * Pins whose owner bound its frames (DETACHABLE_PINS), with those frames and what waits for the
     * pin; by identity, as pins are records.
     */
    private final Map<Pin, Bound> detachable = new IdentityHashMap<>();
    private long version;
    /**
     * How many pins are open, written under this monitor after each change: the questions a
     * migration's plan asks for every run it makes answer "none" from it without taking the
     * monitor (two batches planning side by side in one region contended for it page by page).
     */
    private volatile int open;

    /** What a detachable pin's owner bound (page {@code from + i} in frame {@code firstFrame + i}), and what waits for it. */
    private static final class Bound {
        final long firstFrame;
        final List<AfterRelease> waiting = new ArrayList<>(1);

        Bound(long firstFrame) {
            this.firstFrame = firstFrame;
        }
    }

    /** A release that waits for several pins: it runs when the last of them goes. */
    private static final class AfterRelease {
        private int pinsLeft;
        private final Runnable action;

        AfterRelease(int pins, Runnable action) {
            this.pinsLeft = pins;
            this.action = action;
        }
    }

    public synchronized Pin add(int node, long from, long to, boolean write) {
        Pin p = new Pin(node, from, to, write, Thread.currentThread(), CallerThreads.nextPinNumber());
        pins.add(p);
        open = pins.size();
        return p;
    }

    /**
     * Releases {@code p} (this very pin, by identity) and returns what waited for it and for no
     * other pin ({@link #afterRelease}), for the caller to {@link #run}
     * once it has left every lock it holds; an empty list if nothing did.
     *
     * @throws IllegalStateException if {@code p} is not open (released twice): nothing changes then
     */
    public List<Runnable> remove(Pin p) {
        List<Runnable> run = List.of();
        synchronized (this) {
            int i = 0;
            while (i < pins.size() && pins.get(i) != p) {
                i++;
            }
            if (i == pins.size()) {
                throw new IllegalStateException("pin released twice: " + p);
            }
            pins.remove(i);
            open = pins.size();
            Bound bound = detachable.remove(p);
            if (bound != null) {
                for (AfterRelease a : bound.waiting) {
                    if (--a.pinsLeft == 0) {
                        if (run.isEmpty()) {
                            run = new ArrayList<>(2);
                        }
                        run.add(a.action);
                    }
                }
            }
            version++;
            notifyAll();
        }
        return run;
    }

    /** Runs every action (each frees what only it frees), then throws the first failure, if any. */
    public static void run(List<Runnable> actions) {
        Throwable first = null;
        for (Runnable r : actions) {
            try {
                r.run();
            } catch (RuntimeException | Error e) {
                first = first == null ? e : first;
            }
        }
        if (first instanceof RuntimeException e) {
            throw e;
        }
        if (first != null) {
            throw (Error) first;
        }
    }

    /**
     * Marks {@code p} (a read-only device pin) as one whose owner reaches its pages only through
     * frames it has already bound (DETACHABLE_PINS): page {@code p.from() + i} in frame
     * {@code firstFrame + i}.
     *
     * @throws IllegalArgumentException if {@code p} writes or is a host pin
     * @throws IllegalStateException if {@code p} is not open
     */
    public synchronized void allowDetach(Pin p, long firstFrame) {
        if (p.write || p.node == 0) {
            throw new IllegalArgumentException("only a read-only device pin can let its pages be placed elsewhere: " + p);
        }
        boolean isOpen = false;
        for (Pin q : pins) {
            isOpen |= q == p;
        }
        if (!isOpen) {
            throw new IllegalStateException("pin not open: " + p);
        }
        detachable.putIfAbsent(p, new Bound(firstFrame));
    }

    /**
     * Whether page {@code page}'s frame on {@code node} may leave the page table while pins keep
     * it (DETACHABLE_PINS): at least one pin of {@code node} holds it, every one of them is
     * detachable, and no pin on any node writes it.
     */
    public synchronized boolean detachable(long page, int node) {
        boolean held = false;
        for (Pin p : pins) {
            if (p.from <= page && page < p.to) {
                if (p.write) {
                    return false;
                }
                if (p.node == node) {
                    if (!detachable.containsKey(p)) {
                        return false;
                    }
                    held = true;
                }
            }
        }
        return held;
    }

    /**
     * Runs {@code action} once every pin of {@code node} that bound one of {@code frames} (page
     * {@code from + i} in {@code frames[i]}) has been released; at once (on this thread) if none
     * did. A pin that holds the pages in other frames (it was taken after an earlier detach) does
     * not hold these back. The caller found each page {@link #detachable} under its block lock.
     */
    public void afterRelease(long from, long to, int node, int[] frames, Runnable action) {
        synchronized (this) {
            List<Bound> holding = new ArrayList<>(2);
            for (Pin p : pins) {
                if (p.node == node && p.from < to && from < p.to) {
                    Bound b = detachable.get(p);
                    if (b == null) {
                        throw new IllegalStateException("pages [" + from + ", " + to + ") are held by a pin that did not "
                                + "allow them to be placed elsewhere: " + p);
                    }
                    for (long q = Math.max(from, p.from); q < Math.min(to, p.to); q++) {
                        if (b.firstFrame + (q - p.from) == frames[(int) (q - from)]) {
                            holding.add(b);
                            break;
                        }
                    }
                }
            }
            if (!holding.isEmpty()) {
                AfterRelease a = new AfterRelease(holding.size(), action);
                for (Bound b : holding) {
                    b.waiting.add(a);
                }
                return;
            }
        }
        action.run();
    }

    /**
     * The first pin that keeps a page of [from, to) on a node other than {@code exceptNode}, or
     * null. Pages stay where they are for such a pin.
     */
    public Pin conflict(long from, long to, int exceptNode) {
        // no test made while nothing is open: a migration asks this for every run it plans
        return open == 0 ? null : firstOpen(from, to, p -> p.node != exceptNode);
    }

    /** Like {@link #conflict}, but only pins that write: a read-only copy elsewhere leaves readers' pages alone. */
    public Pin writingConflict(long from, long to, int exceptNode) {
        return open == 0 ? null : firstOpen(from, to, p -> p.write && p.node != exceptNode);
    }

    /**
     * A device pin (a kernel's) on [from, to) that the calling thread holds, or null. Here and
     * below, a pin the calling thread holds is one {@link CallerThreads#isCallers} says is its own:
     * its own, or one its launch's thread held when it launched the kernel whose work items it runs.
     */
    public synchronized Pin deviceHeldByCurrentThread(long from, long to) {
        return ownedByCurrentThread(from, to, true);
    }

    /** A pin on [from, to), of any node, that the calling thread holds (a host view, or its kernel's), or null. */
    public synchronized Pin heldByCurrentThread(long from, long to) {
        return ownedByCurrentThread(from, to, false);
    }

    /** A pin on [from, to) that the calling thread holds on a node other than {@code node}, or null. */
    public synchronized Pin heldByCurrentThreadOffNode(long from, long to, int node) {
        return ownedByCurrentThread(from, to, n -> n != node);
    }

    private Pin ownedByCurrentThread(long from, long to, boolean devicesOnly) {
        return ownedByCurrentThread(from, to, n -> !devicesOnly || n != 0);
    }

    private Pin ownedByCurrentThread(long from, long to, java.util.function.IntPredicate onNode) {
        for (Pin p : pins) {
            if (onNode.test(p.node) && CallerThreads.isCallers(p) && p.from < to && from < p.to) {
                return p;
            }
        }
        return null;
    }

    /** A pin of {@code node} on [from, to) whose owner thread is alive (an open host view, on node 0), or null. */
    public synchronized Pin liveOn(int node, long from, long to) {
        for (Pin p : pins) {
            if (p.node == node && p.owner.isAlive() && p.from < to && from < p.to) {
                return p;
            }
        }
        return null;
    }

    /** Every pin of {@code node} on [from, to) whose owner thread is alive (open host views, on node 0). */
    public synchronized java.util.List<Pin> allLiveOn(int node, long from, long to) {
        java.util.List<Pin> out = new java.util.ArrayList<>(0);
        for (Pin p : pins) {
            if (p.node == node && p.owner.isAlive() && p.from < to && from < p.to) {
                out.add(p);
            }
        }
        return out;
    }

    /** A pin on [from, to) that is not one of {@code except} (compared by identity), or null. */
    public synchronized Pin anyBut(java.util.List<Pin> except, long from, long to) {
        for (Pin p : pins) {
            if (p.from < to && from < p.to && !containsSame(except, p)) {
                return p;
            }
        }
        return null;
    }

    private static boolean containsSame(java.util.List<Pin> list, Pin p) {
        for (Pin e : list) {
            if (e == p) {
                return true;
            }
        }
        return false;
    }

    /** A pin of {@code node} on [from, to), or null. */
    public Pin on(int node, long from, long to) {
        return firstOpen(from, to, p -> p.node == node);
    }

    /** A device pin (a kernel's, on any device) on [from, to), or null. */
    public Pin anyDevice(long from, long to) {
        return firstOpen(from, to, p -> p.node != 0);
    }

    /**
     * Pages [first, first + count) (count at most 512) under pins, as two 512-bit masks in one
     * array: bit i for page first + i under any pin, bit 512 + i under a pin not on the host
     * (node 0). One pass over the pins where a page-by-page question would take one per page.
     */
    public long[] pinnedMasks(long first, int count) {
        return masks(first, count, node -> node != 0);
    }

    /**
     * Pages [first, first + count) (count at most 512) under pins, as two 512-bit masks in one
     * array: bit i for page first + i under any pin, bit 512 + i under a pin of {@code node}.
     */
    public long[] pinnedMasksOf(long first, int count, int node) {
        return masks(first, count, n -> n == node);
    }

    /** The two masks: bit i under any pin, bit 512 + i under a pin whose node {@code second} accepts. */
    private synchronized long[] masks(long first, int count, java.util.function.IntPredicate second) {
        long[] mask = new long[16];
        for (Pin p : pins) {
            if (p.from < first + count && first < p.to) {
                int from = (int) (Math.max(p.from, first) - first);
                int to = (int) (Math.min(p.to, first + count) - first);
                Bits.setRange(mask, from, to);
                if (second.test(p.node)) {
                    Bits.setRange(mask, 512 + from, 512 + to);
                }
            }
        }
        return mask;
    }

    /**
     * The pin that keeps a move of pages devices reach in place (the host's copy mapped by their
     * entries) from going to {@code target}: every device's, the target's own included (its kernels
     * may be using those entries); host views as {@link #conflict} counts them (none for a move to the
     * host, only writers for a duplicate): host code never reaches the device entries.
     */
    public Pin inPlaceConflict(long from, long to, int target, boolean duplicate) {
        return open == 0 ? null : firstOpen(from, to, p -> p.node != 0 || target != 0 && (!duplicate || p.write));
    }

    /** Any pin on [from, to), whatever its node. */
    public Pin any(long from, long to) {
        return firstOpen(from, to, p -> true);
    }

    /** The first open pin on [from, to) that {@code which} accepts, or null; no monitor while none is open. */
    private Pin firstOpen(long from, long to, java.util.function.Predicate<Pin> which) {
        if (open == 0) {
            return null;
        }
        synchronized (this) {
            for (Pin p : pins) {
                if (p.from < to && from < p.to && which.test(p)) {
                    return p;
                }
            }
            return null;
        }
    }

    public synchronized long version() {
        return version;
    }

    /**
     * Waits until some pin is released after {@code seen} was read, or at most a short while:
     * the caller looks again either way (a pin whose owner thread ended is never released by it).
     */
    public synchronized void awaitRelease(long seen) throws InterruptedException {
        if (version == seen) {
            wait(50);
        }
    }

    public synchronized int size() {
        return pins.size();
    }
}
