package dev.hetmem;

import dev.hetmem.driver.PageGeometry;
import dev.hetmem.internal.Pins;
import dev.hetmem.internal.RegionState;
import dev.hetmem.migrate.MigrationEngine;
import dev.hetmem.migrate.MigrationRequest;
import dev.hetmem.observe.FaultEvent;
import dev.hetmem.pagetable.Block;

import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Objects;

import static dev.hetmem.driver.PageGeometry.BLOCK_PAGE_SHIFT;
import static dev.hetmem.driver.PageGeometry.BLOCK_PAGES;

/**
 * A range of the unified address space shared by the host and every device (GMEM's peer-shared
 * VMA). Reserved, not populated: pages come into being zero-filled where they are first touched,
 * and move to where they are used. Offsets and lengths are bytes from the region's start.
 *
 * <p>Thread-safe. {@link #free()} closes the calling thread's host views of the region (as
 * {@code Arena.close()} invalidates its segments), refuses while other threads hold views, and
 * waits for running kernels (at most the memory's {@code closeTimeout}, then fails loudly, freeing
 * nothing).
 *
 * <p>Ranges are checked the same way everywhere: a negative offset, or a range that reaches past
 * {@link #size()}, throws {@link IndexOutOfBoundsException}; a length of 0 or less throws
 * {@link IllegalArgumentException} (only {@link #host} and {@link #snapshot} accept 0). Use after the region, or the
 * part of it a call reaches, was freed throws {@link IllegalStateException}.
 *
 * <pre>{@code
 * try (Region r = mem.allocate(64L << 20)) {
 *     r.advise(0, r.size(), Advice.prefetch(1));
 *     PageSnapshot where = r.snapshot(0, r.size());
 * }
 * }</pre>
 */
public final class Region implements AutoCloseable {
    private final UnifiedMemory memory;
    private final RegionState state;

    Region(UnifiedMemory memory, RegionState state) {
        this.memory = memory;
        this.state = state;
    }

    RegionState state() {
        return state;
    }

    /**
     * The memory this region belongs to.
     *
     * @return the memory that allocated this region
     */
    public UnifiedMemory memory() {
        return memory;
    }

    /**
     * The region's number within its memory, as shown in messages, statistics and JFR events.
     *
     * @return a positive id, unique among the memory's regions and never reused
     */
    public int id() {
        return state.id();
    }

    /**
     * Size in bytes, as allocated.
     *
     * @return the region's size in bytes, unchanged by partial frees
     */
    public long size() {
        return state.size();
    }

    /**
     * The region's host address: what native code is given. With userfaultfd host faults, any
     * load or store there works wherever the page is; with host views, only pages under an open
     * view may be touched.
     *
     * @return the address of the region's first byte
     * @throws IllegalStateException if the region is freed
     */
    public long address() {
        state.lifecycle().checkOpen();
        return state.host().address();
    }

    /**
     * The whole region as one segment, for memories built with {@link HostFaultMode#USERFAULTFD}:
     * a load or store of a page that is on a device waits while the native fault service brings its
     * granule home. Valid until the region is freed (then accesses throw). Accesses that race the
     * free itself (another thread's {@link #free()}, or the memory's close) may instead read zeros
     * and have their stores dropped, until the segment closes: the fault service answers the faults
     * of a region being freed with zero pages, so that no thread stays blocked in a fault and the
     * segment can close. Pass the segment itself (or a slice), never its bare address, to native
     * code: the call then holds the segment open, and a free waits for it (up to a minute) rather
     * than unmap the memory under it.
     *
     * @return a segment of {@link #size()} bytes at {@link #address()}
     * @throws IllegalStateException for a memory that uses host views, or a freed region
     */
    public MemorySegment segment() {
        state.lifecycle().checkOpen();   // first: a freed region says so, whatever its host side would
        return state.host().segment(this);   // throws where host code must use views
    }

    /**
     * The granularity faults migrate at, for the page at {@code offset}.
     *
     * @param offset a byte of the region, in [0, {@link #size()})
     * @return the granule size in bytes: the region's granularity at allocation, or what
     *         {@link Advice#granularity} set for that page
     * @throws IndexOutOfBoundsException if {@code offset} is outside the region
     */
    public long granularity(long offset) {
        Checks.range(offset, 1, size(), this);
        state.lifecycle().checkOpen();
        return state.attributes().at(offset >>> PageGeometry.PAGE_SHIFT).granuleBytes();
    }

