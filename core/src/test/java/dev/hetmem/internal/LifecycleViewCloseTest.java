package dev.hetmem.internal;

import org.junit.jupiter.api.Test;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link Lifecycle#closeTakingOwnViews} when a view of the closing thread fails to close (its
 * segment held by a native call that still runs), with a second closer waiting for it. From a
 * review: the second closer waited for the first, found the operations ended, and went on to tear
 * the region down while the view that failed to close was still open.
 */
class LifecycleViewCloseTest {

    /** A view of its opening thread whose close waits for {@code release}, then fails as a held arena does. */
    private static final class HeldView implements Lifecycle.View {
        private final Thread owner = Thread.currentThread();
        private final CountDownLatch closing = new CountDownLatch(1);
        private final CountDownLatch release = new CountDownLatch(1);

        @Override
        public Thread owner() {
            return owner;
        }

        @Override
        public void abandon() {
        }

        @Override
        public void close() {
            closing.countDown();
            try {
                release.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            throw new IllegalStateException("Session is acquired by 1 clients");
        }
    }

    /**
     * After a free whose own view failed to close, the region stays closed with that view open:
     * an operation is refused naming the view that failed, not "operations still running", which
     * nothing was (the refusal said that, sending the user to wait for operations that had ended).
     */
    @Test
    void anOperationAfterAViewFailedToCloseIsRefusedNamingTheView() throws Exception {
        Lifecycle region = new Lifecycle("region 1");
        AtomicReference<Throwable> failed = new AtomicReference<>();
        CountDownLatch freed = new CountDownLatch(1);
        CountDownLatch ended = new CountDownLatch(1);
        Thread owner = Thread.ofPlatform().name("view-owner").start(() -> {
            HeldView v = new HeldView();
            v.release.countDown();   // its close fails at once
            region.openView(v);
            try {
                region.closeTakingOwnViews(30_000_000_000L);
            } catch (Throwable t) {
                failed.set(t);
            }
            freed.countDown();
            try {
                ended.await();   // alive, as a thread whose native call still holds the view is
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        try {
            assertTrue(freed.await(10, TimeUnit.SECONDS));
            assertNotNull(failed.get(), "the free failed with its view");
            IllegalStateException refused = assertThrows(IllegalStateException.class, region::enter);
            String m = refused.getMessage();
            assertTrue(m.contains("view-owner") && m.contains("failed to close") && !m.contains("still running"), m);
        } finally {
            ended.countDown();
            owner.join(10_000);
        }
    }

    @Test
    void aCloserWaitingForAViewThatFailsToCloseRefuses() throws Exception {
        Lifecycle region = new Lifecycle("region 1");
        AtomicReference<HeldView> view = new AtomicReference<>();
        AtomicReference<Throwable> first = new AtomicReference<>();
        CountDownLatch opened = new CountDownLatch(1);
        CountDownLatch ended = new CountDownLatch(1);
        Thread owner = Thread.ofPlatform().name("view-owner").start(() -> {
            HeldView v = new HeldView();
            region.openView(v);
            view.set(v);
            opened.countDown();
            try {
                region.closeTakingOwnViews(30_000_000_000L);
            } catch (Throwable t) {
                first.set(t);
            }
            try {
                ended.await();   // alive, as the thread whose native call holds the view is (a dead one's views are taken back)
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        assertTrue(opened.await(10, TimeUnit.SECONDS));
        assertTrue(view.get().closing.await(10, TimeUnit.SECONDS), "the owner's free is closing its view");
        AtomicReference<Throwable> second = new AtomicReference<>();
        AtomicReference<Boolean> secondReturned = new AtomicReference<>();
        Thread closer = Thread.ofPlatform().name("second-closer").start(() -> {
            try {
                secondReturned.set(region.closeTakingOwnViews(30_000_000_000L));
            } catch (Throwable t) {
                second.set(t);
            }
        });
        // the second closer passes the check (the owner is closing its views) and waits for the owner
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (closer.getState() != Thread.State.WAITING && closer.getState() != Thread.State.TIMED_WAITING
                && System.nanoTime() < deadline) {
            Thread.sleep(1);
        }
        assertTrue(closer.isAlive(), "the second closer waits for the owner's views: " + second.get());
        view.get().release.countDown();   // the owner's view fails to close
        closer.join(10_000);
        ended.countDown();
        owner.join(10_000);
        assertFalse(owner.isAlive() || closer.isAlive());
        assertNotNull(first.get(), "the owner's free fails with its view");
        assertNotNull(second.get(), "the second closer went on (returned " + secondReturned.get()
                + ") while a view was still open");
        assertTrue(second.get().getMessage().contains("view-owner") && second.get().getMessage().contains("nothing was freed"),
                second.get().getMessage());
        assertTrue(region.isClosed());
    }
    /**
     * A free that comes while another thread is closing its view (the segment closed, the pin being
     * released) waits for that close instead of refusing as for an open view: it was refused with
     * "has 1 open host view(s) in thread(s) [view-closer]" (a retry worked), from the session notes'
     * list of host-view gaps. The free does not return before the view is gone.
     */
    @Test
    void aFreeDuringAnotherThreadsViewCloseWaitsForItInsteadOfRefusing() throws Exception {
        for (boolean takingOwnViews : new boolean[] {true, false}) {
            Lifecycle region = new Lifecycle("region 1");
            AtomicReference<HeldView> view = new AtomicReference<>();
            CountDownLatch opened = new CountDownLatch(1);
            CountDownLatch done = new CountDownLatch(1);
            Thread owner = Thread.ofPlatform().name("view-closer").start(() -> {
                HeldView v = new HeldView();   // never closed here: the test takes its close's steps itself
                region.openView(v);
                view.set(v);
                opened.countDown();
                try {
                    done.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
            assertTrue(opened.await(10, TimeUnit.SECONDS));
            HeldView v = view.get();
            // HostView.close's first step, as its owner takes it: the segment closed, the pin about to go
            region.closingView(v);
            AtomicReference<Throwable> freeFailed = new AtomicReference<>();
            CountDownLatch freeReturned = new CountDownLatch(1);
            Thread freer = Thread.ofPlatform().name("freer").start(() -> {
                try {
                    if (takingOwnViews) {
                        region.closeTakingOwnViews(TimeUnit.SECONDS.toNanos(10));
                    } else {
                        region.close(TimeUnit.SECONDS.toNanos(10));
                    }
                } catch (Throwable t) {
                    freeFailed.set(t);
                } finally {
                    freeReturned.countDown();
                }
            });
            assertFalse(freeReturned.await(200, TimeUnit.MILLISECONDS), "the free waits for the view being closed");
            region.closeView(v);   // the pin is gone: HostView.close's last step
            assertTrue(freeReturned.await(10, TimeUnit.SECONDS), "the free ends once the view is closed");
            assertNull(freeFailed.get(), (takingOwnViews ? "free" : "close") + " refused: " + freeFailed.get());
            assertTrue(region.isClosed());
            done.countDown();
            owner.join(10_000);
            freer.join(10_000);
        }
    }
}
