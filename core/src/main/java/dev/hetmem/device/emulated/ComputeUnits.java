package dev.hetmem.device.emulated;

import dev.hetmem.driver.DeviceFaultHandler;
import dev.hetmem.driver.KernelBinding;
import dev.hetmem.driver.VaRanges;
import dev.hetmem.internal.CallerThreads;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;

import static dev.hetmem.driver.PageGeometry.PAGE_SHIFT;

/**
 * The emulated device's compute units: a launch's work items handed out in chunks
 * ({@link WorkItems}) to the calling thread and the compute pool (or, for a launch that takes
 * device faults, threads of its own), each item
 * reaching memory through the device page table, and the translation epochs an invalidation waits
 * for ({@link TranslationEpochs}).
 */
final class ComputeUnits {
    private final String name;
    private final int computeThreads;
    /** The shared pool of pinned launches; null with one compute thread. */
    private final ExecutorService compute;
    private final EmulatedPageTable pageTable;
    /** Compute threads of faulting launches that may hold translations. */
    private final TranslationEpochs epochs = new TranslationEpochs();
    /** Set on a thread while it runs work items of a kernel of this device. */
    private final ThreadLocal<Boolean> inKernel = new ThreadLocal<>();

    /** The address of a device frame's first byte, checked against the device's memory. */
    @FunctionalInterface
    interface FrameAddresses {
        long address(int frame, int pages);
    }

    private final FrameAddresses frames;

    ComputeUnits(String name, int computeThreads, ExecutorService compute, EmulatedPageTable pageTable, FrameAddresses frames) {
        this.name = name;
        this.computeThreads = computeThreads;
        this.compute = compute;
        this.pageTable = pageTable;
        this.frames = frames;
    }

    boolean runsKernelOnCurrentThread() {
        return inKernel.get() != null;
    }

    boolean holdsTranslationsOnCurrentThread() {
        return epochs.heldByCurrentThread();
    }

    /** Returns once no work item of a faulting launch may still use a translation of {@code ranges}. */
    void awaitQuiescent(VaRanges ranges) {
        epochs.awaitQuiescent(ranges);
    }

    /** Work items [globalOffset, globalOffset + globalSize) of {@code k}; returns when all have run. */
    void run(EmulatedKernel k, long globalOffset, long globalSize, List<KernelBinding> arguments,
             DeviceFaultHandler faults) {
        int parts = (int) Math.min(computeThreads, globalSize);
        long end = globalOffset + globalSize;
        if (parts <= 1 || compute == null) {
            runItems(k, arguments, new WorkItems(globalOffset, end, WorkItems.chunk(globalSize, 1)), faults);
            return;
        }
        // every thread takes chunks until none is left (WorkItems says why not a fixed share each)
        WorkItems items = new WorkItems(globalOffset, end, WorkItems.chunk(globalSize, parts));
        List<Part> helpers = new ArrayList<>(parts - 1);
        // A faulting launch's items wait for frames while they run, and a pinned launch holds frames
        // while its items wait for a compute thread: sharing the pool, each could wait for the other
        // for good. Faulting launches bring threads of their own.
        ExecutorService faultingThreads = faults == null ? null
                : Executors.newThreadPerTaskExecutor(Thread.ofPlatform().name(name + "-faulting-", 0).daemon().factory());
        ExecutorService pool = faults == null ? compute : faultingThreads;
        FaultingThreads running = faults == null ? null : new FaultingThreads(Thread.currentThread());
        // the caller's interrupt, set before the launch: kept whatever this launch's own interrupts do (a wait
        // that takes the flag for a while, TranslationEpochs', hides it from FaultingThreads.fail meanwhile)
        boolean callerInterrupted = Thread.currentThread().isInterrupted();
        Throwable failure = null;
        try {
            for (int t = 1; t < parts; t++) {
                Part part = new Part(k, arguments, items, faults, running);
                part.future = pool.submit(part);
                helpers.add(part);
            }
        } catch (RuntimeException | Error e) {
            // a thread that could not start (no native thread, a pool shut down): the launch fails, and
            // the threads already started stop at their next chunk and are waited for below (those of a
            // faulting launch interrupted, as for any failure of it)
            items.stop();
            failure = e;
            if (running != null) {
                running.fail(e);
            }
        } finally {
            if (faultingThreads != null) {
                faultingThreads.shutdown();   // its tasks run on; their futures are waited for below
            }
        }
        // every thread is waited for, whatever this thread's items threw (an Error too): the launch unpins
        // its arguments when this returns, and frames kept for it may then be freed and reused
        if (failure == null) {
            try {
                runItems(k, arguments, items, faults);
            } catch (Throwable e) {
                // a checked exception too, which a kernel may throw without declaring it (a sneaky throw): it
                // skipped the wait for the helper threads, and the launch unpinned arguments items still used
                failure = e;
                if (running != null) {
                    running.fail(e);
                }
            }
        }
        boolean interrupted = false;
        for (Part part : helpers) {
            if (part.drop()) {
                continue;   // never began, and will not: every chunk is taken (or the launch stopped)
            }
            while (true) {
                try {
                    part.future.get();
                    break;
                } catch (InterruptedException e) {
                    // an interrupt this launch sent to its own thread is not its caller's
                    interrupted |= running == null || !running.interruptedTheLauncher();
                    if (running != null) {
                        // a faulting launch stops: its items may wait in the engine with no deadline
                        // (for a view whose owner may wait for this launch), so waiting on is no answer
                        items.stop();
                        running.fail(new dev.hetmem.InterruptedOperationException("interrupted while the work items of a launch on " + name
                                + " ran; the launch stopped, some items never ran", e));
                    }
                } catch (ExecutionException e) {
                    if (failure == null) {
                        // as the launching thread's own items' failure reaches the caller: an Error too, unwrapped
                        failure = e.getCause() instanceof RuntimeException || e.getCause() instanceof Error ? e.getCause()
                                : new IllegalStateException("kernel failed on " + name, e.getCause());
                    }
                    break;
                }
            }
        }
        if (running != null) {
            if (running.interruptedTheLauncher()) {
                Thread.interrupted();   // the interrupt meant to end this thread's wait, not its caller's
            }
            if (running.firstFailure() != null) {
                // what failed the launch, not what the interrupts it sent then made the others throw
                failure = running.firstFailure();
            }
        }
        if (interrupted || callerInterrupted) {
            Thread.currentThread().interrupt();
        }
        if (failure != null) {
            throw unchecked(failure);
        }
    }

