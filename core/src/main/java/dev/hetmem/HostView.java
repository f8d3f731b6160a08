package dev.hetmem;

import dev.hetmem.internal.Lifecycle;
import dev.hetmem.internal.Pins;
import dev.hetmem.internal.RegionState;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Host access to part of a region: while open, its pages are resident on the host with the access
 * asked for and stay there (a device that needs them waits until the view closes). The segment is
 * valid until {@link #close()} and only in the thread that opened the view; after close any
 * access through it throws instead of reaching memory that may have moved.
 *
 * <p>Open one with {@link Region#host(long, long, Access)}, in a try-with-resources statement:
 *
 * <pre>{@code
 * try (HostView v = region.host(0, 4096, Access.READ_WRITE)) {
 *     v.segment().set(ValueLayout.JAVA_INT, 0, 42);
 * }
 * }</pre>
 */
/* Its monitor is lock L18 (view): docs/design.md, lock table, L18. */
public final class HostView implements AutoCloseable, Lifecycle.View {
    private final RegionState region;
    private final Arena arena;
    private final MemorySegment segment;
    private final Pins.Pin pin;
    private final long offset;
    private final Access access;
    private final Thread owner = Thread.currentThread();
    private boolean closed;

    HostView(RegionState region, long offset, long length, Access access, Pins.Pin pin) {
        this.region = region;
        this.offset = offset;
        this.access = access;
        this.pin = pin;
        this.arena = Arena.ofConfined();
        MemorySegment s = MemorySegment.ofAddress(region.host().mapping().base() + offset).reinterpret(length, arena, null);
        this.segment = access.writes() ? s : s.asReadOnly();
    }

    /** A view of no bytes at {@code offset}: nothing pinned, nothing to wait for (a tensor of size 0). */
    static HostView empty(RegionState region, long offset, Access access) {
        return new HostView(region, offset, 0, access, null);
    }

    /**
     * The view's bytes: read-only for {@link Access#READ} views.
     *
     * @return a segment of {@link #length()} bytes whose byte 0 is region offset {@link #offset()},
     *         confined to the thread that opened the view and closed with it
     */
    public MemorySegment segment() {
        return segment;
    }

    /**
     * Region offset of the view's first byte.
     *
     * @return the offset, in bytes from the region's start, given when the view was opened
     */
    public long offset() {
        return offset;
    }

    /**
     * The size of the view.
     *
     * @return the view's length in bytes, as asked for (0 for an empty view)
     */
    public long length() {
        return segment.byteSize();
    }

    /**
     * How the view may use its bytes.
     *
     * @return {@link Access#READ}, {@link Access#WRITE} or {@link Access#READ_WRITE}, as opened
     */
    public Access access() {
        return access;
    }

    @Override
    public String toString() {
        return "HostView[" + access + " [" + offset + ", +" + segment.byteSize() + ") of region " + region.id() + "]";
    }

    /**
     * Closes the view: its segment stops working and its pages may move again. Closing a closed view
     * does nothing.
     *
     * @throws IllegalStateException if called by a thread other than the one that opened the view
     *         (its segment is confined to that thread); the view stays open
     */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            if (Thread.currentThread() != owner) {
                throw new IllegalStateException(this + " was opened by thread " + owner.getName() + " and only that thread "
                        + "can close it (called from thread " + Thread.currentThread().getName() + "); it stays open");
            }
            // a free or close from now on waits for this close rather than refusing for an open view (marked
            // before the segment closes: a free in between was refused naming this thread)
            region.lifecycle().closingView(this);
            try {
                arena.close();
            } catch (RuntimeException | Error e) {
                region.lifecycle().stillOpen(this);   // held by a native call: the view stays open
                throw e;
            }
            closed = true;
        }
        if (pin != null) {
            try {
                region.unpin(pin);
            } finally {
                region.lifecycle().closeView(this);   // a view that failed to unpin no longer holds up free() or close()
            }
        }
    }

    /** The thread that opened the view: the only one that can use or close it. */
    @Override
    public Thread owner() {
        return owner;
    }

    /**
     * Its owner ended without closing it: nobody can reach the segment any more (it is confined to
     * that thread), so the pin goes and the pages may move again.
     */
    @Override
    public void abandon() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        if (pin != null) {
            region.unpin(pin);
        }
    }
}
