package dev.hetmem.migrate;

import dev.hetmem.CopyPath;
import dev.hetmem.MigrationMode;
import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.internal.DeviceNode;
import dev.hetmem.internal.RegionState;
import dev.hetmem.internal.ResidencyRegistry;
import dev.hetmem.observe.Counters;
import dev.hetmem.pagetable.Block;

/**
 * What the parts of the migration engine share: the nodes, the copy threads, the memory's counters,
 * the residency registry eviction reads, the frames in flight, and the settings a user may change
 * while the memory runs (each a volatile read per batch). Immutable but for those settings.
 */
final class EngineContext {
    final DeviceNode[] nodes;
    /** Drivers by node; index 0 (the host) is null. */
    final DeviceDriver[] drivers;
    final CopyPool pool;
    final Counters memoryCounters;
    final ResidencyRegistry residency;
    final InFlightFrames inFlight;
    final KeptFrames kept;

    /**
     * Bound (to true) while a thread runs one of several batches that run at once
     * ({@link MigrationEngine#ensureEach}): its copies and host releases run on that thread alone,
     * since the batches beside it already keep the other cores busy, and a batch that handed its
     * share to the copy pool would wait for a worker another batch keeps busy. Bound too for a
     * migration that runs beside other work ({@link MigrationEngine#besideOtherWork}: an
     * asynchronous prefetch beside a kernel), whose pool workers would take that work's cores.
     */
    static final ScopedValue<Boolean> ON_CALLER_ALONE = ScopedValue.newInstance();

    /**
     * Bound (to true) while a thread runs a migration whose pages a kernel on this CPU reads soon
     * after ({@link MigrationEngine#besideOtherWorkReadSoon}): its batches stream as a fault's do
     * ({@code HostCopy.FAULT_STREAMING_MIN_BYTES}), only when too large for the caches to keep.
     */
    static final ScopedValue<Boolean> READ_SOON = ScopedValue.newInstance();

    /** Whether the calling thread's migration is read soon after by a kernel on this CPU ({@link #READ_SOON}). */
    static boolean readSoon() {
        return READ_SOON.isBound();
    }

    /** Whether the calling thread copies and releases alone ({@link #ON_CALLER_ALONE}). */
    static boolean onCallerAlone() {
        return ON_CALLER_ALONE.isBound();
    }

    volatile MigrationMode mode;
    volatile CopyPath copyPath;
    volatile boolean thrashControl = true;
    volatile long thrashHoldNanos = ThrashControl.HOLD_NANOS;

    EngineContext(DeviceNode[] nodes, int copyThreads, MigrationMode mode, CopyPath copyPath, Counters memoryCounters,
                  ResidencyRegistry residency) {
        this.nodes = nodes.clone();
        this.drivers = new DeviceDriver[nodes.length];
        for (int n = 1; n < nodes.length; n++) {
            drivers[n] = nodes[n].driver();
        }
        this.pool = new CopyPool(copyThreads);
        this.memoryCounters = memoryCounters;
        this.residency = residency;
        this.inFlight = new InFlightFrames(nodes.length);
        this.kept = new KeptFrames(nodes.length);
        this.mode = mode;
        this.copyPath = copyPath;
    }

    /**
     * Throws if the calling thread is a work item of a faulting launch that may hold a device
     * translation: taking block locks there could wait for a thread that waits for this item
     * (docs/design.md, lock table, L23). The fault handler itself calls in with no translation held.
     */
    void refuseFromFaultingItem(String call) {
        for (int n = 1; n < drivers.length; n++) {
            if (drivers[n].holdsTranslationsOnCurrentThread()) {
                throw new IllegalStateException(call + " called from a work item of a launch on node " + n
                        + " that takes device faults; a kernel may not call into the memory manager while it runs");
            }
        }
    }

    DeviceNode device(int node) {
        return nodes[node];
    }

    DeviceDriver driver(int node) {
        return nodes[node].driver();
    }

    int nodeCount() {
        return nodes.length;
    }

    /**
     * Brings the host side of pages [p0, p1) of locked block {@code b} in line with the page table
     * (see {@link dev.hetmem.host.HostSide#sync}): after every page-table change, before frames are freed.
     */
    void syncHost(RegionState region, Block b, int p0, int p1) {
        region.host().sync(b, p0, p1, drivers, region.readOnly());
    }

    /** {@link #syncHost} of pages this batch copied home (see {@link dev.hetmem.host.HostSide#syncCopiedHome}). */
    void syncHostCopiedHome(RegionState region, Block b, int p0, int p1) {
        region.host().syncCopiedHome(b, p0, p1, drivers, region.readOnly());
    }

    /** {@link #syncHost} at a load's commit: pages host code took since the engine looked take the loaded bytes too. */
    void syncHostLoaded(RegionState region, Block b, int p0, int p1) {
        region.host().syncLoaded(b, p0, p1, drivers, region.readOnly());
    }
}
