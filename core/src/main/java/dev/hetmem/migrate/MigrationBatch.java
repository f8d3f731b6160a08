package dev.hetmem.migrate;

import dev.hetmem.Trigger;

import java.util.List;

/**
 * One batch of runs on its way to one target node: what the phases hand each other (the runs
 * carry their frames and in-flight counts), as Linux's {@code struct migrate_vma} does for the
 * {@code migrate_vma_*} phases.
 *
 * <pre>
 *   revoke ──► allocate ──► copy ──► commit
 *                  │          │
 *                  └──────────┴──► undo (frames freed, source mappings restored; the page table never changed)
 * </pre>
 *
 * Caller's contract: the block locks of every run's block are held from planning until the batch
 * committed or was undone; {@link BatchRunner#run} then leaves no frame counted in flight.
 */
final class MigrationBatch {
    final List<Run> runs;
    final int target;
    final Trigger trigger;
    /** "batched", or "vanilla" for the page-by-page baseline: for the JFR event. */
    final String modeName;

    /** Page ranges whose runs take consecutive frames of the target ({@link Placement}); mostly none. */
    final List<Placement.Span> spans;

    /**
     * Whether its allocate phase may evict other pages from the target for room. False for
     * {@link Compaction}'s moves within a device, whose contract is that nothing leaves the device:
     * should the free frames it counted on be taken meanwhile, the batch fails for room instead
     * (undone, and the compaction gives up).
     */
    final boolean evicts;

    MigrationBatch(List<Run> runs, int target, Trigger trigger, String modeName) {
        this(runs, target, trigger, modeName, List.of(), true);
    }

    MigrationBatch(List<Run> runs, int target, Trigger trigger, String modeName, List<Placement.Span> spans) {
        this(runs, target, trigger, modeName, spans, true);
    }

    private MigrationBatch(List<Run> runs, int target, Trigger trigger, String modeName, List<Placement.Span> spans,
                           boolean evicts) {
        this.runs = runs;
        this.target = target;
        this.trigger = trigger;
        this.modeName = modeName;
        this.spans = spans;
        this.evicts = evicts;
    }

    /** Runs that move pages within {@code node}'s memory and evict nothing for room ({@link #evicts}). */
    static MigrationBatch withinDevice(List<Run> runs, int node) {
        return new MigrationBatch(runs, node, Trigger.EVICTION, "batched", List.of(), false);
    }

    /** Every page of the batch's runs, whatever their action. */
    long pages() {
        long n = 0;
        for (Run r : runs) {
            n += r.count;
        }
        return n;
    }

    /** Pages whose data the batch copies (MOVE and DUPLICATE runs). */
    long pagesCopied() {
        long n = 0;
        for (Run r : runs) {
            n += r.action.copies() ? r.count : 0;
        }
        return n;
    }

    /** Frames the batch's runs hold in the in-flight count right now. */
    long reserved() {
        long n = 0;
        for (Run r : runs) {
            n += r.reserved;
        }
        return n;
    }

    /** Frames the batch still has to allocate (each run's count less what it holds already). */
    long stillToAllocate() {
        long n = 0;
        for (Run r : runs) {
            if (r.action.allocates()) {
                n += r.count - r.reserved;
            }
        }
        return n;
    }

    /** Frames runs allocate on a device target in all. */
    static long framesNeeded(List<Run> runs) {
        long n = 0;
        for (Run r : runs) {
            n += r.action.allocates() ? r.count : 0;
        }
        return n;
    }

    /** Pages in all of the batch's runs. */
    static long pages(List<Run> runs) {
        long n = 0;
        for (Run r : runs) {
            n += r.count;
        }
        return n;
    }
}
