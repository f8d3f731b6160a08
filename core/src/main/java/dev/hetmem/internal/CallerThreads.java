package dev.hetmem.internal;

import java.util.List;

/**
 * Which pins count as the calling thread's own: those it holds, and those of the launch whose
 * kernel's work items it runs.
 *
 * <p>A launch pins its arguments on the launching thread (they stay on the device while the
 * kernel runs), but the emulated device runs the kernel's work items on its compute threads too.
 * A work item that asks for one of those pages elsewhere (a host view of its own argument, a
 * prefetch of it home) would wait for the launch's pin, which goes only once that very item has
 * returned: on the launching thread the engine refuses such a call ({@code PinnedByCallerException}),
 * on a compute thread it waited for ever. So the launch runs its kernel {@link #launching} with
 * its pins, a compute thread runs the items {@link #runFor acting for} that launch, and the
 * engine's test "is this pin the caller's own?" ({@link #isCallers}) says yes to those pins too.
 *
 * <p>Only the launch's own pins: the launching thread runs items too, and an item there may hold
 * a pin of its own for a while (a host view it opens, a kernel it launches); an item on a compute
 * thread that needs that page waits for it, as any other thread does. Acting is nested: a work
 * item that launches a kernel acts for its launch, and the inner kernel's compute threads act for
 * both launches.
 *
 * <p>A {@link ScopedValue}: bound only while the kernel or the items run, on the thread that runs
 * them, and gone when they return or throw, so a pooled compute thread carries nothing to its next
 * task.
 */
public final class CallerThreads {
    /** A launch: its thread, the pins it holds for its kernel, and the launch it runs inside (a kernel launched from a work item). */
    private record Acting(Thread launcher, List<Pins.Pin> pins, Acting outer) {}

    private static final ScopedValue<Acting> ACTING = ScopedValue.newInstance();

    private CallerThreads() {
    }

    private static Acting current() {
        return ACTING.isBound() ? ACTING.get() : null;
    }

    /** Runs a launch's kernel ({@code execute}) holding {@code pins}: its work items act for them wherever they run. */
    public static void launching(List<Pins.Pin> pins, Runnable execute) {
        ScopedValue.where(ACTING, new Acting(Thread.currentThread(), pins, current())).run(execute);
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

    /** Whether {@code p} is the calling thread's own: it holds it, or it runs work items of the launch that holds it. */
    public static boolean isCallers(Pins.Pin p) {
        if (p.owner() == Thread.currentThread()) {
            return true;
        }
        for (Acting a = current(); a != null; a = a.outer()) {
            if (a.launcher() == p.owner()) {
                for (Pins.Pin mine : a.pins()) {
                    if (mine == p) {   // this very pin: two equal pins of one thread are two pins
                        return true;
                    }
                }
            }
        }
        return false;
    }
}
