package dev.hetmem.host;

import dev.hetmem.observe.HostReleaseEvent;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;

import static dev.hetmem.driver.PageGeometry.BLOCK_PAGES;
import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;
import static dev.hetmem.driver.PageGeometry.PAGE_SHIFT;

/**
 * Host frames of pages that left the host, kept mapped (their contents dead) and handed back to the
 * kernel by the 2 MiB chunk, as THP's deferred split and jemalloc's decay do, instead of one
 * {@code madvise} per 4 KiB page at the moment each page leaves.
 *
 * <h2>Why</h2>
 * Releasing a 4 KiB page of a huge page splits the huge page and costs the kernel a TLB flush and
 * page-table work per page: measured on this kind of machine, a strided copy that releases every
 * source page as it goes runs at 36–56% of a plain copy. Releasing a whole 2 MiB chunk is one call
 * that frees one huge page. And a page that comes back soon is written into its old frame, which
 * is present and warm: no fault, no zeroing.
 *
 * <h2>Policy</h2>
 * <ul>
 *   <li>A chunk whose every page (of its region) left the host goes back at once, in one call, by
 *       the thread that made it so; so does one the host holds no page of once a batch committed
 *       or a drop ended, though not all of its pages left through a kept frame (some never were
 *       the host's, or were dropped: the engine names such chunks, it alone knows), as its whole
 *       2 MiB range ({@link #takeVacatedLocked} says why).</li>
 *   <li>Frames of a partly vacated chunk stay. When all regions' retained bytes pass the budget,
 *       a background thread releases whole chunks, oldest first (by the time their first frame
 *       was retained), down to seven eighths of the budget.</li>
 *   <li>A thread that would retain more while the total is over the budget first waits for the
 *       background release to bring it under: retained bytes pass the budget by at most what the
 *       calls adding at that moment add (one batch where one thread migrates; several side by side,
 *       undo and nested eviction batches among them, add theirs).</li>
 *   <li>{@link #trim()}, a region's {@link Owner#close()} (its free), and a budget of 0 release
 *       at once; with a budget of 0 nothing is ever retained (the behaviour before chunks).</li>
 * </ul>
 *
 * <h2>State and invariants</h2>
 * All of it is guarded by this object's monitor (lock L24 in docs/design.md's lock table).
 * <pre>
 *   Owner (one per region)                       this (one per memory)
 *   ┌───────────────────────────────┐            ┌──────────────────────────────────┐
 *   │ chunks: index → Chunk         │──────────▶ │ oldestFirst: Chunk, insertion    │
 *   │   Chunk.bits: 512-bit mask of │            │   order = age of its first frame │
 *   │   pages whose frame is kept   │            │ retained = Σ owners' bytes       │
 *   │ inFlight: masks being released│           │ inFlightBytes ⊆ retained         │
 *   │ bytes = (Σ bits + Σ inFlight)·4096│        └──────────────────────────────────┘
 *   └───────────────────────────────┘
 * </pre>
 * <ol>
 *   <li>A page with its bit set, or in an in-flight mask, is not resident on the host: its frame
 *       holds nothing anyone may read. The engine clears the bit ({@link Owner#reuse}; for a
 *       batch's runs at once, {@link Owner#reuseAll}) before it writes the page's frame again and
 *       before it drops the frame ({@link Owner#forget}); a page
 *       that becomes the host's with no copy home (a fresh page) loses its bit, and its old frame,
 *       when the host side is synced ({@link Owner#takeBackStale}).</li>
 *   <li>No frame of an in-flight mask is written until its release returned: {@code reuse} and
 *       {@code forget} wait for in-flight masks that cover their pages. Otherwise a
 *       {@code madvise} landing after the copy home would throw the copied bytes away.</li>
 *   <li>An owner's mapping is unmapped only after {@link Owner#close()} returned, which waits for
 *       its in-flight releases: no release ever reaches an address that was unmapped (and maybe
 *       mapped again for another region).</li>
 * </ol>
 * Who ends the waits: the background thread, which takes no other lock and waits for nothing but
 * this monitor and the kernel; a thread releasing a whole chunk it just vacated, or trimming, which
 * may hold block locks (L6) but takes its chunks and releases them with no wait in between. So a
 * caller may wait here while it holds block locks.
 */
