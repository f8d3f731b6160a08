package dev.hetmem.device.opencl;

import java.lang.foreign.MemorySegment;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Consumer;
import java.util.function.Supplier;

import static dev.hetmem.device.opencl.ClLibrary.call;

/**
 * The sub-buffers plain arguments were passed as, kept for the next launch: a program that
 * launches over the same placed regions again (every token of a model, every iteration of a
 * solver) passes the same sub-buffer instead of creating and releasing one per launch, which
 * costs PoCL about a tenth of a millisecond each. A sub-buffer is only a window of a pool buffer:
 * one over frames that now hold other pages is harmless, because the launcher passes one only
 * after checking, page by page, that the argument's pages are in exactly those frames.
 *
 * <p>At most {@link #CAPACITY} are kept between launches, least recently used released first, once
 * the launch that used them has ended ({@link #trim}): a launch with more plain arguments than that
 * released, as it bound its later arguments, a sub-buffer it had bound as an earlier one, and ran
 * its kernel on a released object (PoCL keeps it alive; the OpenCL specification does not).
 * {@link #releaseAll} releases the rest when the device closes. Not thread-safe: the launcher calls
 * it under its launch lock (L4), as it does the OpenCL release calls.
 */
final class SubBuffers {
    static final int CAPACITY = 64;

    private record Key(int pool, long origin, long length, long flags) {}

    private final Consumer<MemorySegment> release;
    private final LinkedHashMap<Key, MemorySegment> kept = new LinkedHashMap<>(16, 0.75f, true);

    SubBuffers(ClLibrary cl) {
        this(m -> call(cl.releaseMemObject, m));
    }

    /** With {@code release} as the OpenCL release call (tests watch when it is made). */
    SubBuffers(Consumer<MemorySegment> release) {
        this.release = release;
    }

    /**
     * The sub-buffer of {@code pool} over [origin, origin + length) with {@code flags}: a kept one,
     * or a new one {@code create} makes.
     */
    MemorySegment get(int pool, long origin, long length, long flags, Supplier<MemorySegment> create) {
        Key key = new Key(pool, origin, length, flags);
        MemorySegment m = kept.get(key);
        if (m != null) {
            return m;
        }
        m = create.get();
        kept.put(key, m);   // none released here: this launch may have bound any kept one already
        return m;
    }

    /**
     * Releases the least recently used beyond {@link #CAPACITY}. Call once the launch that asked for
     * sub-buffers has ended (its kernel done, or never enqueued), under the launch lock: none is then
     * an argument of a kernel that runs or is about to.
     */
    void trim() {
        Iterator<Map.Entry<Key, MemorySegment>> eldest = kept.entrySet().iterator();
        while (kept.size() > CAPACITY) {
            MemorySegment m = eldest.next().getValue();
            eldest.remove();
            release.accept(m);
        }
    }

    /** How many are kept now. */
    int size() {
        return kept.size();
    }

    void releaseAll() {
        for (MemorySegment m : kept.values()) {
            release.accept(m);
        }
        kept.clear();
    }
}
