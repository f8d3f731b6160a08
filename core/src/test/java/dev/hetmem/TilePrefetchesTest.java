package dev.hetmem;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The queue of a tiled launch's coming tiles' prefetches: order, one at a time, failures, cancellation. */
class TilePrefetchesTest {
    /** Prefetches run in the order asked for, never two at once, each awaited with what it moved. */
    @Test
    void prefetchesRunInOrderOneAtATime() throws Exception {
        ExecutorService pool = Executors.newCachedThreadPool();
        try {
            TilePrefetches q = new TilePrefetches(pool);
            List<Integer> order = Collections.synchronizedList(new ArrayList<>());
            AtomicInteger running = new AtomicInteger();
            AtomicInteger most = new AtomicInteger();
            List<TilePrefetches.Prefetch> ps = new ArrayList<>();
            for (int k = 0; k < 40; k++) {
                int tile = k;
                ps.add(q.submit(() -> {
                    most.accumulateAndGet(running.incrementAndGet(), Math::max);
                    order.add(tile);
                    Thread.onSpinWait();
                    running.decrementAndGet();
                    return 10L * tile;
                }));
                if (k % 7 == 0) {
                    Thread.sleep(1);   // the queue empties now and then: a new thread drains the rest
                }
            }
            for (int k = 0; k < ps.size(); k++) {
                assertEquals(10L * k, q.await(ps.get(k)), "what prefetch " + k + " moved");
            }
            List<Integer> want = new ArrayList<>();
            for (int k = 0; k < 40; k++) {
                want.add(k);
            }
            assertEquals(want, order, "in the order asked for");
            assertEquals(1, most.get(), "one at a time");
        } finally {
            pool.shutdownNow();
        }
    }

    /** A prefetch's RuntimeException is only a lost head start (0 moved); an Error reaches its await. */
    @Test
    void aRuntimeExceptionIsALostHeadStartAndAnErrorIsRethrown() {
        ExecutorService pool = Executors.newSingleThreadExecutor();
        try {
            TilePrefetches q = new TilePrefetches(pool);
            TilePrefetches.Prefetch failed = q.submit(() -> {
                throw new IllegalStateException("no room");
            });
            AssertionError error = new AssertionError("broken");
            TilePrefetches.Prefetch broken = q.submit(() -> {
                throw error;
            });
            TilePrefetches.Prefetch after = q.submit(() -> 7L);
            assertEquals(0, q.await(failed));
            assertSame(error, assertThrows(AssertionError.class, () -> q.await(broken)));
            assertEquals(7, q.await(after), "the queue goes on after a failure");
            assertEquals(null, q.cancel(), "an Error its await rethrew is not reported again");
        } finally {
            pool.shutdownNow();
        }
    }

    /**
     * Cancelling interrupts the running prefetch (a wait of the engine's ends on it), drops those
     * not begun (they never run, their awaits return at once), waits for the running one to end,
     * and reports an Error no await rethrew.
     */
    @Test
    void cancelInterruptsTheRunningOneDropsTheRestAndWaitsForItsEnd() throws Exception {
        ExecutorService pool = Executors.newCachedThreadPool();
        try {
            TilePrefetches q = new TilePrefetches(pool);
            CountDownLatch started = new CountDownLatch(1);
            AtomicInteger ended = new AtomicInteger();
            AssertionError error = new AssertionError("ended badly");
            TilePrefetches.Prefetch waiting = q.submit(() -> {
                if (waitUntilInterrupted(started)) {
                    ended.incrementAndGet();
                    throw error;
                }
                return 1L;
            });
            AtomicInteger laterRan = new AtomicInteger();
            TilePrefetches.Prefetch later = q.submit(() -> {
                laterRan.incrementAndGet();
                return 2L;
            });
            assertTrue(started.await(20, TimeUnit.SECONDS));
            assertSame(error, q.cancel(), "the Error the cancelled one ended with");
            assertEquals(1, ended.get(), "the running prefetch had ended when cancel returned");
            assertEquals(0, q.await(later), "a dropped prefetch moved nothing");
            assertEquals(0, laterRan.get(), "a dropped prefetch never runs");
            assertSame(error, assertThrows(AssertionError.class, () -> q.await(waiting)));
            TilePrefetches.Prefetch afterCancel = q.submit(() -> {
                laterRan.incrementAndGet();
                return 3L;
            });
            assertEquals(0, q.await(afterCancel), "nothing runs once cancelled");
            assertEquals(0, laterRan.get());
        } finally {
            pool.shutdownNow();
        }
    }

    /** An executor that refuses the thread (the memory closing): the prefetches never run, awaits return 0. */
    @Test
    void aRefusingExecutorLosesOnlyTheHeadStart() {
        AtomicInteger ran = new AtomicInteger();
        TilePrefetches q = new TilePrefetches(r -> {
            throw new RejectedExecutionException("shut down");
        });
        TilePrefetches.Prefetch p = q.submit(() -> {
            ran.incrementAndGet();
            return 5L;
        });
        assertEquals(0, q.await(p));
        assertEquals(0, ran.get());
        assertEquals(null, q.cancel());
    }

    /**
     * An executor that fails to start the thread in another way (an Error of its thread factory):
     * the failure reaches the caller, and a cancel after it returns rather than waits for a drain
     * that never began.
     */
    @Test
    void anExecutorThatThrowsAnythingElseLeavesNothingToWaitFor() throws Exception {
        InternalError broken = new InternalError("no thread");
        TilePrefetches q = new TilePrefetches(r -> {
            throw broken;
        });
        assertSame(broken, assertThrows(InternalError.class, () -> q.submit(() -> 1L)));
        var cancel = java.util.concurrent.CompletableFuture.supplyAsync(q::cancel);
        assertEquals(null, cancel.get(20, TimeUnit.SECONDS), "cancel returned");
    }

    /** A launching thread interrupted while it waits: every prefetch cancelled, the interrupt kept. */
    @Test
    void anInterruptedAwaitCancelsAndKeepsTheInterrupt() throws Exception {
        ExecutorService pool = Executors.newCachedThreadPool();
        try {
            TilePrefetches q = new TilePrefetches(pool);
            CountDownLatch started = new CountDownLatch(1);
            AtomicInteger interrupted = new AtomicInteger();
            TilePrefetches.Prefetch stuck = q.submit(() -> {
                if (waitUntilInterrupted(started)) {
                    interrupted.incrementAndGet();
                }
                return 1L;
            });
            assertTrue(started.await(20, TimeUnit.SECONDS));
            Thread.currentThread().interrupt();
            assertThrows(InterruptedOperationException.class, () -> q.await(stuck));
            assertTrue(Thread.interrupted(), "the interrupt kept for the caller");
            assertEquals(1, interrupted.get(), "the running prefetch was interrupted and had ended");
            assertFalse(Thread.currentThread().isInterrupted());
        } finally {
            pool.shutdownNow();
        }
    }

    /** A prefetch's wait as the engine's for a pin: says it began, then waits until interrupted (returns true then). */
    private static boolean waitUntilInterrupted(CountDownLatch started) {
        started.countDown();
        try {
            new CountDownLatch(1).await();
            return false;
        } catch (InterruptedException e) {
            return true;
        }
    }
}
