package dev.hetmem.stress;

import java.util.AbstractList;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.function.LongSupplier;

/**
 * The last steps of every worker of a concurrent run, in the order they began, each tagged with
 * its worker and that worker's step number: what a failure report shows of the operations around
 * the region that went wrong (a concurrent run cannot be shrunk; its interleaving is gone once it
 * ends). Bounded ({@link #CAPACITY} notes, the oldest dropped). The notes a worker makes go through
 * {@link #of}, a list view that only appends.
 *
 * <p>Lock: the monitor of this object, a leaf taken once per note (lock table L22, with the
 * failure list).
 */
final class StepTrace {
    static final int CAPACITY = 4096;

    private final ArrayDeque<String> notes = new ArrayDeque<>();   // guarded by this
    private long sequence;   // guarded by this

    /** A list that appends worker {@code worker}'s notes (prefixed with its current step, from {@code step}) here. */
    List<String> of(int worker, LongSupplier step) {
        return new AbstractList<>() {
            @Override
            public boolean add(String note) {
                append("w" + worker + " #" + step.getAsLong() + note);
                return true;
            }

            @Override
            public String get(int index) {
                throw new UnsupportedOperationException("a step trace is read through StepTrace.mentioning");
            }

            @Override
            public int size() {
                return 0;
            }
        };
    }

    private synchronized void append(String note) {
        if (notes.size() == CAPACITY) {
            notes.pollFirst();
        }
        notes.addLast(++sequence + " " + note);
    }

    /** The kept notes that contain {@code text}, oldest first, at most the last {@code max}. */
    synchronized List<String> mentioning(String text, int max) {
        List<String> out = new ArrayList<>();
        for (String n : notes) {
            if (n.contains(text)) {
                out.add(n);
            }
        }
        return out.subList(Math.max(0, out.size() - max), out.size());
    }
}