    /** {@code t} as the launch throws it: an unchecked one as it is, a checked one (undeclared) wrapped. */
    private RuntimeException unchecked(Throwable t) {
        if (t instanceof Error e) {
            throw e;
        }
        return t instanceof RuntimeException re ? re : new IllegalStateException("kernel failed on " + name + ": " + t, t);
    }

    /**
     * A helper thread's part of a launch, queued on a pool: it begins only if the launch still wants
     * it. Once the launching thread has run out of chunks, a part that has not begun is dropped
     * instead of waited for: it would find nothing left, and waiting could be for good where the
     * launching thread is itself the pool's only thread (a kernel item that launches a kernel).
     * {@code state} goes QUEUED to RUNNING (the pool's thread, in {@link #run}) or QUEUED to
     * DROPPED (the launching thread, in {@link #drop}), once.
     */
    private final class Part implements Runnable {
        private static final int QUEUED = 0;
        private static final int RUNNING = 1;
        private static final int DROPPED = 2;
        private final AtomicInteger state = new AtomicInteger(QUEUED);
        private final EmulatedKernel kernel;
        private final List<KernelBinding> arguments;
        private final WorkItems items;
        private final DeviceFaultHandler faults;
        /** A faulting launch's threads, or null. */
        private final FaultingThreads running;
        /** The launch this part's items belong to ({@link CallerThreads}): its pins are their thread's own. */
        private final Object launch = CallerThreads.launch();
        Future<?> future;

        Part(EmulatedKernel kernel, List<KernelBinding> arguments, WorkItems items, DeviceFaultHandler faults,
             FaultingThreads running) {
            this.kernel = kernel;
            this.arguments = arguments;
            this.items = items;
            this.faults = faults;
            this.running = running;
        }

        @Override
        public void run() {
            if (!state.compareAndSet(QUEUED, RUNNING)) {
                return;
            }
            // items run acting for their launch: a work item that asks for its own launch's pinned pages
            // elsewhere is refused as on the launching thread, not left waiting for that launch's end
            if (running == null) {
                CallerThreads.runFor(launch, () -> runItems(kernel, arguments, items, faults));
                return;
            }
            running.enter();   // a thread of its own, which ends with this task: no interrupt outlives it
            try {
                CallerThreads.runFor(launch, () -> runItems(kernel, arguments, items, faults));
            } catch (Throwable e) {
                running.fail(e);   // the others stop, whatever it threw (an undeclared checked exception too)
                throw unchecked(e);
            } finally {
                running.exit();
            }
        }

        /** Whether this part is dropped now (it had not begun); false if it runs or ran. */
        boolean drop() {
            return state.compareAndSet(QUEUED, DROPPED);
        }
    }

    /**
     * The threads running a faulting launch's items: the launching thread and its helpers. A
     * device fault may wait in the engine with no deadline (for a pin: a host view another thread
     * holds, whose owner may be waiting for this launch's outcome). Once the launch fails (an item
     * threw, or the launching thread was interrupted) no item needs to go on, so every other thread
     * of the launch is interrupted: the engine's waits for pins and for room end on an interrupt,
     * at points where no batch is half done, and the launch reports its failure instead of waiting
     * for good. Helpers are threads of their own (they end with the launch); the launching thread
     * is interrupted only while it runs items or waits for the helpers, and its flag is cleared
     * before it returns. Lock L28 (this object's monitor), a leaf: docs/design.md, lock table.
     */
    private static final class FaultingThreads {
        private final Thread launcher;
        private final List<Thread> helpers = new ArrayList<>();
        private Throwable failed;
        private boolean interruptedLauncher;

