package dev.hetmem.internal;

/**
 * Which threads' pins count as the calling thread's own: its own, and those of the thread whose
 * kernel's work items it runs.
 *
 * <p>A launch pins its arguments on the launching thread (they stay on the device while the
 * kernel runs), but the emulated device runs the kernel's work items on its compute threads too.
 * A work item that asks for one of those pages elsewhere (a host view of its own argument, a
 * prefetch of it home) would wait for the launch's pin, which goes only once that very item has
 * returned: on the launching thread the engine refuses such a call ({@code PinnedByCallerException}),
 * on a compute thread it waited for ever. A compute thread therefore runs a launch's items
 * {@link #runFor acting for} the launching thread, and the engine's test "is this pin the
 * caller's own?" ({@link #isCaller}) says yes to that thread's pins too. Acting is nested: a work
 * item that launches a kernel acts for its launcher, and the inner kernel's compute threads act
 * for the work item's thread and for that launcher.
 *
 * <p>A {@link ScopedValue}: bound only while the items run, on the thread that runs them, and
 * gone when they return or throw, so a pooled compute thread carries nothing to its next task.
 */
public final class CallerThreads {
    /** The thread acted for, and the chain it acts for in turn (a kernel launched from a work item). */
    private record Acting(Thread launcher, Acting outer) {}

    private static final ScopedValue<Acting> ACTING = ScopedValue.newInstance();

    private CallerThreads() {
    }

    /**
     * The calling thread's acting context, to hand to the threads that will run its kernel's items:
     * the calling thread itself, then whatever it acts for.
     */
    public static Object launcherContext() {
        return new Acting(Thread.currentThread(), ACTING.isBound() ? ACTING.get() : null);
    }

    /**
     * Runs {@code work} on the calling thread acting for the launcher that made {@code context}
     * ({@link #launcherContext}): while it runs, that launcher's pins (and those it acts for) are
     * the caller's own.
     */
    public static void runFor(Object context, Runnable work) {
        ScopedValue.where(ACTING, (Acting) context).run(work);
    }

    /** Whether a pin held by {@code owner} is the calling thread's own: {@code owner} is it, or a thread it acts for. */
    public static boolean isCaller(Thread owner) {
        Thread me = Thread.currentThread();
        if (owner == me) {
            return true;
        }
        if (!ACTING.isBound()) {
            return false;
        }
        for (Acting a = ACTING.get(); a != null; a = a.outer()) {
            if (a.launcher() == owner) {
                return true;
            }
        }
        return false;
    }
}
