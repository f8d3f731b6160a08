package dev.hetmem.migrate;

import dev.hetmem.MigrationMode;
import dev.hetmem.Trigger;
import dev.hetmem.driver.DeviceCopyException;
import dev.hetmem.observe.MigrationEvent;

import java.util.List;

import static dev.hetmem.driver.PageGeometry.bytes;

/**
 * Runs batches through the phases (batched page migration: each phase once for the whole batch),
 * or page by page in {@link MigrationMode#VANILLA}, the baseline it is measured against. One JFR
 * {@link MigrationEvent} per batch.
 */
final class BatchRunner {
    private final EngineContext ctx;
    private final Eviction eviction;

    /** The eviction this runner's allocate phase uses; {@link Placement} vacates through it too. */
    Eviction eviction() {
        return eviction;
    }

    BatchRunner(EngineContext ctx) {
        this.ctx = ctx;
        this.eviction = new Eviction(ctx, this);
    }

    /** The planned runs in the engine's mode; returns pages whose data moved. */
    long execute(List<Run> runs, int target, Trigger trigger) {
        return execute(runs, target, trigger, List.of());
    }

    /**
     * As {@link #execute(List, int, Trigger)}, with {@code spans} placed in consecutive frames
     * ({@link Placement}): one batch then, in either mode, since single pages cannot be placed so.
     */
    long execute(List<Run> runs, int target, Trigger trigger, List<Placement.Span> spans) {
        if (runs.isEmpty()) {
            return 0;
        }
        if (!spans.isEmpty()) {
            return run(new MigrationBatch(runs, target, trigger, "batched", spans));
        }
        if (ctx.mode == MigrationMode.VANILLA) {
            long moved = 0;
            try {
                for (Run run : runs) {
                    for (int i = 0; i < run.count; i++) {
                        moved += run(new MigrationBatch(List.of(run.slice(i, 1)), target, trigger, "vanilla"));
                    }
                }
            } catch (Eviction.RetryBatch retry) {
                // the pages committed before it stay where they went: the caller goes round for the rest and
                // counts these (it dropped them, and a prefetch that waited for room reported too few)
                throw retry.afterCommitting(moved);
            }
            return moved;
        }
        return run(new MigrationBatch(runs, target, trigger, "batched"));
    }

    /**
     * One batch through revoke, allocate, copy and commit; undone if revoking, allocation or copying fails
     * (and rethrown: {@link Eviction.RetryBatch} when the device must make room first). Returns
     * pages whose data moved. Every frame the batch counted in flight is uncounted on the way out.
     */
    long run(MigrationBatch batch) {
        MigrationEvent event = new MigrationEvent();
        event.begin();
        long pagesMoved = batch.pagesCopied();
        boolean committed = false;
        boolean undone = false;
        // when each phase began, and the end: the event's timings, taken only while the event is recorded
        long[] phases = event.isEnabled() ? new long[5] : null;
        try {
            mark(phases, 0);
            try {
                // inside the undo's reach: a revoke that fails part-way (the host side's leave, a driver's
                // call) is undone as a failed copy is. Left as it was, userfaultfd pages stayed leaving in
                // the fault service while the table kept them on the host, and the next move's leave,
                // which marks host pages only, left them writable while it copied them
                RevokePhase.revoke(ctx, batch);
                mark(phases, 1);
                AllocatePhase.allocate(ctx, batch, eviction);
                mark(phases, 2);
                CopyPhase.copy(ctx, batch);
                mark(phases, 3);
            } catch (Throwable thrown) {
                // a checked exception too, which a driver may throw without declaring it (another JVM
                // language, a sneaky throw): it skipped the undo and reached the caller as it was
                Throwable e = thrown instanceof RuntimeException || thrown instanceof Error ? thrown
                        : new DeviceCopyException("a driver call failed: " + thrown, thrown);
                undone = true;
                try {
                    UndoPhase.undo(ctx, batch);
                } catch (RuntimeException | Error u) {
                    // an undo that failed may leave the batch's pages out of line with the table: its
                    // failure reaches the caller (never a retry, as a RetryBatch would), carrying the
                    // failure that made the undo (which a stackless RetryBatch could not carry)
                    if (u != e) {
                        u.addSuppressed(e);
                    }
                    throw u;
                }
                if (e instanceof RuntimeException re) {
                    throw re;
                }
                throw (Error) e;
            }
            CommitPhase.commit(ctx, batch);
            mark(phases, 4);
            committed = true;
            return pagesMoved;
        } finally {
            long reserved = batch.reserved();
            for (Run r : batch.runs) {
                r.reserved = 0;
            }
            if (reserved > 0) {
                ctx.inFlight.add(batch.target, -reserved);
            }
            if (phases != null && event.shouldCommit()) {
                event.region = batch.runs.getFirst().region.id();
                event.target = batch.target;
                event.trigger = batch.trigger.name();
                event.mode = batch.modeName;
                long pages = batch.pages();   // every page placed: copied, loaded, zero-filled, relocated, mapped
                event.pages = pages;
                event.bytes = bytes(pages);
                event.undone = undone;
                event.failed = !committed;
                event.revokeTime = phase(phases, 0);
                event.allocateTime = phase(phases, 1);
                event.copyTime = phase(phases, 2);
                event.commitTime = phase(phases, 3);
                event.commit();
            }
        }
    }

    private static void mark(long[] phases, int i) {
        if (phases != null) {
            phases[i] = System.nanoTime();
        }
    }

    /** Phase {@code i}'s nanoseconds, or 0 if the batch did not finish it. */
    private static long phase(long[] starts, int i) {
        return starts[i + 1] == 0 ? 0 : starts[i + 1] - starts[i];
    }
}