        FaultingThreads(Thread launcher) {
            this.launcher = launcher;
        }

        /** A helper begins; after a failure it is interrupted at once (its first wait ends). */
        synchronized void enter() {
            helpers.add(Thread.currentThread());
            if (failed != null) {
                Thread.currentThread().interrupt();
            }
        }

        synchronized void exit() {
            helpers.remove(Thread.currentThread());
        }

        /**
         * The launch failed ({@code why}): every other thread of it is interrupted, once. What they
         * throw then is a consequence; the first failure is the launch's.
         */
        synchronized void fail(Throwable why) {
            if (failed != null) {
                return;
            }
            failed = why;
            Thread self = Thread.currentThread();
            for (Thread t : helpers) {
                if (t != self) {
                    t.interrupt();
                }
            }
            if (launcher != self && !launcher.isInterrupted()) {
                // an interrupt already set is the caller's, and stays set for it: the launching thread's
                // wait ends on it anyway, and this launch clears only one it sent itself
                launcher.interrupt();
                interruptedLauncher = true;
            }
        }

        synchronized boolean interruptedTheLauncher() {
            return interruptedLauncher;
        }

        /** The failure that stopped the launch, or null. */
        synchronized Throwable firstFailure() {
            return failed;
        }
    }

    /**
     * Runs chunks of {@code items} on this thread until none is left; an item that throws stops the
     * handing out of chunks (the launch fails: the items not yet begun need not run) and is thrown.
     */
    private void runItems(EmulatedKernel k, List<KernelBinding> arguments, WorkItems items,
                          DeviceFaultHandler faults) {
        Boolean outer = inKernel.get();   // a kernel may launch another on this thread
        inKernel.set(Boolean.TRUE);
        try {
            if (faults == null) {
                runItemsMarked(k, arguments, items, null, null);
            } else {
                runFaulting(k, arguments, items, faults);
            }
        } catch (Throwable e) {
            // whatever an item threw (an undeclared checked exception too: the other threads ran every item
            // left after the launch had failed), the items not yet begun need not run; as the launch throws it
            items.stop();
            throw unchecked(e);
        } finally {
            if (outer == null) {
                inKernel.remove();
            }
        }
    }

    /** Work items of a faulting launch: this thread's translations are tracked (TranslationEpochs). */
    private void runFaulting(EmulatedKernel k, List<KernelBinding> arguments, WorkItems items,
                             DeviceFaultHandler faults) {
        long[] starts = new long[arguments.size()];
        long[] ends = new long[arguments.size()];
        for (int i = 0; i < starts.length; i++) {
            starts[i] = arguments.get(i).va();
            ends[i] = starts[i] + arguments.get(i).length();
        }
        TranslationEpochs.Slot slot = epochs.register(starts, ends);
        try {
            runItemsMarked(k, arguments, items, faults, slot);
        } finally {
            epochs.unregister(slot);
        }
    }

    private void runItemsMarked(EmulatedKernel k, List<KernelBinding> arguments, WorkItems items,
                                DeviceFaultHandler faults, TranslationEpochs.Slot slot) {
        DeviceBuffer[] buffers = new DeviceBuffer[arguments.size()];
        for (int i = 0; i < buffers.length; i++) {
            KernelBinding b = arguments.get(i);
            buffers[i] = new DeviceBuffer(pageTable, b.va(), b.length(), b.windowFrom(), b.windowTo(), b.access(), faults, slot);
        }
        MemorySegment[] plain = new MemorySegment[buffers.length];
        for (int i = 0; i < buffers.length; i++) {
            KernelBinding b = arguments.get(i);
            if (k.plainArgument(i) && b.length() > 0) {
                // pinned for the launch in consecutive frames: one pointer reaches the whole argument. Bound
                // by the frame the core named (the page table may already name another for a later launch)
                long inPage = b.va() & ((1L << PAGE_SHIFT) - 1);
                long address = b.firstFrame() >= 0
                        ? frames.address(Math.toIntExact(b.firstFrame()), Math.toIntExact(Math.ceilDiv(inPage + b.length(), 1L << PAGE_SHIFT)))
                        + inPage
                        : pageTable.contiguousAddress(b.va(), b.length(), b.access().writes());
                MemorySegment m = MemorySegment.ofAddress(address).reinterpret(b.length());
                plain[i] = b.access().writes() ? m : m.asReadOnly();
            }
        }
        KernelArgs args = new KernelArgs(buffers, plain);
        for (long from = items.claim(); from >= 0; from = items.claim()) {
            long to = items.endOf(from);
            for (long item = from; item < to; item++) {
                if (slot == null) {
                    k.run(args, item);
                    continue;
                }
                slot.enter();
                try {
                    k.run(args, item);
                } finally {
                    slot.leave();
                }
            }
        }
    }
}
