package dev.hetmem.internal;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.UnaryOperator;

/**
 * Per-range attributes of one region (KFD's SVM ranges): granularity and protection, each applying
 * to exactly the pages it was set on. Stored as sorted, non-overlapping page intervals covering the
 * whole region; neighbours with equal attributes merge.
 *
 * <p>Reads are lock-free on an immutable snapshot (they sit on the fault path); writes (advice,
 * protection changes) copy it under this object's monitor, a leaf lock.
 */
public final class RangeAttributes {

    /**
     * The attributes of one interval. {@code granuleShift}: log2 of the granule in bytes.
     * {@code freed}: the pages were given back by {@code Region.free(offset, length)} (munmap of part
     * of a mapping): no call may reach them again, and no node holds them.
     */
    public record Attrs(int granuleShift, boolean readOnly, boolean readMostly, int preferred, int accessedBy,
                        boolean freed) {
        public Attrs(int granuleShift, boolean readOnly, boolean readMostly) {
            this(granuleShift, readOnly, readMostly, -1, 0, false);
        }

        /** Whether {@code node} should map these pages where they are instead of migrating them. */
        public boolean accessedBy(int node) {
            return (accessedBy & (1 << node)) != 0;
        }

        public Attrs withAccessedBy(int node, boolean on) {
            return new Attrs(granuleShift, readOnly, readMostly, preferred,
                    on ? accessedBy | (1 << node) : accessedBy & ~(1 << node), freed);
        }

        public long granuleBytes() {
            return 1L << granuleShift;
        }

        public Attrs withGranuleShift(int shift) {
            return new Attrs(shift, readOnly, readMostly, preferred, accessedBy, freed);
        }

        public Attrs withReadOnly(boolean ro) {
            return new Attrs(granuleShift, ro, readMostly, preferred, accessedBy, freed);
        }

        public Attrs withReadMostly(boolean rm) {
            return new Attrs(granuleShift, readOnly, rm, preferred, accessedBy, freed);
        }

        /** The node the pages should live on (-1: none). */
        public Attrs withPreferred(int node) {
            return new Attrs(granuleShift, readOnly, readMostly, node, accessedBy, freed);
        }

        /** These attributes once the pages are freed: nothing else of them matters any more. */
        public Attrs asFreed() {
            return new Attrs(granuleShift, false, false, -1, 0, true);
        }
    }

    /**
     * Calls {@code visitor} with the attributes of each interval overlapping [from, to), clipped to it,
     * in order.
     */
    public void forEach(long from, long to, IntervalVisitor visitor) {
        Snapshot s = snapshot;
        for (int i = 0; i < s.starts.length; i++) {
            long a = s.starts[i];
            long b = i + 1 < s.starts.length ? s.starts[i + 1] : pages;
            if (b > from && a < to) {
                visitor.visit(Math.max(a, from), Math.min(b, to), s.attrs[i]);
            }
        }
    }

    @FunctionalInterface
    public interface IntervalVisitor {
        void visit(long from, long to, Attrs attrs);
    }

    /** The intervals, and whether any of them is freed or read-only (the usual answer, no, at no cost). */
    private record Snapshot(long[] starts, Attrs[] attrs, boolean anyFreed, boolean anyReadOnly) {
        Snapshot(long[] starts, Attrs[] attrs) {
            this(starts, attrs, java.util.Arrays.stream(attrs).anyMatch(Attrs::freed),
                    java.util.Arrays.stream(attrs).anyMatch(Attrs::readOnly));
        }
    }

    private final long pages;
    private volatile Snapshot snapshot;

    public RangeAttributes(long pages, Attrs initial) {
        this.pages = pages;
        this.snapshot = new Snapshot(new long[] {0}, new Attrs[] {initial});
    }

    public Attrs at(long page) {
        Snapshot s = snapshot;
        return s.attrs[indexOf(s, page)];
    }

    /** The interval of {@code s} that holds {@code page}. */
    private static int indexOf(Snapshot s, long page) {
        if (s.starts.length == 1) {
            return 0;   // the usual region: no advice, nothing freed
        }
        int i = Arrays.binarySearch(s.starts, page);
        return i >= 0 ? i : -i - 2;
    }

