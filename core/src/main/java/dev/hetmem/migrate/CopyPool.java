package dev.hetmem.migrate;

import dev.hetmem.driver.CopyBatch;
import dev.hetmem.driver.DeviceCopyException;
import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.internal.Uninterruptibly;

import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;

import static dev.hetmem.driver.PageGeometry.PAGE_SHIFT;

/**
 * The CPU copy phase of a migration, spread over worker threads (batched page migration's multi-threaded copy).
 * The calling thread copies one share itself, so {@code threads = 1} is a plain serial copy and
 * N threads use N - 1 workers. Shares are cut by bytes, and operations longer than a share are
 * split, so one 2 MiB page still spreads over every thread.
 */
public final class CopyPool implements AutoCloseable {
    /** Below this a batch is copied by the caller alone: waking workers would cost more. */
    static final long PARALLEL_MIN_BYTES = 256 * 1024;
    /** The largest piece one thread copies at once when a batch is split. */
    static final int SPLIT_PAGES = 64;

    private final int threads;
    private final Thread[] workers;
    /** Lock L11 (copy pool): docs/design.md, lock table, L11. Its tasks take no core lock. */
    private final BlockingQueue<Runnable> queue;

    public CopyPool(int threads) {
        if (threads < 1 || threads > 256) {
            throw new IllegalArgumentException("copy threads " + threads + " outside [1, 256]");
        }
        this.threads = threads;
        this.queue = new ArrayBlockingQueue<>(Math.max(1, threads * 4));
        this.workers = new Thread[threads - 1];
        for (int i = 0; i < workers.length; i++) {
            workers[i] = Thread.ofPlatform().daemon().name("hetmem-copy-" + i).start(this::work);
        }
    }

    public int threads() {
        return threads;
    }

    private void work() {
        while (true) {
            Runnable r;
            try {
                r = queue.take();
            } catch (InterruptedException e) {
                // only STOP ends a worker: one that ended on a stray interrupt (code that interrupts every
                // thread) left the next parallel copy's share queued for no one, its caller waiting for
                // good under its block locks
                continue;
            }
            if (r == STOP) {
                return;
            }
            r.run();   // a task catches what it throws (runAll's)
            Thread.interrupted();   // an interrupt meant for the task's copy is not the next task's
        }
    }

    private static final Runnable STOP = () -> {};

    /** Runs every operation of {@code batch} through {@code driver}; throws the first failure. */
    public void copy(DeviceDriver driver, CopyBatch batch) {
        if (batch.isEmpty()) {
            return;
        }
        if (threads == 1 || batch.bytes() < PARALLEL_MIN_BYTES) {
            driver.copy(batch, 0, batch.size());
            return;
        }
        CopyBatch work = needsSplit(batch) ? split(batch) : batch;
        long share = Math.ceilDiv(work.bytes(), threads);
        int[] cuts = new int[threads + 1];
        int part = 1;
        long acc = 0;
        for (int i = 0; i < work.size() && part < threads; i++) {
            acc += (long) work.pages(i) << PAGE_SHIFT;
            if (acc >= share * part) {
                cuts[part++] = i + 1;
            }
        }
        while (part <= threads) {
            cuts[part++] = work.size();
        }
        Runnable[] tasks = new Runnable[threads];
        for (int t = 0; t < threads; t++) {
            int from = cuts[t];
            int to = cuts[t + 1];
            tasks[t] = () -> {
                if (from < to) {
                    driver.copy(work, from, to);
                }
            };
        }
        runAll(tasks);
    }

    private static boolean needsSplit(CopyBatch batch) {
        for (int i = 0; i < batch.size(); i++) {
            if (batch.pages(i) > SPLIT_PAGES) {
                return true;
            }
        }
        return false;
    }

    /** Runs the tasks on the workers and the caller, one each; waits for all; throws the first failure. */
    public void runAll(Runnable[] tasks) {
        if (tasks.length == 0) {
            return;
        }
        if (tasks.length > threads) {
            throw new IllegalArgumentException(tasks.length + " tasks for " + threads + " threads");
        }
        AtomicReference<Throwable> failure = new AtomicReference<>();
        CountDownLatch done = new CountDownLatch(tasks.length - 1);
        boolean interrupted = false;
        for (int t = 1; t < tasks.length; t++) {
            Runnable task = tasks[t];
            Runnable counted = () -> {
                try {
                    task.run();
                } catch (Throwable e) {
                    failure.compareAndSet(null, e);
                } finally {
                    done.countDown();
                }
            };
            // every task must be queued, interrupted or not: the latch below waits for all of them
            // (the caller holds block locks, L6, and the queue frees as the workers take tasks)
            while (true) {
                try {
                    queue.put(counted);
                    break;
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        try {
            tasks[0].run();
        } catch (Throwable e) {
            failure.compareAndSet(null, e);
        }
        Uninterruptibly.await(done);
        Throwable f = failure.get();
        if (f instanceof RuntimeException re) {
            throw re;
        }
        if (f instanceof Error err) {
            throw err;
        }
        if (f != null) {
            // a checked exception a driver threw without declaring it: a failed copy all the same (returning
            // would commit pages never copied)
            throw new DeviceCopyException("a copy failed: " + f, f);
        }
    }

    private static CopyBatch split(CopyBatch batch) {
        CopyBatch out = new CopyBatch();
        out.streaming(batch.streaming());
        for (int i = 0; i < batch.size(); i++) {
            int pages = batch.pages(i);
            for (int p = 0; p < pages; p += SPLIT_PAGES) {
                int n = Math.min(SPLIT_PAGES, pages - p);
                out.addUnmerged(batch.op(i), batch.op(i) == CopyBatch.ZERO ? 0 : batch.hostAddress(i) + ((long) p << PAGE_SHIFT),
                        batch.frame(i) + p, n);
            }
        }
        return out;
    }

    /**
     * Stops the workers (no task runs any more: the memory has drained) and waits up to 5 s for
     * each. An interrupt of the calling thread does not cut this short, it is kept for the caller:
     * a close on an interrupted thread (a task cancelled with {@code Future.cancel(true)} that
     * closes its memory) queued no stop and left every worker parked for good.
     */
    @Override
    public void close() {
        boolean interrupted = false;
        for (int i = 0; i < workers.length; i++) {
            while (true) {
                try {
                    queue.put(STOP);
                    break;
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
        }
        for (Thread w : workers) {
            long deadline = System.nanoTime() + 5_000_000_000L;
            while (w.isAlive() && System.nanoTime() < deadline) {
                try {
                    w.join(Math.max(1, (deadline - System.nanoTime()) / 1_000_000));
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }
}
