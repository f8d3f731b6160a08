package dev.hetmem.migrate;

import dev.hetmem.driver.DeviceDriver;

/**
 * Phase 1 of a batch: every holder other than the target loses the access the move takes from it,
 * before any byte is copied, so nothing writes the source while it is copied. Device entries are
 * released (or write-protected, for a read-only duplicate), then one TLB invalidation per device;
 * the host side hears first, so a host write from now on is not lost (see {@link dev.hetmem.host.HostSide#leave}).
 */
final class RevokePhase {
    private RevokePhase() {
    }

    static void revoke(EngineContext ctx, MigrationBatch batch) {
        int target = batch.target;
        Invalidations inv = new Invalidations(ctx.nodeCount());
        for (Run r : batch.runs) {
            if (target != 0 && (r.holders & 1) != 0) {
                if (r.action == Action.MOVE || r.action == Action.COLLAPSE) {
                    r.region.host().leave(r.page(), r.count);
                } else if (r.action == Action.DUPLICATE && r.block.writer(r.first) == 0) {
                    r.region.host().writeProtect(r.page(), r.count);
                }
            }
            if (r.action.fresh() || r.action == Action.REMOTE_MAP) {
                continue;
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
                continue;
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
        inv.flush(ctx);
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
