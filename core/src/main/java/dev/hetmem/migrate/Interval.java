package dev.hetmem.migrate;

import dev.hetmem.internal.RegionState;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;

/**
 * A granule-widened page interval of one region and, inside it, the pages actually requested as
 * sorted disjoint segments [starts[i], ends[i]) with their write flag (overlapping requests merged,
 * write if any of them writes). Lookups are binary searches, so an interval merged from many
 * adjacent requests costs O(log n) per page, not O(n).
 */
final class Interval {
    final RegionState region;
    final long from;
    long to;
    long[] starts;
    long[] ends;
    boolean[] write;
    int segments;

    Interval(RegionState region, long from, long to) {
        this.region = region;
        this.from = from;
        this.to = to;
    }

    /** The common case, a single requested range, needs no arrays (a scatter list has one per page). */
    private long soleFrom;
    private long soleTo;
    private boolean soleWrite;
    private long[] pending;
    private int pendingCount;

    /** Adds a requested range [a, b); {@link #seal} turns them into disjoint segments. */
    void add(long a, long b, boolean w) {
        if (pendingCount == 0) {
            soleFrom = a;
            soleTo = b;
            soleWrite = w;
            pendingCount = 1;
            return;
        }
        if (pending == null) {
            pending = new long[12];
            pending[0] = soleFrom;
            pending[1] = soleTo;
            pending[2] = soleWrite ? 1 : 0;
        }
        if (3 * pendingCount + 3 > pending.length) {
            pending = Arrays.copyOf(pending, pending.length * 2);
        }
        pending[3 * pendingCount] = a;
        pending[3 * pendingCount + 1] = b;
        pending[3 * pendingCount + 2] = w ? 1 : 0;
        pendingCount++;
    }

    /**
     * Sweeps the requested ranges' boundaries: a page is requested if any range covers it, and
     * written if any writing range covers it; equal neighbours merge.
     */
    void seal() {
        if (pending == null) {
            segments = pendingCount;   // 0 or 1: the sole range's fields are the segment
            return;
        }
        int n = pendingCount;
        long[] events = new long[2 * n];   // position << 2 | kind (0 end-write, 1 end, 2 start, 3 start-write)
        for (int i = 0; i < n; i++) {
            long a = pending[3 * i];
            long b = pending[3 * i + 1];
            boolean w = pending[3 * i + 2] != 0;
            events[2 * i] = (a << 2) | (w ? 3 : 2);
            events[2 * i + 1] = (b << 2) | (w ? 0 : 1);
        }
        Arrays.sort(events);
        starts = new long[Math.max(1, n)];
        ends = new long[Math.max(1, n)];
        write = new boolean[Math.max(1, n)];
        segments = 0;
        int cover = 0;
        int writers = 0;
        int i = 0;
        while (i < events.length) {
            long pos = events[i] >>> 2;
            boolean wasCovered = cover > 0;
            boolean wasWrite = writers > 0;
            while (i < events.length && (events[i] >>> 2) == pos) {
                switch ((int) (events[i] & 3)) {
                    case 0 -> { cover--; writers--; }
                    case 1 -> cover--;
                    case 2 -> cover++;
                    default -> { cover++; writers++; }
                }
                i++;
            }
            boolean covered = cover > 0;
            boolean w = writers > 0;
            if (wasCovered && (!covered || w != wasWrite)) {
                ends[segments - 1] = pos;
            }
            if (covered && (!wasCovered || w != wasWrite)) {
                if (segments > 0 && ends[segments - 1] == pos && write[segments - 1] == w) {
                    segments--;   // re-opened with the same flag: continue the previous segment
                } else {
                    if (segments == starts.length) {
                        starts = Arrays.copyOf(starts, segments * 2);
                        ends = Arrays.copyOf(ends, segments * 2);
                        write = Arrays.copyOf(write, segments * 2);
                    }
                    starts[segments] = pos;
                    write[segments] = w;
                }
                segments++;
            }
        }
        pending = null;
    }

    /** Whether the page's segment writes. */
    boolean writes(int segment) {
        return starts == null ? soleWrite : write[segment];
    }