    /**
     * Whether the page at {@code offset} is read-only.
     *
     * @param offset a byte of the region, in [0, {@link #size()})
     * @return {@link Protection#READ_ONLY} if {@link #protect} made the page read-only, else
     *         {@link Protection#READ_WRITE}
     * @throws IndexOutOfBoundsException if {@code offset} is outside the region
     */
    public Protection protection(long offset) {
        Checks.range(offset, 1, size(), this);
        state.lifecycle().checkOpen();
        return state.attributes().at(offset >>> PageGeometry.PAGE_SHIFT).readOnly() ? Protection.READ_ONLY : Protection.READ_WRITE;
    }

    /**
     * Brings [offset, offset+length) home (whole granules where possible), pins it on the host
     * while the view is open, and returns the view. A write view of a read-only range throws
     * {@link ProtectionException}.
     *
     * <p>A view of 0 bytes is allowed at any offset in [0, {@link #size()}]: it pins nothing and
     * waits for nothing. Otherwise waits while a running kernel holds the pages on its device. Pages a
     * device maps in place (host memory it reaches directly: {@link Advice#accessedBy}, or a block
     * thrashing control keeps home) are at home already, and the view does not wait for a kernel
     * using them so, nor such a kernel for the view: both reach the same bytes at once, as a CPU
     * thread and a device do on memory both map (the program orders their accesses).
     *
     * @param offset the view's first byte, as a region offset
     * @param length the view's size in bytes; 0 or more
     * @param access {@link Access#READ}, {@link Access#WRITE} or {@link Access#READ_WRITE}
     * @return an open view, to be closed by the thread that opened it
     * @throws IllegalArgumentException for {@link Access#EXCLUSIVE} or a negative length
     * @throws IndexOutOfBoundsException if the range is outside the region
     * @throws ProtectionException if {@code access} writes and a page of the range is read-only
     * @throws IllegalStateException if the memory is closed, or the region or part of the range freed
     */
    public HostView host(long offset, long length, Access access) {
        Objects.requireNonNull(access, "access");
        if (access == Access.EXCLUSIVE) {
            throw new IllegalArgumentException("a host view takes READ, WRITE or READ_WRITE; EXCLUSIVE is for kernel arguments");
        }
        if (length == 0) {
            if (offset < 0 || offset > size()) {
                throw new IndexOutOfBoundsException("offset " + offset + " of an empty view is outside [0, " + size()
                        + "] (" + this + ")");
            }
            // a view of nothing (a tensor of size 0): no page to bring home, nothing pinned
            memory.checkOpen();
            state.lifecycle().checkOpen();
            return HostView.empty(state, offset, access);
        }
        Checks.range(offset, length, size(), this);
        memory.checkOpen();
        long from = offset >>> PageGeometry.PAGE_SHIFT;
        long to = Math.ceilDiv(offset + length, PageGeometry.PAGE_BYTES);
        state.refuseFreed(from, to, "a host view");
        if (access.writes()) {
            long ro = state.attributes().firstReadOnly(from, to);
            if (ro >= 0) {
                throw new ProtectionException("write view of [" + offset + ", " + (offset + length) + ") of " + this
                        + " refused: page at offset " + (ro << PageGeometry.PAGE_SHIFT) + " is read-only");
            }
        }
        state.lifecycle().enter();
        try {
            FaultEvent event = new FaultEvent();
            event.begin();
            MigrationEngine.Outcome out = memory.engine().ensure(
                    List.of(new MigrationRequest(state, from, to, access.writes())), 0, Trigger.FAULT,
                    MigrationEngine.Pinning.PIN, MigrationEngine.FROM_ANY_NODE);
            Pins.Pin pin = out.pins().getFirst();
            // everything after the pin inside the try that lets it go: an Error in the counters or the
            // event left a pin no view owned, which nothing released
            try {
                if (out.faults() > 0) {
                    state.counters().fault(0, out.faults());
                    memory.counters().fault(0, out.faults());
                    if (event.shouldCommit()) {
                        event.path = FaultEvent.HOST_VIEW;
                        event.node = 0;
                        event.region = id();
                        event.offset = offset;
                        event.length = length;
                        event.faults = out.faults();
                        event.pagesMigrated = out.pagesMigrated();
                        event.commit();
                    }
                }
                HostView view = new HostView(state, offset, length, access, pin);
                state.lifecycle().openView(view);
                return view;
            } catch (RuntimeException | Error e) {
                state.unpin(pin);
                throw e;
            }
        } finally {
            state.lifecycle().exit();
        }
    }

