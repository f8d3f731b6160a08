package dev.hetmem.device.emulated;

import dev.hetmem.driver.VaRanges;

import java.lang.invoke.VarHandle;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

/**
 * The emulated device's TLB shootdown for launches that take device faults: which compute threads
 * may be using a translation of the device page table, and the wait an invalidation does for them.
 *
 * <p>Launches whose pages are all resident and pinned for the whole run need none of this: the
 * engine never changes an entry a pinned page uses. A faulting launch pins nothing, so an entry its
 * work items use may be unmapped at any time by another thread's migration (an eviction, a host
 * access), and the frame behind it copied from and reused. The protocol that keeps that safe:
 *
 * <ol>
 *   <li>Each compute thread of a faulting launch has a {@link Slot} whose counter is odd while the
 *       thread may hold a translation: from before its first page-table read of a work item until
 *       after its last access through it, except while it is inside a device fault (the
 *       {@code DeviceFaultHandler} contract: it holds no translation then).</li>
 *   <li>The engine changes entries (unmap, protect) and then calls {@code invalidate}, before it
 *       copies from the frames or frees them (revoke precedes copy; frees follow commit).
 *       {@link #awaitQuiescent} issues a full fence after the entry writes, then reads every slot
 *       whose launch covers the invalidated ranges; for each odd counter it waits until the counter
 *       changes.</li>
 *   <li>The thread side makes its counter odd by an atomic increment followed by a full fence,
 *       before it reads an entry (entries are plain 64-bit writes, which HotSpot on 64-bit platforms
 *       does not tear). So for any translation and invalidation, either the thread's increment comes first
 *       and the invalidation sees the odd counter and waits for the thread to leave the item (or enter
 *       a fault), or the invalidation's fence comes first and the thread's read sees the changed
 *       entry. Hence no access through a stale translation happens after {@code invalidate} returns:
 *       the copy that follows sees every store, and a freed frame is never written.</li>
 * </ol>
 *
 * <p>No deadlock: the waiting thread holds block locks, but a waited-for thread either finishes its
 * work item without any lock (memory accesses only) or enters a fault, which makes it quiescent
 * before it asks for any lock. A thread never waits for its own slot (a kernel that launches
 * another on its own thread, or a fault that evicts).
 */
// Lock L23 (translation epoch): docs/design.md, lock table, L23.
final class TranslationEpochs {
    /** One compute thread of one faulting launch. */
    static final class Slot {
        private final AtomicLong counter = new AtomicLong();
        private final long[] starts;
        private final long[] ends;
        final Thread owner = Thread.currentThread();

        Slot(long[] starts, long[] ends) {
            this.starts = starts;
            this.ends = ends;
        }

        /** Before a work item's first translation (or after a fault, before the retry). */
        void enter() {
            counter.incrementAndGet();   // odd: may hold translations
            VarHandle.fullFence();       // the counter's write before any entry read (see the protocol)
        }

        boolean odd() {
            return (counter.get() & 1) != 0;
        }

        /** After a work item's last access (or on entering a fault). */
        void leave() {
            counter.incrementAndGet();   // even: holds none
        }

        boolean covers(VaRanges ranges) {
            for (int i = 0; i < ranges.size(); i++) {
                long a = ranges.start(i);
                long b = a + ranges.length(i);
                for (int j = 0; j < starts.length; j++) {
                    if (a < ends[j] && starts[j] < b) {
                        return true;
                    }
                }
            }
            return false;
        }
    }

    private final Set<Slot> slots = ConcurrentHashMap.newKeySet();
    /** The calling thread's slot while it runs items of a faulting launch. */
    private final ThreadLocal<Slot> current = new ThreadLocal<>();

    Slot register(long[] starts, long[] ends) {
        Slot s = new Slot(starts, ends);
        slots.add(s);
        current.set(s);
        return s;
    }

    void unregister(Slot s) {
        slots.remove(s);
        if (current.get() == s) {
            current.remove();
        }
    }

    /** Whether the calling thread is inside a work item of a faulting launch (not inside a fault). */
    boolean heldByCurrentThread() {
        Slot s = current.get();
        return s != null && s.odd();
    }

    /** Returns once no compute thread may still use a translation of {@code ranges} read before the call. */
    void awaitQuiescent(VaRanges ranges) {
        VarHandle.fullFence();   // the entry writes before the counter reads (see the protocol above)
        if (slots.isEmpty()) {
            return;
        }
        Thread me = Thread.currentThread();
        boolean interrupted = false;
        for (Slot s : slots) {
            if (s.owner == me || !s.covers(ranges)) {
                continue;
            }
            long seen = s.counter.get();
            if ((seen & 1) == 0) {
                continue;
            }
            int spins = 0;
            while (s.counter.get() == seen) {
                if (++spins < 256) {
                    Thread.onSpinWait();
                } else {
                    LockSupport.parkNanos(20_000);
                    // parkNanos returns at once while the flag is set: taken here (the wait must end with the
                    // item's access, whatever the caller's interrupt says) and set again at the end
                    interrupted |= Thread.interrupted();
                }
            }
        }
        if (interrupted) {
            me.interrupt();
        }
    }
}
