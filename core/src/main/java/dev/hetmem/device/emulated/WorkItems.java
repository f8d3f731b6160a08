package dev.hetmem.device.emulated;

import java.util.concurrent.atomic.AtomicLong;

/**
 * The work items of one launch, handed out in chunks to whichever compute thread asks next, as a
 * GPU hands thread blocks to whichever multiprocessor is free. Why not one fixed share per thread:
 * a launch then takes as long as its slowest thread, and on a machine with as many compute threads
 * as cores any other runnable thread (a copy overlapping the kernel, the JIT, another process)
 * delays one share while the other thread finishes early and waits; with chunks the thread that is
 * not held up runs more of them.
 *
 * <p>Invariant: {@code next} only grows, from {@code from} to {@code end}; chunk [s, min(s + chunk,
 * end)) belongs to the thread whose compare-and-set moved {@code next} from s, so every item is
 * claimed exactly once. {@link #stop} moves it to {@code end}: no chunk is claimed after it (a failed
 * item fails the launch; the rest need not run).
 */
final class WorkItems {
    private final AtomicLong next;
    private final long end;
    private final long chunk;

    /**
     * Chunks per thread's share of a launch's items: enough that a thread held up for a while leaves
     * its chunks to the others, few enough that claiming one costs nothing beside the items it runs.
     */
    static final int CHUNKS_PER_THREAD = 32;

    /** Items [from, end) in chunks of {@code chunk} (the last one shorter). */
    WorkItems(long from, long end, long chunk) {
        if (end < from || chunk < 1) {
            throw new IllegalArgumentException("work items [" + from + ", " + end + ") in chunks of " + chunk);
        }
        this.next = new AtomicLong(from);
        this.end = end;
        this.chunk = chunk;
    }

    /**
     * Items per chunk for a launch of {@code items} items over {@code threads} threads (no more
     * threads than items take part): a {@link #CHUNKS_PER_THREAD}th of a thread's share, at least
     * one; all of them where one thread runs them.
     */
    static long chunk(long items, int threads) {
        if (items < 0 || threads < 1) {
            throw new IllegalArgumentException(items + " work items over " + threads + " threads");
        }
        return threads == 1 || items <= 1 ? Math.max(1, items)
                : Math.max(1, items / (Math.min(threads, items) * CHUNKS_PER_THREAD));
    }

    /** The first item of a chunk now this thread's, or -1 when none is left; its end is {@link #endOf}. */
    long claim() {
        while (true) {
            long s = next.get();
            if (s >= end) {
                return -1;
            }
            if (next.compareAndSet(s, s + Math.min(chunk, end - s))) {
                return s;
            }
        }
    }

    /** The end (exclusive) of the chunk that starts at {@code start}, one {@link #claim} returned. */
    long endOf(long start) {
        return start + Math.min(chunk, end - start);
    }

    /** No chunk is handed out from now on. */
    void stop() {
        next.set(end);
    }

    /** Items per chunk. */
    long chunk() {
        return chunk;
    }
}
