package dev.hetmem.stress;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;
import java.util.function.LongPredicate;
import java.util.function.Supplier;

import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;

/**
 * Host reads (and stores) beside a step, in userfaultfd mode: a thread of its own reads pages of
 * the step's region that the step leaves alone, near the ones it works on, while the step runs,
 * and where asked also stores into them. Each access of a page that is not on the host is a host
 * fault, and the fault service brings in the granule around it: the step's own pages too, as a
 * fault's neighbours. That is the combination the stress programs did not make, and that lost data
 * three times (a launch running by device faults, DONT_NEED, a load to the device, each beside
 * such faults): the unit tests that found it time their touches by hand, this one fuzzes them.
 *
 * <p>Every long read is checked as it is read: a page the step leaves alone must read as the
 * model says (no other thread changes its bytes meanwhile: other workers only move pages, and this
 * thread's own stores go into the model as they are made), and where the caller knows no single
 * value (a region being loaded) its {@link Expect} accepts each value that may be there. What the
 * step does to its own pages is checked by the worker after it, as before.
 */
final class SideAccesses implements AutoCloseable {
    /** What a long at byte offset {@code at} may read. */
    @FunctionalInterface
    interface Expect {
        /** Null if {@code value} is right, else what was expected (for the message). */
        String check(long at, long value);
    }

    /** At most this long between two accesses. */
    private static final long PAUSE_NANOS = 50_000;

    private final AtomicBoolean stop = new AtomicBoolean();
    private final Thread thread;
    private volatile String mismatch;
    private volatile RuntimeException failure;

    /**
     * Starts reading pages {@code readable} allows, in [from, to) of the view {@code region} gives
     * (byte offsets; polled until it gives one: a region being loaded is not known before), chosen
     * at random with {@code seed}, until {@link #close}.
     */
    SideAccesses(Supplier<MemorySegment> region, long from, long to, LongPredicate readable, Expect expect, long seed) {
        this(region, () -> false, from, to, readable, expect, null, p -> false, seed);
    }

    /**
     * As above, and one access in four a store of a random long into a page {@code writable} allows,
     * made in {@code model} too (the step's region's bytes, which {@code expect} reads): the step
     * must keep it, as it keeps every byte it leaves alone.
     */
    SideAccesses(Supplier<MemorySegment> region, BooleanSupplier freed, long from, long to, LongPredicate readable, Expect expect,
                 byte[] model, LongPredicate writable, long seed) {
        this.thread = Thread.ofPlatform().name("stress-host-accesses-beside").daemon().start(() -> {
            SplittableRandom rnd = new SplittableRandom(seed);
            long pages = Math.ceilDiv(to, PAGE_BYTES) - from / PAGE_BYTES;
            MemorySegment view = null;
            try {
                while (!stop.get() && view == null) {
                    view = region.get();
                    Thread.onSpinWait();
                }
                int misses = 0;
                while (!stop.get() && pages > 0) {
                    long page = from / PAGE_BYTES + rnd.nextLong(pages);
                    if (!readable.test(page)) {
                        if (++misses % 64 == 0) {
                            LockSupport.parkNanos(PAUSE_NANOS);
                        }
                        continue;
                    }
                    // a pause after each access: host code that touches pages now and then. In a tight loop
                    // it took a core of two, and its faults kept stealing a launch's argument pages in the
                    // granules it touched before the launch could pin them: ensure started over each time,
                    // and one 200-step program took 100 s
                    LockSupport.parkNanos(rnd.nextLong(PAUSE_NANOS));
                    long at = page * PAGE_BYTES + 8L * rnd.nextInt((int) (PAGE_BYTES / 8));
                    if (at + 8 > view.byteSize()) {
                        continue;
                    }
                    if (model != null && writable.test(page) && rnd.nextInt(4) == 0) {
                        long w = rnd.nextLong();
                        view.set(ValueLayout.JAVA_LONG_UNALIGNED, at, w);
                        for (int i = 0; i < 8; i++) {
                            model[(int) at + i] = (byte) (w >>> (8 * i));
                        }
                        continue;
                    }
                    long v = view.get(ValueLayout.JAVA_LONG_UNALIGNED, at);
                    String wrong = expect.check(at, v);
                    if (wrong != null) {
                        if (v == 0 && freed.getAsBoolean()) {
                            // a fault on a region being freed (or closed with its memory) reads zeros: the
                            // fault service answers a killed region's faults so, for its view to close, and
                            // only once the region is marked freed, so this is asked right after the read (a
                            // zero read before any free began stays a mismatch). Not a lost store but a free
                            // under the read, reported as the free it was
                            failure = new IllegalStateException("the region was freed under a host read beside the step "
                                    + "(at byte " + at + ", zeros where " + wrong + " was)");
                            return;
                        }
                        mismatch = "a host read beside the step, at byte " + at + ", read " + v + "; expected " + wrong;
                        return;
                    }
                }
            } catch (IllegalStateException closed) {
                if (view == null || view.scope().isAlive()) {
                    failure = closed;
                }   // else the region went: a load that failed (an injected failure) frees its region
            } catch (RuntimeException e) {
                failure = e;
            }
        });
    }

    /** Expects the model's bytes: the long at {@code at} of {@code bytes} (little-endian, as the host stores). */
    static Expect model(byte[] bytes) {
        return (at, value) -> {
            long want = longAt(bytes, at);
            return want == value ? null : String.valueOf(want);
        };
    }

    static long longAt(byte[] bytes, long at) {
        long v = 0;
        for (int i = 7; i >= 0; i--) {
            int k = (int) at + i;
            v = (v << 8) | (k < bytes.length ? bytes[k] & 0xFF : 0);
        }
        return v;
    }

    /** Stops the accesses and throws a {@link StressRun.Mismatch} if one read was wrong or an access failed. */
    @Override
    public void close() {
        stop.set(true);
        // the step's interrupt is the step's: this thread still stops, and the flag stays
        dev.hetmem.internal.Uninterruptibly.join(thread, 0);
        if (mismatch != null) {
            throw new StressRun.Mismatch(mismatch);
        }
        if (failure != null) {
            StressRun.Mismatch m = new StressRun.Mismatch("a host access beside the step failed: " + failure);
            m.initCause(failure);
            throw m;
        }
    }
}
