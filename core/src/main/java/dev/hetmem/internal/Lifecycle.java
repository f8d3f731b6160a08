package dev.hetmem.internal;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Whether a region (or a whole memory) may still be used, and who is using it.
 *
 * <p>Operations {@link #enter} and {@link #exit}; a region's lifecycle has the memory's as its
 * parent, and entering it enters the parent first, so the memory's count covers every
 * operation on every region. {@link #close} refuses new operations, then waits, for at most a
 * bounded time, for those running; it refuses while host views opened by live threads are
 * open (their segments point at the memory it would unmap) and takes back those of threads that
 * ended without closing theirs. A thread that would wait for itself (it is inside an operation
 * on what it closes) is refused at once.
 *
 * <p>State is guarded by this object's monitor, a leaf lock: nothing else is taken while holding
 * it, and {@link #enter} takes the parent's monitor before its own, never the reverse.
 */
public final class Lifecycle {
    /** A host view counted here: its owner thread, and how to take it back if that thread ended. */
    public interface View {
        Thread owner();

        /** Releases what the view holds (its pin) without touching its segment; once only. */
        void abandon();

        /** Closes the view: its segment stops working and its pin goes (called by its owner thread). */
        void close();
    }

    private final String what;
    private final Lifecycle parent;
    private boolean closed;
    private boolean drained;
    /**
     * Closes under way, which finish once the operations end: threads in {@link #awaitDrained}, and
     * in {@link #closeTakingOwnViews} from the moment it closed (also while it closes its views).
     */
    private int closersWaiting;
    /** Lock L1 (lifecycle) is these two maps, guarded (with viewClosers) by this object's monitor, L17: docs/design.md, lock table, L1, L17. */
    private final Map<Thread, Integer> running = new LinkedHashMap<>();
    private final Map<View, Boolean> views = new IdentityHashMap<>();
    /** Threads in {@link #closeTakingOwnViews} closing their own views (outside the monitor); guarded by it. */
    private final List<Thread> viewClosers = new ArrayList<>(1);

    public Lifecycle(String what) {
        this(what, null);
    }

    public Lifecycle(String what, Lifecycle parent) {
        this.what = what;
        this.parent = parent;
    }

    public void enter() {
        if (parent != null) {
            parent.enter();
        }
        try {
            synchronized (this) {
                if (closed) {
                    throw refusal();
                }
                running.merge(Thread.currentThread(), 1, Integer::sum);
            }
        } catch (RuntimeException e) {
            if (parent != null) {
                parent.exit();
            }
            throw e;
        }
    }

    /** Runs {@code op} as one operation: between {@link #enter} and {@link #exit}. */
    public <T> T within(java.util.function.Supplier<T> op) {
        enter();
        try {
            return op.get();
        } finally {
            exit();
        }
    }

    public void exit() {
        synchronized (this) {
            Thread me = Thread.currentThread();
            Integer n = running.get(me);
            if (n == null) {
                throw new IllegalStateException(what + ": exit without enter in " + me.getName());
            }
            if (n == 1) {
                running.remove(me);
            } else {
                running.put(me, n - 1);
            }
            if (running.isEmpty()) {
                notifyAll();
            }
        }
        if (parent != null) {
            parent.exit();
        }
    }

    public synchronized void openView(View v) {
        if (closed) {
            throw new IllegalStateException(what + " is " + (parent == null ? "closed" : "freed"));
        }
        views.put(v, Boolean.TRUE);
    }

    /**
     * The owner of {@code v} has begun closing it: its segment closes next, then its pin goes,
     * outside this monitor. Until {@link #closeView} (or {@link #stillOpen}, if the segment refuses
     * to close), a close or free counts it as a view being closed, not an open one (it refused,
     * naming the view's thread, a free that came in between), and waits for it as for an
     * operation: its owner counts as running meanwhile.
     */
    public synchronized void closingView(View v) {
        if (views.replace(v, Boolean.FALSE) != null) {
            running.merge(v.owner(), 1, Integer::sum);
        }
    }

    /** {@code v} is closed (or failed to unpin): it no longer holds up a close or free. */
    public synchronized void closeView(View v) {
        if (Boolean.FALSE.equals(views.remove(v))) {
            endClosing(v);
        }
        notifyAll();
    }

    /** {@code v}'s close failed before it closed anything (its segment is held by a native call): open again. */
    public synchronized void stillOpen(View v) {
        if (Boolean.FALSE.equals(views.replace(v, Boolean.TRUE))) {
            endClosing(v);
        }
        notifyAll();
    }

    /** Its owner no longer counts as running for {@code v}'s close ({@link #closingView}). */
    private void endClosing(View v) {
        assert Thread.holdsLock(this);
        Integer n = running.get(v.owner());
        if (n != null && n > 1) {
            running.put(v.owner(), n - 1);
        } else {
            running.remove(v.owner());
        }
    }

    /** Whether a host view is open here (not being closed by its owner). */
    public synchronized boolean hasOpenViews() {
        return openViews() > 0;
    }

    /** Whether {@code v} is open, not being closed by its owner ({@link #closingView}). */
    private boolean open(View v) {
        assert Thread.holdsLock(this);
        return Boolean.TRUE.equals(views.get(v));
    }

    /** How many views are open, not being closed by their owners. */
    private int openViews() {
        assert Thread.holdsLock(this);
        int n = 0;
        for (Boolean open : views.values()) {
            n += open ? 1 : 0;
        }
        return n;
    }

    /**
     * Closes the host views the calling thread holds here, as {@code Arena.close()} invalidates
     * the segments of its arena; returns how many. (Views of other threads are confined to them:
     * they can only be waited for.)
     */
    public int closeViewsOfCurrentThread() {
        List<View> mine = new ArrayList<>();
        synchronized (this) {
            for (View v : views.keySet()) {
                if (v.owner() == Thread.currentThread()) {
                    mine.add(v);
                }
            }
        }
        for (View v : mine) {
            v.close();   // takes itself out of views, under this monitor, after it released its pin
        }
        return mine.size();
    }

    /**
     * Waits until no live thread has a host view open here, taking back views of threads that
     * ended; throws at once if the calling thread holds one (it would wait for itself), and after
     * {@code timeoutNanos} naming the threads that hold them.
     */
    public void awaitNoLiveViews(long timeoutNanos) {
        long deadline = System.nanoTime() + timeoutNanos;
        // an interrupt does not cut the wait short, as in awaitDrained: it is kept for the caller (a close on
        // an interrupted thread failed here at once while another thread held a view, and tore nothing down)
        boolean interrupted = false;
        try {
            while (true) {
                reapAbandonedViews();
                synchronized (this) {
                    if (views.isEmpty()) {
                        return;
                    }
                    Set<String> owners = new LinkedHashSet<>();   // each thread once
                    for (View v : views.keySet()) {
                        if (v.owner() == Thread.currentThread()) {
                            throw new IllegalStateException(what + " has a host view open in this thread ("
                                    + v.owner().getName() + "); close it first");
                        }
                        owners.add(v.owner().getName());
                    }
                    long left = deadline - System.nanoTime();
                    if (left <= 0) {
                        throw new IllegalStateException("closing: " + what + " still has " + views.size()
                                + " open host view(s), in thread(s) " + owners + ", after " + timeoutNanos / 1_000_000
                                + " ms (nothing was unmapped; close again once they are closed)");
                    }
                    try {
                        wait(Math.max(1, Math.min(50, left / 1_000_000)));   // a view's thread may end without closing it
                    } catch (InterruptedException e) {
                        interrupted = true;
                    }
                }
            }
        } finally {
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /**
     * Takes back views whose owner thread has ended without closing them: nobody can reach their
     * segments any more, but their pins would keep pages in place for ever. Returns how many.
     */
    public int reapAbandonedViews() {
        List<View> dead = new ArrayList<>();
        synchronized (this) {
            for (View v : views.keySet()) {
                if (!v.owner().isAlive()) {
                    dead.add(v);
                }
            }
            for (View v : dead) {
                views.remove(v);
            }
        }
        for (View v : dead) {
            v.abandon();
        }
        return dead.size();
    }

    public synchronized boolean isClosed() {
        return closed;
    }

    /**
     * Throws if the current thread is inside an operation here: closing would wait for itself.
     * Callers that close their thread's views before closing call it first, so that a refused close
     * changes nothing (a view closed under a running load would let its pages move while the load
     * still writes them).
     */
    public synchronized void refuseCloseFromInside() {
        if (running.containsKey(Thread.currentThread())) {
            throw insideOperation();
        }
    }

    private IllegalStateException insideOperation() {
        return new IllegalStateException("closing " + what + " from inside an operation on it (a kernel, a load's "
                + "progress callback or a call that uses it, in thread " + Thread.currentThread().getName()
                + ") would wait for itself; nothing was closed");
    }

    public synchronized void checkOpen() {
        if (closed) {
            throw refusal();
        }
    }

    /**
     * Why a closed lifecycle refuses an operation. A close that gave up waiting has not freed
     * anything, and neither has one stopped by a view of its own thread that failed to close (its
     * segment held by a native call still running): the lifecycle stays closed with that view open,
     * and the refusal says so rather than that operations are still running.
     */
    private IllegalStateException refusal() {
        assert Thread.holdsLock(this);
        String close = parent == null ? "close" : "free";
        Set<String> stuck = new LinkedHashSet<>();   // views left open by a close, not being closed now
        for (View v : views.keySet()) {
            if (!viewClosers.contains(v.owner()) && open(v)) {
                stuck.add(v.owner().getName());
            }
        }
        String why = !stuck.isEmpty()
                ? " (its " + close + " stopped: a host view in thread(s) " + stuck + " failed to close; " + close
                + " it again once it is closed)"
                : drained ? "" : " (its " + close + " waits for operations still running, or gave up waiting: " + close
                + " it again once they end)";
        return new IllegalStateException(what + " is " + (parent == null ? "closed" : "freed") + why);
    }

    /**
     * Marks closed and waits up to {@code timeoutNanos} for running operations. Returns false if
     * it was closed already (by this or another thread). Throws, changing nothing, if host views
     * of live threads are open or the current thread is itself inside an operation here; throws
     * naming the threads still inside if the time runs out (it stays closed: new operations are
     * refused; a later close can wait again through {@link #awaitDrained}).
     */
    public boolean close(long timeoutNanos) {
        reapAbandonedViews();
        synchronized (this) {
            return closeLocked(timeoutNanos);
        }
    }

    /**
     * A region's free, as {@code Arena.close()}: closes, taking the calling thread's own host
     * views with it, or refuses changing nothing. The check that no other thread holds a view and
     * the close are one step under the monitor, so a view another thread opens meanwhile either
     * came first (the free is refused and the caller's views stay open) or is refused itself.
     * Done apart (a check, then {@link #closeViewsOfCurrentThread}, then the close), a view opened
     * between the check and the close made the free refuse after the caller's views were closed.
     *
     * <p>Order: under the monitor, refused if the caller is inside an operation here or a thread
     * other than the caller holds a view; else marked closed (no view or operation starts from
     * here), counted as a closer waiting ({@link #closeAbandoned}), and the caller counted as
     * running. Then, outside the monitor (a view's close releases its pin, which takes other
     * locks), the caller's views are closed; then the caller stops counting as running, and the
     * running operations are waited for, up to {@code timeoutNanos}. While the caller closes its
     * views it is in {@code viewClosers}, and a second close (another thread's free, or
     * {@code Region.close()}) takes those views for views being closed, not for another thread's
     * open ones: it goes on, and waits for the operations, the caller among them, so it cannot
     * tear the region down under views still being closed.
     *
     * <p>A view's close can fail (its segment is held by a native call that is still running, so
     * its arena refuses to close): the lifecycle then stays closed with that view open, and the
     * failure is thrown. The checks above are made on a closed lifecycle as well, so a later close
     * (of this thread, once the native call has returned, or of a load's cleanup that finds the
     * close abandoned) closes that view first or is refused while another thread holds it: nothing
     * is torn down under an open view. A close that waited for such a failing closer looks at the
     * views again once the operations have ended, and refuses if one is left.
     *
     * @return true if this call closed it; false if it was closed already, by this or another
     *         thread (the operations are waited for all the same)
     */
    public boolean closeTakingOwnViews(long timeoutNanos) {
        reapAbandonedViews();
        Thread me = Thread.currentThread();
        List<View> mine = new ArrayList<>();
        boolean closedHere;
        synchronized (this) {
            if (running.containsKey(me)) {
                throw insideOperation();
            }
            Set<String> owners = new LinkedHashSet<>();   // each thread once
            int others = 0;
            for (View v : views.keySet()) {
                if (v.owner() == me) {
                    mine.add(v);
                } else if (!viewClosers.contains(v.owner()) && open(v)) {
                    owners.add(v.owner().getName());
                    others++;
                }   // else a close under way in that thread closes it (a free, or the view's own close): waited
                    // for below, its closer running
            }
            if (!owners.isEmpty()) {
                throw new IllegalStateException(what + " has " + others + " open host view(s) in thread(s) " + owners
                        + "; they must close them first (nothing was freed)");
            }
            closedHere = !closed;
            closed = true;
            closersWaiting++;
            running.put(me, 1);
            viewClosers.add(me);
        }
        try {
            try {
                for (View v : mine) {
                    v.close();   // takes itself out of views, under this monitor, after it released its pin
                }
            } finally {
                synchronized (this) {
                    viewClosers.remove(me);
                    running.remove(me);
                    if (running.isEmpty()) {
                        notifyAll();
                    }
                }
            }
            synchronized (this) {
                awaitDrainedCounted(timeoutNanos);
            }
        } finally {
            synchronized (this) {
                closersWaiting--;
            }
        }
        // a view another closer failed to close while this one waited for it (its segment held by a native
        // call) is still open: the caller must not tear the region down under it
        reapAbandonedViews();
        synchronized (this) {
            if (!views.isEmpty()) {
                throw new IllegalStateException(what + " has " + views.size() + " host view(s) in thread(s) " + ownersLocked()
                        + " that failed to close while it was freed; free it again once they are closed (nothing was freed)");
            }
        }
        return closedHere;
    }

    /** The names of the threads holding the open views, each once, in order. */
    private Set<String> ownersLocked() {
        assert Thread.holdsLock(this);
        Set<String> owners = new LinkedHashSet<>();
        for (View v : views.keySet()) {
            owners.add(v.owner().getName());
        }
        return owners;
    }

    private boolean closeLocked(long timeoutNanos) {
        assert Thread.holdsLock(this);
        if (closed) {
            return false;
        }
        if (running.containsKey(Thread.currentThread())) {
            throw insideOperation();
        }
        if (openViews() > 0) {   // views their owners are closing are waited for below, as operations
            throw new IllegalStateException(what + " has " + openViews() + " open host view(s) in thread(s) "
                    + ownersLocked() + "; close them before freeing it (nothing was freed)");
        }
        closed = true;
        // still under the monitor: counted as waiting from the moment it closed (closeAbandoned)
        awaitDrained(timeoutNanos);
        return true;
    }

    /** Waits until no operation runs; throws naming who still runs after {@code timeoutNanos}. */
    public synchronized void awaitDrained(long timeoutNanos) {
        closersWaiting++;
        try {
            awaitDrainedCounted(timeoutNanos);
        } finally {
            closersWaiting--;
        }
    }

    private void awaitDrainedCounted(long timeoutNanos) {
        assert Thread.holdsLock(this);
        long deadline = System.nanoTime() + timeoutNanos;
        boolean interrupted = false;
        while (!running.isEmpty()) {
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                if (interrupted) {
                    Thread.currentThread().interrupt();
                }
                List<String> names = new ArrayList<>();
                for (Map.Entry<Thread, Integer> e : running.entrySet()) {
                    names.add(e.getKey().getName() + (e.getValue() > 1 ? " (" + e.getValue() + ")" : ""));
                }
                throw new IllegalStateException("closing " + what + ": gave up after " + timeoutNanos / 1_000_000
                        + " ms; operations still running in thread(s) " + names
                        + " (nothing was unmapped; close again once they end)");
            }
            try {
                wait(Math.max(1, left / 1_000_000));
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        drained = true;
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    /**
     * Whether a close gave up waiting for the operations and nobody finishes it: closed, not drained,
     * and no close waiting now. A close under way (waiting, or past its wait) finishes by itself once
     * the operations end; a close that gave up is finished only by another close.
     */
    public synchronized boolean closeAbandoned() {
        return closed && !drained && closersWaiting == 0;
    }

    /** Whether close has waited out every operation (after this, nothing runs here again). */
    public synchronized boolean isDrained() {
        return drained;
    }
}
