package dev.hetmem;

import dev.hetmem.internal.DeviceNode;
import dev.hetmem.internal.RegionState;
import dev.hetmem.migrate.MigrationEngine;
import dev.hetmem.observe.Counters;

import java.util.ArrayList;
import java.util.List;

import static dev.hetmem.driver.PageGeometry.PAGE_SHIFT;

/**
 * {@link UnifiedMemory#stats()} and {@link Region#stats()}: resident bytes per node from the page
 * tables (after taking in what host code did on its own), free device memory, metadata, and the
 * fault, migration, eviction and thrashing counters.
 */
final class Statistics {
    private final List<NodeInfo> nodeInfos;
    private final DeviceNode[] devices;
    private final MigrationEngine engine;

    Statistics(List<NodeInfo> nodeInfos, DeviceNode[] devices, MigrationEngine engine) {
        this.nodeInfos = nodeInfos;
        this.devices = devices;
        this.engine = engine;
    }

    /** The whole memory; {@code service}: the fault service's own counters, or null. */
    Stats memory(List<Region> regions, Counters counters, FaultServiceCounters service, long retainedBytes) {
        List<NodeStats> list = new ArrayList<>();
        long metadata = 0;
        long touched = 0;
        long[] resident = new long[nodeInfos.size()];
        for (Region r : regions) {
            RegionState s = r.state();
            engine.reconcileAll(s);
            metadata += s.metadataBytes();
            for (int n = 0; n < resident.length; n++) {
                long p = s.table().residentPages(n);
                resident[n] += p;
                touched += p << PAGE_SHIFT;
            }
        }
        for (int n = 0; n < nodeInfos.size(); n++) {
            long free = -1;
            if (n > 0) {
                free = devices[n].allocator().freeBytes();
                metadata += devices[n].allocator().metadataBytes();
            }
            // host faults the native service resolved on its own (pages are counted as they are reconciled)
            long serviceFaults = n == 0 && service != null ? service.faults() + service.writeFaults() : 0;
            list.add(nodeStats(n, counters, resident[n] << PAGE_SHIFT, free, serviceFaults, n == 0 ? retainedBytes : 0));
        }
        return new Stats(List.copyOf(list), metadata, touched);
    }

    Stats region(RegionState s) {
        engine.reconcileAll(s);
        List<NodeStats> list = new ArrayList<>();
        long touched = 0;
        for (int n = 0; n < nodeInfos.size(); n++) {
            long bytes = s.table().residentPages(n) << PAGE_SHIFT;
            touched += bytes;
            list.add(nodeStats(n, s.counters(), bytes, -1, 0, n == 0 ? s.host().retainedBytes() : 0));
        }
        return new Stats(List.copyOf(list), s.metadataBytes(), touched);
    }

    private NodeStats nodeStats(int n, Counters c, long residentBytes, long free, long extraFaults, long retained) {
        long[] in = new long[Trigger.ALL.length];
        for (Trigger t : Trigger.ALL) {
            in[t.ordinal()] = c.pagesIn(n, t);
        }
        // the service resolves each host fault alone: each is its own batch
        return new NodeStats(nodeInfos.get(n), residentBytes, free, c.faults(n) + extraFaults,
                c.faultBatches(n) + extraFaults, in, c.evictions(n), c.thrashingEvents(n), retained,
                c.plainPrefetchesUnplaced(n), c.pagesDroppedBehind(n));
    }
}
