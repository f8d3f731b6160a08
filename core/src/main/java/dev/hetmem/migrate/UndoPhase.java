package dev.hetmem.migrate;

import dev.hetmem.driver.DeviceDriver;

import static dev.hetmem.driver.PageGeometry.PAGE_SHIFT;

/**
 * After a failed allocation or copy: the batch's destination frames go back to the allocator,
 * host pages written by a copy that did not finish are given back (they are not resident
 * anywhere), and the source mappings that {@link RevokePhase} took away come back, each as
 * writable as the page table says. The page table itself never changed.
 */
final class UndoPhase {
    private UndoPhase() {
    }

    static void undo(EngineContext ctx, MigrationBatch batch) {
        int target = batch.target;
        HostReleases written = new HostReleases();
        // every step runs whatever an earlier one threw (the first failure is thrown, later ones suppressed
        // in it): a refused free (a frame freed twice, a bug elsewhere) stopped the undo there, leaving the
        // later runs' frames allocated for good and the sources unmapped while the table names them
        Throwable failed = null;
        for (Run r : batch.runs) {
            if (target != 0 && r.frames != null) {
                try {
                    FrameReleases.free(ctx.device(target).allocator(), r.frames, r.framesAllocated);
                } catch (RuntimeException | Error e) {
                    failed = CommitPhase.keep(failed, e);
                }
                r.frames = null;
                r.framesAllocated = 0;
            }
            if (r.action.copies() && (target == 0 || ((r.holders & 1) == 0 && CopyPhase.stagesThroughHost(ctx, r, target)))) {
                // host pages written by a copy home (or staging) that did not finish: not resident, give them
                // back. Not those of a copy between devices over their peer path, which writes no host frame
                // (counted as kept, they took room in the budget from frames really kept)
                written.add(r.region, r.block, r.page() << PAGE_SHIFT, r.bytes());
            }
        }
        // HOST_BEFORE_DEVICES, the revoke's order reversed: the host side is back in line before any
        // device entry of the host's copy returns. A device that maps that copy in place (accessed-by
        // advice, thrashing control's held-home blocks) stores through its entry as soon as it is back;
        // while the pages were still leaving, the userfaultfd service took such a store for a host write
        // and counted a steal the page table never made (the next reconcile took the pages in again,
        // dropping other devices' copies). Then the mappings (driver calls that should not fail); the
        // release last, since madvise can fail, and such a failure leaves only dead frames mapped (the
        // written pages are not the host's in the table, so the sync leaves them absent). Each step, and
        // each run's sync, runs whatever an earlier one threw: a run left unsynced stays leaving, and the
        // mappings restored after it would bring the false steal back. The first failure is thrown, later
        // ones suppressed in it.
        for (Run r : batch.runs) {
            try {
                ctx.syncHost(r.region, r.block, r.first, r.first + r.count);
            } catch (RuntimeException | Error e) {
                failed = CommitPhase.keep(failed, e);
            }
        }
        try {
            restoreMappings(ctx, batch);
        } catch (RuntimeException | Error e) {
            failed = CommitPhase.keep(failed, e);
        }
        try {
            written.flush(ctx.pool);
        } catch (RuntimeException | Error e) {
            failed = CommitPhase.keep(failed, e);
        }
        if (failed instanceof Error err) {
            throw err;
        }
        if (failed != null) {
            throw (RuntimeException) failed;
        }
    }

    private static void restoreMappings(EngineContext ctx, MigrationBatch batch) {
        int target = batch.target;
        for (Run r : batch.runs) {
            if (r.action.fresh() || r.action == Action.REMOTE_MAP) {
                continue;
            }
            if (r.action == Action.RELOCATE) {
                // the old frames still hold the pages and the table still names them: mapped again
                CommitPhase.mapAsBefore(ctx.driver(target), r, target, r.framesOn(target));
                continue;
            }
            boolean ro = r.region.attributes().anyReadOnly(r.page(), r.page() + r.count);
            int remote = r.block.remoteMask(r.first);
            if (r.action == Action.DUPLICATE) {
                int w = r.block.writer(r.first);
                if (w > 0 && !ro) {
                    ctx.driver(w).protect(r.va(), r.count, true);
                } else if (w > 0) {
                    CommitPhase.protectEach(r, ctx.driver(w));
                } else if (w == 0) {
                    for (int n = NodeMask.first(remote); n >= 0; n = NodeMask.next(remote, n)) {
                        restoreRemote(ctx, r, n, false);
                    }
                }
                continue;
            }
            if (target != 0 && (r.holders & 1) != 0) {
                for (int n = NodeMask.first(remote); n >= 0; n = NodeMask.next(remote, n)) {
                    restoreRemote(ctx, r, n, true);
                }
            }
            int others = NodeMask.devicesBut(r.holders, target);
            for (int n = NodeMask.first(others); n >= 0; n = NodeMask.next(others, n)) {
                DeviceDriver d = ctx.driver(n);
                for (int i = 0; i < r.count; i++) {
                    int p = r.first + i;
                    boolean w = r.block.isWritable(n, p) && !r.region.attributes().at(r.page() + i).readOnly();
                    d.map(r.va() + ((long) i << PAGE_SHIFT), r.block.frame(n, p), 1, w);
                }
            }
        }
    }

    /**
     * Puts back device {@code n}'s entries for the host's copy of a run's pages, each as writable
     * as the page table says (pages of one run can differ there: a remote entry made while the
     * host was not the writer stays read-only), in stretches of like pages. {@code map}: the
     * entries were unmapped (else only write-protected).
     */
    private static void restoreRemote(EngineContext ctx, Run r, int n, boolean map) {
        DeviceDriver d = ctx.driver(n);
        int i = 0;
        while (i < r.count) {
            boolean w = remoteWritable(r, n, i);
            int j = i + 1;
            while (j < r.count && remoteWritable(r, n, j) == w) {
                j++;
            }
            long va = r.va() + ((long) i << PAGE_SHIFT);
            if (map) {
                d.mapHost(va, va, j - i, w);
            } else if (w) {
                d.protect(va, j - i, true);
            }
            i = j;
        }
    }

    private static boolean remoteWritable(Run r, int n, int i) {
        return r.block.isRemoteWritable(n, r.first + i) && !r.region.attributes().at(r.page() + i).readOnly();
    }
}