    /** Index of the segment holding page, or -1. */
    int segmentOf(long page) {
        if (starts == null) {
            return segments == 1 && page >= soleFrom && page < soleTo ? 0 : -1;
        }
        int lo = 0;
        int hi = segments - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (ends[mid] <= page) {
                lo = mid + 1;
            } else if (starts[mid] > page) {
                hi = mid - 1;
            } else {
                return mid;
            }
        }
        return -1;
    }

    /** The first page after {@code page} where neededness or write access may change. */
    long nextBoundary(long page) {
        if (starts == null) {
            if (segments == 0) {
                return to;
            }
            return Math.min(to, page < soleFrom ? soleFrom : page < soleTo ? soleTo : to);
        }
        int lo = 0;
        int hi = segments - 1;
        long next = to;
        // the first segment whose end is after page: its start (if after page) or its end is the boundary
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (ends[mid] <= page) {
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        if (lo < segments) {
            next = Math.min(next, starts[lo] > page ? starts[lo] : ends[lo]);
        }
        return next;
    }

    /**
     * The requests of one call, widened to granules ({@code widen}) and merged where they overlap,
     * so that no page is planned twice: intervals sorted by (region id, first page), disjoint.
     *
     * <p>A contiguous request (a plain argument's pages, {@link Placement}) is never widened: the
     * pages around it would land outside its run of frames, and the next window of a tiled launch,
     * which holds them, would find them out of place and copy them again (a stencil's tiles moved
     * 1.6 times their data so). Nor is a duplicating request (a tiled launch's read window, whose
     * holders keep their copies): the pages around it would be moved rather than duplicated, the
     * host's copies of them dropped, so that evicting or dropping them behind the tile (on a device
     * whose tiles keep to the caches) had to copy data nobody wrote home again; the coming tiles'
     * windows ask for them anyway.
     */
    static List<Interval> normalize(List<MigrationRequest> requests, boolean widen) {
        // each request's interval (widened or not) read once: a granule is advice another thread may
        // change meanwhile, and a sort whose keys move under it breaks its contract ("Comparison method
        // violates its general contract!", from a prefetch list while another thread changed the
        // granularity), and a merge that read them again could meet them out of order
        int n = requests.size();
        long[] from = new long[n];
        long[] to = new long[n];
        boolean sorted = true;
        for (int i = 0; i < n; i++) {
            MigrationRequest r = requests.get(i);
            boolean w = widen && !r.contiguous() && !r.duplicate();
            from[i] = w ? r.region().granuleStart(r.from()) : r.from();
            to[i] = w ? r.region().granuleEnd(r.to()) : r.to();
            sorted &= i == 0 || before(requests.get(i - 1), from[i - 1], r, from[i]);
        }
        // sorted by where each interval starts, so that merging only extends ends; a prefetch list
        // usually is in order already (thousands of requests, no sort)
        Integer[] order = null;   // only where a sort is needed: every fault and prefetch batch passes here
        if (!sorted) {
            order = new Integer[n];
            for (int i = 0; i < n; i++) {
                order[i] = i;
            }
            Arrays.sort(order, Comparator.comparingInt((Integer i) -> requests.get(i).region().id())
                    .thenComparingLong(i -> from[i]));
        }
        List<Interval> out = new ArrayList<>(n);
        Interval last = null;
        for (int k = 0; k < n; k++) {
            int i = order == null ? k : order[k];
            MigrationRequest r = requests.get(i);
            if (last == null || last.region != r.region() || from[i] > last.to) {
                last = new Interval(r.region(), from[i], to[i]);
                out.add(last);
            } else {
                last.to = Math.max(last.to, to[i]);
            }
            last.add(r.from(), r.to(), r.write());
        }
        for (Interval iv : out) {
            iv.seal();
        }
        return out;
    }

    /** Whether request {@code a} (its interval starting at {@code aFrom}) sorts no later than {@code b}. */
    private static boolean before(MigrationRequest a, long aFrom, MigrationRequest b, long bFrom) {
        int byRegion = Integer.compare(a.region().id(), b.region().id());
        return byRegion < 0 || (byRegion == 0 && aFrom <= bFrom);
    }

    /** One interval covering [from, to) with nothing requested inside: for operations on a whole range. */
    static List<Interval> wholeRange(RegionState region, long from, long to) {
        Interval whole = new Interval(region, from, to);
        whole.seal();
        return List.of(whole);
    }
}
