package dev.hetmem.internal;

import java.util.ArrayList;
import java.util.List;

/**
 * The pages of one region that must stay where they are for now: those under an open host view
 * (pinned on the host) and those used by a running kernel (pinned on its device). A migration that
 * would take a pinned page away from its node waits until the pin is released.
 *
 * <p>Few pins are open at once (one per view or kernel argument), so a list is scanned.
 * This object's monitor is a leaf lock. Waiting for a release uses a version number read while
 * the block locks are still held, so a release between the conflict and the wait is never missed.
 */
public final class Pins {

    /** Pages [from, to) kept on {@code node}; {@code owner} is the thread that holds the pin. */
    public record Pin(int node, long from, long to, boolean write, Thread owner) {}

    /** Lock L3 (pin) is an entry here; this object's monitor is L8 (pins): docs/design.md, lock table, L3, L8. */
    private final List<Pin> pins = new ArrayList<>();
    private long version;

    public synchronized Pin add(int node, long from, long to, boolean write) {
        Pin p = new Pin(node, from, to, write, Thread.currentThread());
        pins.add(p);
        return p;
    }

    public void remove(Pin p) {
        synchronized (this) {
            if (!pins.remove(p)) {
                throw new IllegalStateException("pin released twice: " + p);
            }
            version++;
            notifyAll();
        }
    }

    /**
     * The first pin that keeps a page of [from, to) on a node other than {@code exceptNode}, or
     * null. Pages stay where they are for such a pin.
     */
    public synchronized Pin conflict(long from, long to, int exceptNode) {
        for (Pin p : pins) {
            if (p.node != exceptNode && p.from < to && from < p.to) {
                return p;
            }
        }
        return null;
    }

    /** Like {@link #conflict}, but only pins that write: a read-only copy elsewhere leaves readers' pages alone. */
    public synchronized Pin writingConflict(long from, long to, int exceptNode) {
        for (Pin p : pins) {
            if (p.write && p.node != exceptNode && p.from < to && from < p.to) {
                return p;
            }
        }
        return null;
    }

    /** A device pin (a kernel's) on [from, to) that the calling thread holds, or null. */
    public synchronized Pin deviceHeldByCurrentThread(long from, long to) {
        return ownedByCurrentThread(from, to, true);
    }

    /** A pin on [from, to), of any node, that the calling thread holds (a host view, or its kernel's), or null. */
    public synchronized Pin heldByCurrentThread(long from, long to) {
        return ownedByCurrentThread(from, to, false);
    }

    private Pin ownedByCurrentThread(long from, long to, boolean devicesOnly) {
        for (Pin p : pins) {
            if ((!devicesOnly || p.node != 0) && p.owner == Thread.currentThread() && p.from < to && from < p.to) {
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

    /** A device pin (a kernel's, on any device) on [from, to), or null. */
    public synchronized Pin anyDevice(long from, long to) {
        for (Pin p : pins) {
            if (p.node != 0 && p.from < to && from < p.to) {
                return p;
            }
        }
        return null;
    }

    /** Any pin on [from, to), whatever its node. */
    public synchronized Pin any(long from, long to) {
        for (Pin p : pins) {
            if (p.from < to && from < p.to) {
                return p;
            }
        }
        return null;
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
