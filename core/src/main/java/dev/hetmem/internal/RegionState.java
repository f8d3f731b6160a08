package dev.hetmem.internal;

import dev.hetmem.driver.PageGeometry;
import dev.hetmem.host.HostSide;
import dev.hetmem.observe.Counters;

import dev.hetmem.pagetable.PageTable;

import java.util.List;

/**
 * Everything the core keeps for one region: its host side, logical page table, range
 * attributes, pins, lifecycle and counters. The public {@link dev.hetmem.Region} is a thin face
 * over this; the migration engine works on it directly.
 */
public final class RegionState {
    private final int id;
    private final long size;
    private final HostSide host;
    private final PageTable table;
    private final RangeAttributes attributes;
    private final Pins pins = new Pins();
    private final Lifecycle lifecycle;
    private final Counters counters;
    /** Set once by whoever tears the region down (its frames, mapping and view released). */
    private final java.util.concurrent.atomic.AtomicBoolean released = new java.util.concurrent.atomic.AtomicBoolean();
    /** Launches running by device faults over this region (BUSY marks without pins: {@link #beginFaulting}). */
    private final java.util.concurrent.atomic.AtomicInteger faultingLaunches = new java.util.concurrent.atomic.AtomicInteger();

    public RegionState(int id, long size, HostSide host, int nodes, int granuleShift, Lifecycle memory) {
        this.id = id;
        this.size = size;
        this.host = host;
        this.table = new PageTable(size, nodes);
        this.attributes = new RangeAttributes(table.pages(), new RangeAttributes.Attrs(granuleShift, false, false));
        this.lifecycle = new Lifecycle("region " + id, memory);
        this.counters = new Counters(nodes);
    }

    public int id() {
        return id;
    }

    public long size() {
        return size;
    }

    public long pages() {
        return table.pages();
    }

    /** How host code reaches the region, and how its host copy is kept in line with the page table. */
    public HostSide host() {
        return host;
    }

    /** Host (and device) virtual address of a page. */
    public long pageAddress(long page) {
        return host.mapping().base() + (page << PageGeometry.PAGE_SHIFT);
    }

    /**
     * Pins pages [from, to) on a node; pins on a device also tell the fault service, which then
     * leaves those pages alone when it brings home a neighbour's granule.
     */
    public Pins.Pin pin(int node, long from, long to, boolean write) {
        Pins.Pin p = pins.add(node, from, to, write);
        if (node != 0) {
            host.busy(from, to - from, true);
        }
        return p;
    }

    /**
     * A launch that runs by device faults starts on pages [from, to): they are marked BUSY for the
     * fault service (which then never takes them home as a faulting neighbour's: a work item may be
     * writing one, and the service cannot take the device's mapping away), with no pin (the engine
     * may still move and evict them: the device's translations are tracked, see TranslationEpochs).
     * Pair with {@link #endFaulting}.
     */
    public void beginFaulting(long from, long to) {
        faultingLaunches.incrementAndGet();
        host.busy(from, to - from, true);
    }

    /** The faulting launch begun on [from, to) ended. */
    public void endFaulting(long from, long to) {
        host.busy(from, to - from, false);
        faultingLaunches.decrementAndGet();
    }

    /**
     * Whether a launch that runs by device faults may hold BUSY marks here. Read under block locks
     * by the steal reconciler: where no device pin holds a BUSY page, only such launches do, and a
     * page host code took from them may be taken in at once (their translations are invalidated and
     * waited for; a pinned kernel's are not).
     */
    public boolean faultingLaunchesRunning() {
        return faultingLaunches.get() > 0;
    }

    public void unpin(Pins.Pin p) {
        List<Runnable> released = pins.remove(p);
        try {
            if (p.node() != 0) {
                host.busy(p.from(), p.to() - p.from(), false);
            }
        } finally {
            Pins.run(released);   // device frames kept for this pin's kernel (DETACHABLE_PINS), freed last
        }
    }

    /** Claims the teardown; true for the one caller that should do it. */
    public boolean markReleased() {
        return released.compareAndSet(false, true);
    }

    public boolean isReleased() {
        return released.get();
    }

    public PageTable table() {
        return table;
    }

    public RangeAttributes attributes() {
        return attributes;
    }

    /** {@link RangeAttributes#anyReadOnly} as the host side asks it, made once: every commit of every run passes it. */
    private final HostSide.ReadOnly readOnly = (from, to) -> attributes().anyReadOnly(from, to);

    public HostSide.ReadOnly readOnly() {
        return readOnly;
    }

    public Pins pins() {
        return pins;
    }

    public Lifecycle lifecycle() {
        return lifecycle;
    }

    public Counters counters() {
        return counters;
    }

    /** Pages [from, to) widened to whole granules at both ends, clamped to the region. */
    public long granuleStart(long page) {
        long g = 1L << (attributes.at(page).granuleShift() - PageGeometry.PAGE_SHIFT);
        return page & -g;
    }

    public long granuleEnd(long pageExclusive) {
        long last = pageExclusive - 1;
        long g = 1L << (attributes.at(last).granuleShift() - PageGeometry.PAGE_SHIFT);
        return Math.min(table.pages(), (last & -g) + g);
    }

    /**
     * Throws if any page of [from, to) was freed by {@code Region.free(offset, length)}, naming the
     * freed bytes and {@code what} wanted them.
     */
    public void refuseFreed(long from, long to, String what) {
        long first = attributes.firstFreed(from, to);
        if (first >= 0) {
            long end = attributes.freedEnd(first);
            throw new IllegalStateException(what + " of " + this + " reaches bytes ["
                    + (first << PageGeometry.PAGE_SHIFT) + ", " + (end << PageGeometry.PAGE_SHIFT)
                    + "), which were freed by free(offset, length)");
        }
    }

    public long metadataBytes() {
        return table.metadataBytes() + attributes.metadataBytes() + 160;
    }

    @Override
    public String toString() {
        return "region " + id + " (" + size + " bytes at 0x" + Long.toHexString(host.mapping().base()) + ")";
    }
}