    /**
     * The attributes of [offset, offset+length), each reported as mixed where the pages disagree.
     *
     * @param offset the range's first byte
     * @param length the range's size in bytes; positive
     * @return the granularity, protection, read-mostly setting, preferred location and current
     *         location of the whole pages the range touches
     */
    public RangeInfo attributes(long offset, long length) {
        Checks.range(offset, length, size(), this);
        state.lifecycle().checkOpen();
        long from = offset >>> PageGeometry.PAGE_SHIFT;
        long to = Math.ceilDiv(offset + length, PageGeometry.PAGE_BYTES);
        Uniform granule = new Uniform();
        Uniform readOnly = new Uniform();
        Uniform readMostly = new Uniform();
        Uniform preferred = new Uniform();
        state.attributes().forEach(from, to, (a, b, attrs) -> {
            granule.see(attrs.granuleBytes());
            readOnly.see(attrs.readOnly() ? 1 : 0);
            readMostly.see(attrs.readMostly() ? 1 : 0);
            preferred.see(attrs.preferred());
        });
        Uniform location = residency(from, to);
        int mask = (int) location.value;
        int loc = location.mixed || Integer.bitCount(mask) > 1 ? RangeInfo.MIXED
                : mask == 0 ? RangeInfo.NONE : Integer.numberOfTrailingZeros(mask);
        return new RangeInfo(granule.mixed ? RangeInfo.MIXED : granule.value,
                readOnly.mixed ? null : readOnly.value == 1 ? Protection.READ_ONLY : Protection.READ_WRITE,
                readMostly.mixed ? null : readMostly.value == 1,
                preferred.mixed ? RangeInfo.MIXED : (int) preferred.value, loc);
    }

    /**
     * Whether every page of [from, to) has the same holders, and which: block by block, each under
     * its lock, stopping at the first difference. No per-page array (a snapshot of a terabyte
     * region is 1.3 GB of them), and a block never touched holds its pages nowhere.
     */
    private Uniform residency(long from, long to) {
        memory.engine().reconcileAll(state);
        Uniform location = new Uniform();
        for (long page = from; page < to && !location.mixed; ) {
            long bi = page >>> BLOCK_PAGE_SHIFT;
            long end = Math.min(to, (bi + 1) << BLOCK_PAGE_SHIFT);
            Block b = state.table().block(bi);
            if (b == null) {
                location.see(0);
            } else {
                b.lock.lock();
                try {
                    for (long p = page; p < end && !location.mixed; p++) {
                        location.see(b.residentMask((int) (p & (BLOCK_PAGES - 1))));
                    }
                } finally {
                    b.lock.unlock();
                }
            }
            page = end;
        }
        return location;
    }

    /** Whether every value seen was the same, and which. */
    private static final class Uniform {
        boolean seen;
        boolean mixed;
        long value;

        void see(long v) {
            if (!seen) {
                seen = true;
                value = v;
            } else if (v != value) {
                mixed = true;
            }
        }
    }