public final class RetainedFrames implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(RetainedFrames.class.getName());

    /** What a budget of this many bytes means: retain nothing, release at once. */
    public static final long RELEASE_AT_ONCE = 0;

    private static final long[] EMPTY = new long[0];

    private final long budget;
    private final long lowWater;
    private final LinkedHashSet<Chunk> oldestFirst = new LinkedHashSet<>();
    private final java.util.Set<Owner> live = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
    private long retained;
    private long inFlightBytes;
    private Thread releaser;
    private boolean closed;

    /** @param budget bytes of retained frames over all regions before the oldest go; 0: none are kept */
    public RetainedFrames(long budget) {
        if (budget < 0) {
            throw new IllegalArgumentException("host retained budget " + budget + " bytes is negative (0 releases at once)");
        }
        this.budget = budget;
        this.lowWater = budget - budget / 8;
    }

    /** The budget this was built with, in bytes. */
    public long budget() {
        return budget;
    }

    /** A region's share: its mapping, {@code pages} long. */
    public Owner register(HostMapping mapping, long pages) {
        Owner o = new Owner(mapping, pages);
        synchronized (this) {
            live.add(o);
        }
        return o;
    }

    private List<Owner> owners() {
        assert Thread.holdsLock(this);
        return new ArrayList<>(live);
    }

    /** Bytes of frames kept for all regions now (including those being released). */
    public synchronized long retainedBytes() {
        return retained;
    }

    /**
     * Releases every kept frame now, on the calling thread, and waits for the releases that were in
     * progress when it began (not for later ones, which could keep it waiting for good): on return
     * nothing that was kept at the call is kept any more.
     */
    public void trim() {
        List<InFlight> all = new ArrayList<>();
        List<InFlight> earlier = new ArrayList<>();
        synchronized (this) {
            for (Owner o : owners()) {
                for (List<InFlight> l : o.inFlight.values()) {
                    earlier.addAll(l);
                }
            }
            for (Chunk c : oldestFirst) {
                all.add(takeLocked(c));
            }
            oldestFirst.clear();
        }
        releaseAll(all, "trim");
        // only the releases in progress when the call began: later ones would starve it
        boolean interrupted = false;
        synchronized (this) {
            for (InFlight f : earlier) {
                while (!f.done) {
                    interrupted |= waitLocked();
                }
            }
        }
        restoreInterrupt(interrupted);
    }

    /** Stops the background thread; called once every region is freed. */
    @Override
    public void close() {
        Thread t;
        synchronized (this) {
            closed = true;
            t = releaser;
            notifyAll();
        }
        if (t != null) {
            // through an interrupt (kept): a release still running after this returns could reach memory
            // mapped anew at the same addresses
            dev.hetmem.internal.Uninterruptibly.join(t, 0);
        }
    }

    /** One region's retained frames. Every method may block on the background release of its own pages. */
    public final class Owner {
        private final HostMapping mapping;
        private final long pages;
        private final Map<Long, Chunk> chunks = new HashMap<>();
        /** Releases in progress by chunk index (a chunk can be in flight twice: taken, retained again, taken again). */
        private final Map<Long, List<InFlight>> inFlight = new HashMap<>();
        private long bytes;
        private boolean closed;

        private Owner(HostMapping mapping, long pages) {
            this.mapping = mapping;
            this.pages = pages;
        }

        /**
         * Frames of (offset, length) byte pairs in [0, 2*count) left the host: keep them, release
         * the chunks this empties, and wake the background release if the budget is passed.
         */
        public void retain(long[] ranges, int count) {
            retain(ranges, count, EMPTY, 0);
        }

        /**
         * {@link #retain(long[], int)}, where the chunks {@code vacated[0..vacatedCount)} (by index)
         * hold no page of the host any more (the caller holds their blocks' locks until this
         * returns): those that keep frames go back at once too, whole, whether or not every one of
         * their pages left through a kept frame. {@code count} may be 0 (a drop's last host pages).
         */
        public void retain(long[] ranges, int count, long[] vacated, int vacatedCount) {
            if (budget == RELEASE_AT_ONCE) {
                mapping.releaseAll(ranges, count);
                return;
            }
            List<InFlight> whole = new ArrayList<>(1);
            boolean interrupted = false;
            Throwable startFailure = null;
            synchronized (RetainedFrames.this) {
                assert !closed : "frames retained for a region whose mapping is going";   // a freed region has drained
                while (count > 0 && retained > budget && !RetainedFrames.this.closed) {   // adding nothing: no wait
                    wakeReleaserLocked();
                    interrupted |= waitLocked();
                }
                Chunk last = null;
                for (int i = 0; i < count; i++) {
                    long first = ranges[2 * i] >>> PAGE_SHIFT;
                    long end = first + (ranges[2 * i + 1] >>> PAGE_SHIFT);
                    for (long p = first; p < end; p++) {
                        long index = p / BLOCK_PAGES;
                        Chunk c = last != null && last.index == index ? last : chunks.get(index);
                        if (c == null) {
                            c = new Chunk(this, index);
                            chunks.put(index, c);
                            oldestFirst.add(c);
                        }
                        last = c;
                        if (c.set((int) (p % BLOCK_PAGES))) {
                            bytes += PAGE_BYTES;
                            retained += PAGE_BYTES;
                        }
                        if (c.pages == pagesIn(index) && (p + 1 == end || (p + 1) % BLOCK_PAGES == 0)) {
                            chunks.remove(index);
                            oldestFirst.remove(c);
                            whole.add(takeLocked(c));
                            last = null;
                        }
                    }
                }
                for (int i = 0; i < vacatedCount; i++) {
                    Chunk c = chunks.get(vacated[i]);   // absent: taken whole above, or by a release meanwhile
                    if (c != null) {
                        oldestFirst.remove(c);
                        whole.add(takeVacatedLocked(c));   // takes it out of chunks
                    }
                }
                if (retained > budget) {
                    try {
                        wakeReleaserLocked();
                    } catch (RuntimeException | Error e) {
                        // no thread could start (out of native threads): the whole chunks taken above
                        // are still released below, else every later use of their pages would wait
                        // for their release for good; the failure is thrown after
                        startFailure = e;
                    }
                }
            }
            restoreInterrupt(interrupted);
            releaseAll(whole, "whole chunk");
            if (startFailure instanceof Error e) {
                throw e;
            }
            if (startFailure != null) {
                throw (RuntimeException) startFailure;
            }
        }

        /**
         * Pages [page, page+count) are about to be written on the host again (a copy home): their
         * frames are no longer retained. Waits while a release of any of them is in progress.
         */
        public void reuse(long page, long count) {
            takeBack(page, count, false);
        }

        /** {@link #reuse} of pages [firstPages[i], firstPages[i]+counts[i]) for each i below {@code n}, under one hold of the lock. */
        public void reuseAll(long[] firstPages, int[] counts, int n) {
            boolean interrupted = false;
            synchronized (RetainedFrames.this) {
                for (int i = 0; i < n && bytes != 0; i++) {
                    long page = firstPages[i];
                    long end = page + counts[i];
                    while (inFlightCovers(page, end)) {
                        interrupted |= waitLocked();
                    }
                    clearLocked(page, end);
                }
            }
            restoreInterrupt(interrupted);
        }

        /**
         * Pages [page, page+count) became the host's without a copy home (a fresh page, or one a
         * device held as zeros nobody wrote): frames of theirs still kept, or released while the
         * call waited, are no longer kept, and are returned as (first page, count) pairs, so that the
         * caller drops them to read zeros (a kept frame holds old bytes). Usually returns an empty
         * array: a copy home has already taken its frames back ({@link #reuse}).
         */
        public long[] takeBackStale(long page, long count) {
            return takeBack(page, count, true);
        }

        /** {@link #reuse} and {@link #takeBackStale}: the latter ({@code stale}) also says which frames held old bytes. */
        private long[] takeBack(long page, long count, boolean stale) {
            boolean interrupted = false;
            long[] out = EMPTY;
            synchronized (RetainedFrames.this) {
                if (bytes == 0) {
                    return EMPTY;
                }
                boolean wasInFlight = false;
                while (inFlightCovers(page, page + count)) {
                    wasInFlight = true;
                    interrupted |= waitLocked();
                }
                if (stale) {
                    out = keptOrReleased(page, count, wasInFlight);
                }
                clearLocked(page, page + count);
            }
            restoreInterrupt(interrupted);
            return out;
        }

        /** (first page, count) pairs of the kept pages of [page, page+count), or all of it where a release was waited for. */
        private long[] keptOrReleased(long page, long count, boolean released) {
            java.util.BitSet hit = new java.util.BitSet();
            if (released) {
                hit.set(0, (int) count);   // released with FREE it may still read old bytes: drop it too
            } else {
                Chunk c = null;
                for (long p = page; p < page + count; p++) {
                    long index = p / BLOCK_PAGES;
                    if (c == null || c.index != index) {
                        c = chunks.get(index);
                    }
                    if (c != null && c.isSet((int) (p % BLOCK_PAGES))) {
                        hit.set((int) (p - page));
                    }
                }
            }
            if (hit.isEmpty()) {
                return EMPTY;
            }
            List<Long> pairs = new ArrayList<>();
            for (int i = hit.nextSetBit(0); i >= 0; ) {
                int j = hit.nextClearBit(i);
                pairs.add(page + i);
                pairs.add((long) (j - i));
                i = hit.nextSetBit(j);
            }
            return pairs.stream().mapToLong(Long::longValue).toArray();
        }

        /** Pages [page, page+count) are about to lose their frames by other means (discarded): forget them. */
        public void forget(long page, long count) {
            reuse(page, count);
        }

        /** Bytes of this region's frames retained now. */
        public long bytes() {
            synchronized (RetainedFrames.this) {
                return bytes;
            }
        }

        /** Whether page {@code page}'s frame is retained or being released (for verify()). */
        public boolean isRetained(long page) {
            return anyRetained(page, 1);
        }

        /** Whether any page of [page, page+count) has its frame retained or being released (verify(), assertions). */
        public boolean anyRetained(long page, long count) {
            synchronized (RetainedFrames.this) {
                for (long p = page; p < page + count; p++) {
                    Chunk c = chunks.get(p / BLOCK_PAGES);
                    if (c != null && c.isSet((int) (p % BLOCK_PAGES))) {
                        return true;
                    }
                }
                return inFlightCovers(page, page + count);
            }
        }

        /**
         * The region is being freed: its frames go with its mapping, so forget them, and wait for
         * releases in progress (after this returns the mapping may be unmapped).
         */
        public void close() {
            boolean interrupted = false;
            synchronized (RetainedFrames.this) {
                closed = true;
                for (Chunk c : chunks.values()) {
                    oldestFirst.remove(c);
                    retained -= (long) c.pages << PAGE_SHIFT;
                    bytes -= (long) c.pages << PAGE_SHIFT;
                }
                chunks.clear();
                while (!inFlight.isEmpty()) {
                    interrupted |= waitLocked();
                }
                live.remove(this);
                RetainedFrames.this.notifyAll();
            }
            restoreInterrupt(interrupted);
        }

        private long pagesIn(long index) {
            return Math.min(BLOCK_PAGES, pages - index * BLOCK_PAGES);
        }

        private boolean inFlightCovers(long from, long to) {
            if (inFlight.isEmpty()) {
                return false;
            }
            for (long index = from / BLOCK_PAGES; index <= (to - 1) / BLOCK_PAGES; index++) {
                List<InFlight> list = inFlight.get(index);
                if (list == null) {
                    continue;
                }
                long start = index * BLOCK_PAGES;
                for (InFlight f : list) {
                    for (long p = Math.max(from, start); p < Math.min(to, start + BLOCK_PAGES); p++) {
                        int bit = (int) (p - start);
                        if ((f.bits[bit >>> 6] & (1L << bit)) != 0) {
                            return true;
                        }
                    }
                }
            }
            return false;
        }

        private void clearLocked(long from, long to) {
            long freed = 0;
            for (long p = from; p < to; ) {
                long index = p / BLOCK_PAGES;
                long chunkEnd = Math.min(to, (index + 1) * BLOCK_PAGES);
                Chunk c = chunks.get(index);
                if (c != null) {
                    for (long q = p; q < chunkEnd; q++) {
                        if (c.clear((int) (q % BLOCK_PAGES))) {
                            freed += PAGE_BYTES;
                        }
                    }
                    if (c.pages == 0) {
                        chunks.remove(index);
                        oldestFirst.remove(c);
                    }
                }
                p = chunkEnd;
            }
            if (freed > 0) {
                bytes -= freed;
                retained -= freed;
                RetainedFrames.this.notifyAll();   // a retain may be waiting for the total to drop
            }
        }
    }

    /** The kept frames of one 2 MiB chunk of one region. */
    private static final class Chunk {
        final Owner owner;
        final long index;
        final long[] bits = new long[BLOCK_PAGES / 64];
        int pages;

        Chunk(Owner owner, long index) {
            this.owner = owner;
            this.index = index;
        }

        boolean set(int bit) {
            long m = 1L << bit;
            if ((bits[bit >>> 6] & m) != 0) {
                return false;
            }
            bits[bit >>> 6] |= m;
            pages++;
            return true;
        }

        boolean clear(int bit) {
            long m = 1L << bit;
            if ((bits[bit >>> 6] & m) == 0) {
                return false;
            }
            bits[bit >>> 6] &= ~m;
            pages--;
            return true;
        }

        boolean isSet(int bit) {
            return (bits[bit >>> 6] & (1L << bit)) != 0;
        }
    }

    /** A chunk's frames on their way back to the kernel: taken out of {@code oldestFirst}, still counted. */
    private static final class InFlight {
        final Owner owner;
        final long index;
        final long[] bits;
        final long bytes;
        /** Set under the monitor once the release returned (trim waits for the ones it saw). */
        boolean done;

        InFlight(Owner owner, long index, long[] bits, long bytes) {
            this.owner = owner;
            this.index = index;
            this.bits = bits;
            this.bytes = bytes;
        }
    }

    private InFlight takeLocked(Chunk c) {
        assert Thread.holdsLock(this);
        long b = (long) c.pages << PAGE_SHIFT;
        InFlight f = new InFlight(c.owner, c.index, c.bits.clone(), b);
        c.owner.chunks.remove(c.index);
        c.owner.inFlight.computeIfAbsent(c.index, k -> new ArrayList<>(1)).add(f);
        inFlightBytes += b;
        return f;
    }

    /**
     * {@link #takeLocked} of a chunk the host holds no page of (its blocks locked by the caller,
     * which releases it before it lets them go): its whole range goes back, not only its kept
     * frames. The others are dead too: pages that never were the host's read as zeros (or were
     * never backed), and the frames of dropped pages were zeroed when they were dropped. But a
     * transparent huge page backs the whole chunk from its first write, and releasing only the kept
     * part would split it and leave the rest, zeros, mapped for good. Counted as its kept bytes; the
     * in-flight mask covers the whole chunk, so a page of it written again (none can be, while the
     * caller holds the block) waits for the release.
     */
    private InFlight takeVacatedLocked(Chunk c) {
        assert Thread.holdsLock(this);
        InFlight f = takeLocked(c);
        long n = c.owner.pagesIn(c.index);
        for (int w = 0; w < f.bits.length; w++) {
            long from = (long) w << 6;
            f.bits[w] = n >= from + 64 ? -1L : n > from ? (1L << (n - from)) - 1 : 0;
        }
        return f;
    }

    /** Releases {@code list} on the calling thread (no lock held), one call per region, then counts them done. */
    private void releaseAll(List<InFlight> list, String why) {
        if (list.isEmpty()) {
            return;
        }
        HostReleaseEvent event = new HostReleaseEvent();
        event.begin();
        try {
            Map<Owner, List<InFlight>> byOwner = new java.util.IdentityHashMap<>(2);
            for (InFlight f : list) {
                byOwner.computeIfAbsent(f.owner, k -> new ArrayList<>()).add(f);
            }
            for (Map.Entry<Owner, List<InFlight>> e : byOwner.entrySet()) {
                try {
                    event.ranges += release(e.getKey().mapping, e.getValue());
                } catch (RuntimeException | Error failed) {
                    // the frames stay mapped with dead contents: harmless; the others still go
                    LOG.log(System.Logger.Level.WARNING, "releasing kept host frames (" + why + ") failed", failed);
                }
            }
        } finally {
            long retainedAfter;
            synchronized (this) {
                for (InFlight f : list) {
                    List<InFlight> l = f.owner.inFlight.get(f.index);
                    l.remove(f);
                    if (l.isEmpty()) {
                        f.owner.inFlight.remove(f.index);
                    }
                    f.done = true;
                    f.owner.bytes -= f.bytes;
                    retained -= f.bytes;
                    inFlightBytes -= f.bytes;
                }
                notifyAll();
                retainedAfter = retained;
            }
            // committed outside the monitor: a recording's work does not hold up retainers and releases
            if (event.shouldCommit()) {
                event.reason = why;
                event.chunks = list.size();
                for (InFlight f : list) {
                    event.bytes += f.bytes;
                }
                event.retainedAfter = retainedAfter;
                event.commit();
            }
        }
    }

    /**
     * One madvise call (batched through process_madvise where the kernel has it) for the frames of
     * {@code chunks}, one region's; returns how many address ranges it took.
     */
    private static int release(HostMapping mapping, List<InFlight> chunks) {
        long[] ranges = new long[32];
        int n = 0;
        for (InFlight f : chunks) {
            long base = f.index * BLOCK_PAGES;
            int bit = 0;
            while (bit < BLOCK_PAGES) {
                if ((f.bits[bit >>> 6] & (1L << bit)) == 0) {
                    bit++;
                    continue;
                }
                int start = bit;
                while (bit < BLOCK_PAGES && (f.bits[bit >>> 6] & (1L << bit)) != 0) {
                    bit++;
                }
                long offset = (base + start) << PAGE_SHIFT;
                long length = (long) (bit - start) << PAGE_SHIFT;
                if (n > 0 && ranges[2 * n - 2] + ranges[2 * n - 1] == offset) {
                    // adjacent to the last (the chunks a batch vacated come in order): one range, so that the
                    // kernel walks and flushes the TLB once for it, not once per 2 MiB (16 flushes for a
                    // 32 MiB batch cost 0.9 ms of a 2.6 ms batch against one)
                    ranges[2 * n - 1] += length;
                    continue;
                }
                if (2 * n + 2 > ranges.length) {
                    ranges = java.util.Arrays.copyOf(ranges, ranges.length * 2);
                }
                ranges[2 * n] = offset;
                ranges[2 * n + 1] = length;
                n++;
            }
        }
        mapping.releaseAll(ranges, n);
        return n;
    }

    private void wakeReleaserLocked() {
        assert Thread.holdsLock(this);
        if (releaser == null && !closed) {
            releaser = Thread.ofPlatform().daemon().name("hetmem-host-release").start(this::releaseLoop);
        }
        notifyAll();
    }

    /**
     * The background release: oldest chunks first, from above the budget down to its low-water mark.
     * If the thread ends by surprise (an error its release did not catch), the next wake starts another:
     * retainers wait for it.
     */
    private void releaseLoop() {
        try {
            while (true) {
                List<InFlight> batch = new ArrayList<>();
                synchronized (this) {
                    while (!closed && retained - inFlightBytes <= budget) {
                        waitLocked();   // nobody interrupts this thread: close() sets closed and notifies
                    }
                    if (closed) {
                        return;
                    }
                    for (Iterator<Chunk> it = oldestFirst.iterator(); it.hasNext() && retained - inFlightBytes > lowWater; ) {
                        Chunk c = it.next();
                        it.remove();
                        batch.add(takeLocked(c));
                    }
                }
                releaseAll(batch, "over budget");
            }
        } finally {
            synchronized (this) {
                if (releaser == Thread.currentThread()) {
                    releaser = null;
                }
                notifyAll();
            }
        }
    }

    /** Waits on the monitor; returns whether the wait was interrupted (the caller goes on waiting, and says so at the end). */
    private boolean waitLocked() {
        try {
            wait();
            return false;
        } catch (InterruptedException e) {
            return true;   // the waits here end when a release finishes, which needs no help from the waiter
        }
    }

    private static void restoreInterrupt(boolean interrupted) {
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }
}
