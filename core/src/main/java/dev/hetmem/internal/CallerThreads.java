package dev.hetmem.internal;

/**
 * Which pins count as the calling thread's own: those it holds, and those the launching thread
 * held when it launched the kernel whose work items the calling thread runs.
 *
 * <p>A launch pins its arguments on the launching thread (they stay on the device while the
 * kernel runs), but the emulated device runs the kernel's work items on its compute threads too.
 * A work item that asks for one of those pages elsewhere (a host view of its own argument, a
 * prefetch of it home) would wait for the launch's pin, which goes only once that very item has
 * returned: on the launching thread the engine refuses such a call ({@code PinnedByCallerException}),
 * on a compute thread it waited for ever. The same holds for every pin the launching thread took
 * before it launched (a host view it keeps open over the launch): it releases one only once the
 * launch returns (an item on its thread could close such a view earlier; a call that needs the
 * page is refused then rather than left to wait on the item's choice). So the launch runs its
 * kernel {@link #launching}, a compute thread runs the items {@link #runFor acting for} that
 * launch, and the engine's test "is this pin the caller's own?" ({@link #isCallers}) says yes to
 * those pins too.
 *
 * <p>Not to the pins the launching thread takes after it launched: it runs items too, and an item
 * there may hold a pin of its own for a while (a host view it opens, a kernel it launches); an
 * item on a compute thread that needs that page waits for it, as any other thread does. Pins are
 * told apart by a number each thread gives the pins it takes, in order ({@link #nextPinNumber}),
 * against the number the launching thread had reached when it launched. Acting is nested: a work
 * item that launches a kernel acts for its launch, and the inner kernel's compute threads act for
 * both launches.
 *
 * <p>Both are per thread: the acting launch a {@link ScopedValue}, bound only while the kernel or
 * the items run, on the thread that runs them, and gone when they return or throw (a pooled
 * compute thread carries nothing to its next task); the pin numbers a thread-local counter that
 * only its thread reads and writes.
 */
public final class CallerThreads {
    /** A launch: its thread, the number of the last pin that thread had taken, and the launch it runs inside. */
    private record Acting(Thread launcher, long lastPin, Acting outer) {}

    private static final ScopedValue<Acting> ACTING = ScopedValue.newInstance();
    /** The number of the last pin the calling thread took (0: none). */
    private static final ThreadLocal<long[]> PINS_TAKEN = ThreadLocal.withInitial(() -> new long[1]);

    private CallerThreads() {
    }

    private static Acting current() {
        return ACTING.isBound() ? ACTING.get() : null;
    }

    /** The number of a pin the calling thread takes now: above every earlier one of this thread's. */
    static long nextPinNumber() {
        return ++PINS_TAKEN.get()[0];
    }

    /** Runs a launch's kernel ({@code execute}): its work items act, wherever they run, for the pins this thread holds now. */
    public static void launching(Runnable execute) {
        ScopedValue.where(ACTING, new Acting(Thread.currentThread(), PINS_TAKEN.get()[0], current())).run(execute);
    }

    /**
     * The launch the calling thread runs a kernel for (inside {@link #launching}), to hand to the
     * threads that will run its work items; null outside any.
     */
    public static Object launch() {
        return current();
    }

    /** Runs {@code work} (a launch's work items) on the calling thread acting for {@code launch} ({@link #launch}; null: for none). */
    public static void runFor(Object launch, Runnable work) {
        if (launch == null) {
            work.run();
        } else {
            ScopedValue.where(ACTING, (Acting) launch).run(work);
        }
    }

    /**
     * Whether {@code p} is the calling thread's own: it holds it, or it runs work items of a launch
     * whose thread held it when it launched (that launch's pins, and any its thread kept over it).
     */
    public static boolean isCallers(Pins.Pin p) {
        if (p.owner() == Thread.currentThread()) {
            return true;
        }
        for (Acting a = current(); a != null; a = a.outer()) {
            if (a.launcher() == p.owner() && p.number() <= a.lastPin()) {
                return true;
            }
        }
        return false;
    }
}