    /**
     * Where each page of [offset, offset+length) is right now.
     *
     * @param offset the range's first byte; the snapshot starts at its page
     * @param length the range's size in bytes; 0 gives an empty snapshot (offset within [0, size()])
     * @return the residency of every 4 KiB page the range touches
     * @throws IllegalArgumentException if the range holds more pages than an array can
     */
    public PageSnapshot snapshot(long offset, long length) {
        if (length == 0) {
            if (offset < 0 || offset > size()) {
                throw new IndexOutOfBoundsException("offset " + offset + " of an empty snapshot is outside [0, " + size()
                        + "] (" + this + ")");
            }
            state.lifecycle().checkOpen();
            // a tensor of size 0; its offset is page-aligned, as every snapshot's
            return new PageSnapshot(offset & -PageGeometry.PAGE_BYTES, new int[0], new byte[0], new java.util.BitSet());
        }
        Checks.range(offset, length, size(), this);
        state.lifecycle().checkOpen();
        memory.engine().reconcileAll(state);
        long from = offset >>> PageGeometry.PAGE_SHIFT;
        long to = Math.ceilDiv(offset + length, PageGeometry.PAGE_BYTES);
        long n = to - from;
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("snapshot of " + n + " pages is more than one array holds (" + (Integer.MAX_VALUE - 8)
                    + " pages); take it in parts");
        }
        int[] masks = new int[(int) n];
        byte[] writers = new byte[(int) n];
        long page = from;
        while (page < to) {
            long bi = page >>> BLOCK_PAGE_SHIFT;
            long end = Math.min(to, (bi + 1) << BLOCK_PAGE_SHIFT);
            Block b = state.table().block(bi);
            if (b == null) {
                for (long p = page; p < end; p++) {
                    writers[(int) (p - from)] = -1;
                }
            } else {
                b.lock.lock();
                try {
                    for (long p = page; p < end; p++) {
                        int i = (int) (p & (BLOCK_PAGES - 1));
                        masks[(int) (p - from)] = b.residentMask(i);
                        // a protected page has no writer, whatever the page table's write bit says
                        // (protection is an attribute over the residency, not a residency change)
                        writers[(int) (p - from)] = (byte) (state.attributes().at(p).readOnly() ? -1 : b.writer(i));
                    }
                } finally {
                    b.lock.unlock();
                }
            }
            page = end;
        }
        java.util.BitSet freed = new java.util.BitSet();
        state.attributes().forEach(from, to, (a, b, attrs) -> {
            if (attrs.freed()) {
                freed.set((int) (a - from), (int) (b - from));
            }
        });
        return new PageSnapshot(from << PageGeometry.PAGE_SHIFT, masks, writers, freed);
    }

    /**
     * Whether every page of [offset, offset+length) is still held exclusively by device
     * {@code node} for its atomics (a launch argument with {@link Access#EXCLUSIVE}): false once
     * the host touched any of them, another device reached them, or they were made read-only.
     *
     * @param offset the range's first byte
     * @param length the range's size in bytes; positive
     * @param node   the device node, 1..n
     * @return true if {@code node} still holds every page of the range exclusively
     * @throws IllegalArgumentException if {@code node} is not a device of this memory
     */
    public boolean isExclusive(long offset, long length, int node) {
        Checks.range(offset, length, size(), this);
        memory.device(node);
        return state.lifecycle().within(() -> length > 0 && memory.engine().isExclusive(state,
                offset >>> PageGeometry.PAGE_SHIFT, Math.ceilDiv(offset + length, PageGeometry.PAGE_BYTES), node));
    }

    /**
     * Applies advice to exactly [offset, offset+length) (see {@link Advice}). A prefetch or
     * {@code dontNeed} is done when this returns; the other advice changes the range's attributes,
     * which later migrations follow.
     *
     * @param offset the range's first byte
     * @param length the range's size in bytes; positive
     * @param advice what to apply; not null
     * @throws IllegalArgumentException for a node that is not in this memory (or the host, for
     *         {@link Advice#accessedBy}), or a granularity that is not a power of two from 4 KiB to
     *         1 GiB
     */
    public void advise(long offset, long length, Advice advice) {
        memory.advise(this, offset, length, advice);
    }

    /**
     * Makes [offset, offset+length) read-only or writable again, on the host and on every device.
     * Whole pages are affected: every 4 KiB page the range touches. Making pages read-only ends a
     * device's exclusive hold on them ({@link Access#EXCLUSIVE}). Host views opened later follow the
     * protection (a write view of a read-only page is refused); in {@link HostFaultMode#HOST_VIEWS}
     * mode a write view open already keeps its writable segment until it closes, so close such views
     * first where the range must not change. The same holds for kernels: a launch that gets its
     * pages after this returns is refused if it writes the range (also one that was waiting for them
     * when the protection changed), but one running already with a written argument over the range
     * is not waited for: its stores may still land after this returns, so let such kernels end first
     * where the range must not change. A launch that runs by device faults fails at its next write
     * fault in the range.
     *
     * @param offset     the range's first byte
     * @param length     the range's size in bytes; positive
     * @param protection the new protection; not null
     */
    public void protect(long offset, long length, Protection protection) {
        Objects.requireNonNull(protection, "protection");
        Checks.range(offset, length, size(), this);
        memory.checkOpen();
        long from = offset >>> PageGeometry.PAGE_SHIFT;
        long to = Math.ceilDiv(offset + length, PageGeometry.PAGE_BYTES);
        boolean ro = protection == Protection.READ_ONLY;
        state.lifecycle().enter();
        try {
            state.refuseFreed(from, to, "protect()");
            // refused before the attributes change: refused after, the range would be read-only
            // in its attributes while its mappings stayed writable
            memory.engine().refuseFromFaultingItem("a protection change");
            state.attributes().update(from, to, a -> a.withReadOnly(ro));
            memory.engine().reprotect(state, from, to);
        } finally {
            state.lifecycle().exit();
        }
    }

    /**
     * Counters of this region alone.
     *
     * @return a snapshot of the region's counters; {@link NodeStats#freeBytes()} is -1 in it
     * @throws IllegalStateException if the region is freed
     */
    public Stats stats() {
        return state.lifecycle().within(() -> memory.regionStats(state));
    }

    /**
     * Frees the region, with the semantics of {@code Arena.close()}: while other threads hold host
     * views on it the call is refused at once (as closing a shared arena in use is), changing
     * nothing; otherwise the views the calling thread holds are closed (their segments then throw
     * {@link IllegalStateException}), kernels and other operations using the region are waited
     * for, at most the memory's {@code closeTimeout} (builder, default 60 s), and every device
     * frame and the host mapping are released. Later use of the region throws
     * {@link IllegalStateException}.
     *
     * @throws IllegalStateException if the region is freed already, if called from inside a kernel
     *         or from inside another operation on the region, such as the progress callback of the
     *         load that fills it (it would wait for itself; nothing was closed), if other threads
     *         hold views (named), or if the wait for
     *         running operations ran out (the threads named; nothing was freed; free again later)
     */
    public void free() {
        memory.free(this);
    }

    /**
     * Frees the region if it is not freed yet ({@link #free()}), so that it can be the resource of
     * a try-with-resources statement; closing a freed region does nothing, and neither does closing
     * one that another thread frees meanwhile. A free that gave up waiting for operations still
     * running (the memory's close timeout) is tried again, waiting as long again.
     */
    @Override
    public void close() {
        if (isFreed()) {
            return;
        }
        try {
            free();
        } catch (IllegalStateException e) {
            if (!isFreed()) {
                throw e;   // refused, or gave up waiting: not freed
            }
            // another thread's free finished first: freed, as this call wanted
        }
    }

    /**
     * Frees bytes [offset, offset+length) of this region, as munmap of part of a mapping: every
     * node's frames of those pages are released, and any later call that reaches them (a host view,
     * a kernel argument, advice, a load, protect) throws {@link IllegalStateException} naming the
     * freed bytes. The rest of the region works as before. Freeing the whole region is
     * {@link #free()}.
     *
     * <p>{@code offset} and {@code offset + length} must fall on granule boundaries, of the pages
     * on both sides of each (see {@link #granularity}), and no granule of a page that stays may reach
     * into the range (a page farther away advised a larger granule: a fault there would bring the freed
     * pages back with its granule); the end may also be the region's end.
     * Refused while a host view over the range is open; a view that another thread opens while
     * the free begins (after its check, before the range is marked freed) is not waited for: the
     * range is freed, every page but the ones that view covers is released, and the call throws
     * {@link IllegalStateException} naming the view, so that freeing the range again after the
     * view closes releases the rest. Waits for the kernels whose pinned arguments cover the
     * range, for at most the memory's close timeout (as {@link #free()} waits for operations):
     * then the range is freed (refused to every access) but none of its memory is given back yet,
     * and the call throws {@link IllegalStateException} naming the kernel, so that freeing the
     * range again after the launch ends releases it ({@link UnifiedMemory#verify()} reports the
     * pages meanwhile); a launch that reaches the range later (by device faults, or in a later
     * tile) fails naming the freed bytes, keeping what it wrote before. Freeing a freed part again
     * is allowed: it finishes a free that was interrupted while it waited. In
     * {@link HostFaultMode#USERFAULTFD} mode plain loads through {@link #segment()} cannot be
     * refused: in a freed range they read zeros, and what is stored there is dropped with the
     * region.
     *
     * @param offset the first byte to free, on a granule boundary
     * @param length the bytes to free; positive, ending on a granule boundary or at the region's end
     * @throws IllegalArgumentException when an edge of the range splits a granule
     * @throws IllegalStateException when a host view of another thread covers part of the range
     *         (before the free, nothing freed; while it began, the rest freed, as above), or when a
     *         kernel still pins part of it after the close timeout (freed, nothing released, as above)
     */
    public void free(long offset, long length) {
        memory.freeRange(this, offset, length);
    }

    /**
     * Whether the whole region was freed ({@link #free()}, {@link #close()}, or its memory closed).
     * A region with only some bytes freed ({@link #free(long, long)}) is not freed, and neither is
     * one whose free gave up waiting for operations still running on it (the memory's close
     * timeout): new operations are refused from then on, and {@link #free()} or {@link #close()}
     * tries again.
     *
     * @return true once the region is freed
     */
    public boolean isFreed() {
        return state.isReleased();
    }

    @Override
    public String toString() {
        return state.toString();
    }
}
