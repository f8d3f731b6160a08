package dev.hetmem;

import java.util.Arrays;
import java.util.TreeSet;

/**
 * Demand before speculation: the launches bringing their arguments in, per device node, which an
 * asynchronous prefetch to that node lets finish before it starts.
 *
 * <p>A launch's bring-in is waited for now (the kernel cannot start before it); an asynchronous
 * prefetch is for later (a next layer, a next launch). Both copy on this machine's cores (or its
 * device's copy engine) and both make room on the same device, so a prefetch that starts while a
 * launch brings its arguments in delays the launch by what it takes of them, and the two evict
 * alike, each sometimes finding the other's victims locked and starting over. The order the
 * program asked for is the other way round: the launch's arguments first, then the prefetch,
 * beside the kernel. {@code bench decode}, emulated device, model three times the device, F32,
 * one JVM, six runs each: the prefetch mode took 169-207 ms a run (median 178) with the next
 * layer's prefetch started beside the running layer's bring-in, 161-171 ms (median 166) with it
 * started once that layer's kernel began; one launch without prefetches 157-167 ms.
 *
 * <p>What a prefetch waits for: the bring-ins to its node that had begun when it came, not those
 * that begin while it waits (launches back to back from several threads would otherwise hold it
 * off for good); at most {@link #MAX_WAIT_NANOS} in all, since a bring-in can itself wait a long
 * time (for a host view's close, for room that running kernels hold). It waits at its start
 * only, holding nothing of the memory's. A prefetch asked for just before a launch (the usual
 * order: the next layer's, then this layer's launch) waits for it only if the launching thread
 * has counted itself in by the time the prefetch's thread looks, which it usually has (that
 * thread has to be woken first) but need not have.
 *
 * <p>Each bring-in holds a ticket, numbered in the order they began on its node. Lock L29
 * (docs/design.md, lock table): this object's monitor, a leaf.
 */
final class BringIns {
    /** The longest an asynchronous prefetch waits for bring-ins to its node before it starts anyway. */
    static final long MAX_WAIT_NANOS = 250_000_000L;

    /** Per node: the tickets of the bring-ins running now. Guarded by this. */
    private final TreeSet<Long>[] running;
    /** Per node: the last ticket given out. Guarded by this. */
    private final long[] issued;
    private final long maxWaitNanos;

    /** For a memory of {@code nodes} nodes, the host's among them; a prefetch waits at most {@code maxWaitNanos}. */
    @SuppressWarnings("unchecked")
    BringIns(int nodes, long maxWaitNanos) {
        this.running = new TreeSet[nodes];
        Arrays.setAll(running, n -> new TreeSet<Long>());
        this.issued = new long[nodes];
        this.maxWaitNanos = maxWaitNanos;
    }

    /**
     * A launch's bring-in to {@code node} begins; {@link #end} follows it with the ticket returned,
     * whatever happens.
     */
    synchronized long begin(int node) {
        long ticket = ++issued[node];
        running[node].add(ticket);
        return ticket;
    }

    /** The bring-in holding {@code ticket} ends; the prefetches waiting for it go on once it was the last they wait for. */
    synchronized void end(int node, long ticket) {
        boolean removed = running[node].remove(ticket);
        assert removed : "ticket " + ticket + " of node " + node + " ended twice";
        notifyAll();
    }

    /**
     * Waits until the bring-ins to {@code node} running now have ended, at most the limit. An
     * interrupt ends the wait (the interrupt stays set, for the prefetch to see).
     *
     * @return whether they had all ended when this returned
     */
    synchronized boolean awaitRunning(int node) {
        long upTo = issued[node];
        long deadline = System.nanoTime() + maxWaitNanos;
        while (!running[node].isEmpty() && running[node].first() <= upTo) {
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                return false;
            }
            try {
                wait(Math.max(1, left / 1_000_000));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return false;
            }
        }
        return true;
    }

    /** How many bring-ins to {@code node} run now (for tests). */
    synchronized int running(int node) {
        return running[node].size();
    }
}
