package dev.hetmem.migrate;

/**
 * UVM's thrashing detection, as the engine applies it: a block that moves between different
 * nodes three times within {@link #WINDOW_NANOS} (fault-driven ping-pong, or evicted and faulted
 * back) is held home for a while, devices reaching it remotely where they can. The per-block
 * bookkeeping is {@code Block.recordMove}; the hold decides the planner's remote mapping.
 */
final class ThrashControl {
    /**
     * Three moves between different nodes, each within this of the last, make a block thrash. UVM
     * uses 500 µs for GPUs; migrations here (Java, a copy per move) are slower, so the window is too.
     */
    static final long WINDOW_NANOS = 200_000_000L;
    /** How long a thrashing block stays home by default. */
    static final long HOLD_NANOS = 200_000_000L;

    private ThrashControl() {
    }
}
