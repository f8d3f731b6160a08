package dev.hetmem.migrate;

import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.internal.RegionState;

import java.util.ArrayList;
import java.util.List;

/**
 * Phase 1 of a batch: every holder other than the target loses the access the move takes from it,
 * before any byte is copied, so nothing writes the source while it is copied. Device entries are
 * released (or write-protected, for a read-only duplicate), then one TLB invalidation per device;
 * then the host side hears, so that a host write from then on is not lost (see
 * {@link dev.hetmem.host.HostSide#leave}) and no device write can pass for one (DEVICES_BEFORE_HOST).
 */
final class RevokePhase {
    private RevokePhase() {
    }

    static void revoke(EngineContext ctx, MigrationBatch batch) {
        int target = batch.target;
        Invalidations inv = new Invalidations(ctx.nodeCount());
        // DEVICES_BEFORE_HOST: every device entry goes (and its invalidation returns) before the host
        // side hears. A device that maps the host's copy in place writes it through the host's view;
        // after leave() such a write is a host write to a page on its way off the host, which the
        // userfaultfd service answers by taking the page back for the host (its store kept, the copy
        // being made dropped) while the engine goes on moving it: the page table and the service then
        // disagree about the page, and the device's later stores to its new copy are thrown away when
        // the service's claim is taken in. Found by the stress program (a sweep by device faults,
        // thrashing control holding a block home, so mapped in place, under userfaultfd).
        // regions whose host copy a device mapped in place, for a run that leaves the host or takes its write
        List<RegionState> mappedInPlace = null;
        for (Run r : batch.runs) {
            revokeDevices(ctx, inv, target, r);
            if (target != 0 && (r.holders & 1) != 0 && r.block.remoteMask(r.first) != 0 && takesFromHost(r)) {
                if (mappedInPlace == null) {
                    mappedInPlace = new ArrayList<>(1);
                }
                if (!mappedInPlace.contains(r.region)) {
                    mappedInPlace.add(r.region);
                }
            }
        }
        inv.flush(ctx);
        // SERVED_BEFORE_LEAVE: the items that reached those host copies in place have ended their accesses
        // (the invalidation returned); a fault of theirs the service read and has not served yet would,
        // served after the leave, take the page back for the host and lose the stores the device makes next
        for (int i = 0; mappedInPlace != null && i < mappedInPlace.size(); i++) {
            mappedInPlace.get(i).host().awaitFaultsRead();
        }
        for (Run r : batch.runs) {
            if (target != 0 && (r.holders & 1) != 0 && takesFromHost(r)) {
                if (r.action == Action.DUPLICATE) {
                    r.region.host().writeProtect(r.page(), r.count);   // the host keeps its copy, not its write
                } else {
                    r.region.host().leave(r.page(), r.count);
                }
            }
        }
    }

    /** Whether run {@code r} (of a host holder, to a device) takes the host's copy away or its write: what {@code revoke} tells the host side. */
    private static boolean takesFromHost(Run r) {
        return r.action == Action.MOVE || r.action == Action.COLLAPSE
                || (r.action == Action.DUPLICATE && r.block.writer(r.first) == 0);
    }

    /** The devices' side of revoking run {@code r}: entries released or write-protected, invalidations gathered in {@code inv}. */
    private static void revokeDevices(EngineContext ctx, Invalidations inv, int target, Run r) {
        {
            if (r.action.fresh() || r.action == Action.REMOTE_MAP) {
                return;
            }
            if (r.action == Action.RELOCATE) {
                // the target's entries name the frames being copied from: gone until commit maps the new ones
                unmap(ctx, inv, target, r);
                return;
            }
            int remote = r.block.remoteMask(r.first);
            if (r.action == Action.DUPLICATE) {
                // holders keep their copies; a device writer becomes read-only, and so do remote
                // writers of a host copy that loses write
                int w = r.block.writer(r.first);
                if (w > 0) {
                    protect(ctx, inv, w, r);
                } else if (w == 0) {
                    for (int n = NodeMask.first(remote); n >= 0; n = NodeMask.next(remote, n)) {
                        protect(ctx, inv, n, r);
                    }
                }
                return;
            }
            if (target != 0 && (r.holders & 1) != 0) {
                // the host's copy goes: every device mapping it remotely lets go too
                for (int n = NodeMask.first(remote); n >= 0; n = NodeMask.next(remote, n)) {
                    unmap(ctx, inv, n, r);
                }
            }
            int others = NodeMask.devicesBut(r.holders, target);
            for (int n = NodeMask.first(others); n >= 0; n = NodeMask.next(others, n)) {
                unmap(ctx, inv, n, r);
            }
        }
    }

    private static void protect(EngineContext ctx, Invalidations inv, int node, Run r) {
        DeviceDriver d = ctx.driver(node);
        d.protect(r.va(), r.count, false);
        inv.add(node, r.va(), r.bytes());
    }

    private static void unmap(EngineContext ctx, Invalidations inv, int node, Run r) {
        ctx.driver(node).unmap(r.va(), r.count);
        inv.add(node, r.va(), r.bytes());
    }
}