    /** Where the interval after {@code idx} begins: the region's end if none. */
    private long endOf(Snapshot s, int idx) {
        return idx + 1 < s.starts.length ? s.starts[idx + 1] : pages;
    }

    /** The attributes of a page and the first page after it whose attributes may differ. */
    public record Stretch(Attrs attrs, long end) {}

    /** {@link #at} and {@link #nextChange} of {@code page}, from one snapshot. */
    public Stretch stretchAt(long page) {
        Snapshot s = snapshot;
        int idx = indexOf(s, page);
        return new Stretch(s.attrs[idx], endOf(s, idx));
    }

    /** The first page after {@code page} whose attributes may differ (the region's end if none). */
    public long nextChange(long page) {
        Snapshot s = snapshot;
        return endOf(s, indexOf(s, page));
    }

    /**
     * Applies {@code change} to the attributes of every page in [from, to) that is not freed: once
     * freed, a page's attributes never change again. Callers check for freed pages before they
     * change attributes, but not under this lock: a {@code protect} or an advice whose check passed
     * just before a partial free marked part of its range would otherwise leave freed pages marked
     * read-only (or read-mostly, preferring a node, accessed by one), which no order of the two calls
     * gives (from a review). Takes lock L7 (attributes), a leaf: docs/design.md, lock table, L7.
     */
    public synchronized void update(long from, long to, UnaryOperator<Attrs> change) {
        if (from >= to) {
            return;   // nothing to change (and an empty range inside an interval would split it in two at one start)
        }
        Snapshot s = snapshot;
        List<long[]> bounds = new ArrayList<>();
        List<Attrs> values = new ArrayList<>();
        for (int i = 0; i < s.starts.length; i++) {
            long a = s.starts[i];
            long b = i + 1 < s.starts.length ? s.starts[i + 1] : pages;
            Attrs v = s.attrs[i];
            if (b <= from || a >= to) {
                append(bounds, values, a, v);
                continue;
            }
            if (a < from) {
                append(bounds, values, a, v);
            }
            append(bounds, values, Math.max(a, from), v.freed() ? v : change.apply(v));
            if (b > to) {
                append(bounds, values, to, v);
            }
        }
        long[] starts = new long[bounds.size()];
        for (int i = 0; i < starts.length; i++) {
            starts[i] = bounds.get(i)[0];
        }
        snapshot = new Snapshot(starts, values.toArray(Attrs[]::new));
    }

    private static void append(List<long[]> bounds, List<Attrs> values, long start, Attrs v) {
        if (!values.isEmpty() && values.getLast().equals(v)) {
            return;
        }
        bounds.add(new long[] {start});
        values.add(v);
    }

    /** True if any page in [from, to) is read-only. */
    public boolean anyReadOnly(long from, long to) {
        return firstReadOnly(from, to) >= 0;
    }

    /** The first read-only page in [from, to), or -1. */
    public long firstReadOnly(long from, long to) {
        return snapshot.anyReadOnly ? first(from, to, Attrs::readOnly) : -1;
    }

    /** The first freed page in [from, to), or -1; cheap while nothing of the region is freed. */
    public long firstFreed(long from, long to) {
        return snapshot.anyFreed ? first(from, to, Attrs::freed) : -1;
    }

    /** The end of the stretch of freed pages that starts at {@code page} (a freed page). */
    public long freedEnd(long page) {
        long p = page;
        while (p < pages && at(p).freed()) {
            p = nextChange(p);
        }
        return p;
    }

    private long first(long from, long to, java.util.function.Predicate<Attrs> test) {
        Snapshot s = snapshot;
        int found = Arrays.binarySearch(s.starts, from);
        // from the interval holding from (a commit asks this per run: no scan from the region's start)
        for (int i = Math.max(0, found >= 0 ? found : -found - 2); i < s.starts.length && s.starts[i] < to; i++) {
            long b = i + 1 < s.starts.length ? s.starts[i + 1] : pages;
            if (b > from && test.test(s.attrs[i])) {
                return Math.max(s.starts[i], from);
            }
        }
        return -1;
    }

    public int intervals() {
        return snapshot.starts.length;
    }

    public long metadataBytes() {
        Snapshot s = snapshot;
        return 32 + 16 + 8L * s.starts.length + 16 + 4L * s.attrs.length + 24L * s.attrs.length;
    }
}
