package dev.hetmem.device.opencl;

import java.lang.foreign.MemorySegment;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
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
 * <p>At most {@link #CAPACITY} are kept, least recently used released first; {@link #releaseAll}
 * releases the rest when the device closes. Not thread-safe: the launcher calls it under its
 * launch lock (L4), as it does the OpenCL release calls.
 */
final class SubBuffers {
    static final int CAPACITY = 64;

    private record Key(int pool, long origin, long length, long flags) {}

    private final ClLibrary cl;
    private final LinkedHashMap<Key, MemorySegment> kept = new LinkedHashMap<>(16, 0.75f, true);

    SubBuffers(ClLibrary cl) {
        this.cl = cl;
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
        kept.put(key, m);
        if (kept.size() > CAPACITY) {
            Iterator<Map.Entry<Key, MemorySegment>> eldest = kept.entrySet().iterator();
            call(cl.releaseMemObject, eldest.next().getValue());   // no kernel runs: launches hold the lock
            eldest.remove();
        }
        return m;
    }

    void releaseAll() {
        for (MemorySegment m : kept.values()) {
            call(cl.releaseMemObject, m);
        }
        kept.clear();
    }
}
