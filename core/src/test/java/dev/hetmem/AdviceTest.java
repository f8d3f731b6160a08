package dev.hetmem;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeUnit;

import static dev.hetmem.MemoryFixture.MiB;
import static dev.hetmem.MemoryFixture.PAGE;
import static dev.hetmem.MemoryFixture.verified;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Advice on exactly the range given, and the attribute query that reports mixed ranges as mixed. */
class AdviceTest {
    TestDevice dev;
    UnifiedMemory mem;

    @BeforeEach
    void setUp() {
        dev = MemoryFixture.device(8 * MiB);
        mem = MemoryFixture.memory(dev);
    }

    @AfterEach
    void tearDown() {
        verified(mem);
        mem.close();
    }

    @Test
    void asynchronousPrefetchCompletesWithThePagesMoved() throws Exception {
        Region r = mem.allocate(4 * MiB);
        MemoryFixture.fill(r, 0, 4 * MiB, 1);
        CompletableFuture<Long> f = mem.prefetchAsync(r, 0, 4 * MiB, 1);
        assertEquals(1024L, f.get(10, TimeUnit.SECONDS));
        assertEquals(1, r.attributes(0, 4 * MiB).location());
        assertThrows(IllegalArgumentException.class, () -> mem.prefetchAsync(r, 0, 4 * MiB, 5), "bad node now, not later");
        dev.failAllocation(0);
        CompletableFuture<Long> failing = mem.prefetchAsync(r, 0, 4 * MiB, 0).thenCompose(x -> mem.prefetchAsync(r, 0, 4 * MiB, 1));
        var e = assertThrows(CompletionException.class, failing::join);
        assertTrue(e.getCause() instanceof dev.hetmem.driver.DeviceMemoryException, e.toString());
        dev.failAllocation(-1);
        MemoryFixture.check(r, 0, 4 * MiB, 1);
    }

    /**
     * The migration of an asynchronous prefetch runs on another thread: a view of the caller's over
     * the range would keep it waiting, and a caller that then waits for the future before closing the
     * view would wait forever. Refused at once, naming the pinned pages, as a launch refuses them.
     */
    @Test
    void anAsynchronousPrefetchOverTheCallersOwnViewIsRefusedAtOnce() throws Exception {
        Region r = mem.allocate(4 * MiB);
        MemoryFixture.fill(r, 0, 4 * MiB, 3);
        try (HostView v = r.host(MiB, PAGE, Access.READ)) {
            PinnedByCallerException e = assertThrows(PinnedByCallerException.class, () -> mem.prefetchAsync(r, 0, 4 * MiB, 1));
            assertTrue(e.getMessage().contains("pages [256, 257)"), e.getMessage());
            // to the host, where the view holds the page already, nothing waits for it
            assertEquals(0L, mem.prefetchAsync(r, 0, 4 * MiB, 0).get(10, TimeUnit.SECONDS));
            // a granule the view does not reach moves while it stays open
            assertEquals(512L, mem.prefetchAsync(r, 2 * MiB, 2 * MiB, 1).get(10, TimeUnit.SECONDS));
            // a page outside the view but in its 2 MiB granule: it moves, and the neighbours the widening
            // adds move where no pin keeps them (the view's page, with the pages in one state with it, stays)
            assertTrue(mem.prefetchAsync(r, 0, PAGE, 1).get(10, TimeUnit.SECONDS) >= 1);
            assertEquals(1, r.attributes(0, PAGE).location());
            assertEquals(0, r.attributes(MiB, PAGE).location(), "the view's page stayed");
        }
        mem.prefetchAsync(r, 0, 4 * MiB, 1).get(10, TimeUnit.SECONDS);   // the rest, once the view closed
        assertEquals(1, r.attributes(0, 4 * MiB).location());
        MemoryFixture.check(r, 0, 4 * MiB, 3);
    }

    /**
     * The caller's views are checked against the range's granules as they are when the call is
     * made: the migration must not widen the range again later. It did: another thread's coarser
     * granularity, set between the call and the start of the migration, made the page of the
     * caller's view part of the range, and the migration waited for that view for ever (the
     * caller waiting for the future before closing it). Each round races the granularity against
     * the migration's start; the old code hung within a few rounds.
     */
    @Test
    void anAsynchronousPrefetchMovesTheGranulesItWasCheckedAgainst() throws Exception {
        Region r = mem.allocate(2 * MiB, PAGE);   // 4 KiB granules
        MemoryFixture.fill(r, 0, 2 * MiB, 5);
        try (HostView v = r.host(PAGE, PAGE, Access.READ)) {
            for (int round = 0; round < 300; round++) {
                CompletableFuture<Long> f = mem.prefetchAsync(r, 0, PAGE, 1);
                r.advise(0, 2 * MiB, Advice.granularity(2 * MiB));
                // page 0; with the coarser granule its neighbours too, as pages it does not need (the
                // view's page left where it is)
                long moved = f.get(10, TimeUnit.SECONDS);
                assertTrue(moved >= 1 && moved <= 511, "round " + round + ": " + moved + " pages moved");
                assertEquals(0, r.attributes(PAGE, PAGE).location(), "round " + round + ": the view's page stayed");
                r.advise(0, 2 * MiB, Advice.granularity(PAGE));
                r.advise(0, PAGE, Advice.prefetch(0));
            }
        }
        MemoryFixture.check(r, 0, 2 * MiB, 5);
    }

    /**
     * Prefetch advice over a page whose granule holds another thread's view: the page moves and the
     * call does not wait for the view (only the range's own pages would), as a prefetch list's
     * neighbours do. The advice made the whole granule pages it needed and waited for the view,
     * here until the view's thread gave up after 10 s.
     */
    @Test
    void prefetchAdviceDoesNotWaitForAViewOfAGranuleNeighbour() throws Exception {
        Region r = mem.allocate(2 * MiB, 2 * MiB);
        MemoryFixture.fill(r, 0, 2 * MiB, 4);
        java.util.concurrent.CountDownLatch open = new java.util.concurrent.CountDownLatch(1);
        java.util.concurrent.CountDownLatch done = new java.util.concurrent.CountDownLatch(1);
        Thread viewer = Thread.ofPlatform().start(() -> {
            try (HostView v = r.host(MiB, PAGE, Access.READ)) {
                open.countDown();
                done.await(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        try {
            assertTrue(open.await(10, TimeUnit.SECONDS));
            long t0 = System.nanoTime();
            r.advise(0, PAGE, Advice.prefetch(1));
            long waited = System.nanoTime() - t0;
            assertEquals(1, r.attributes(0, PAGE).location());
            assertEquals(0, r.attributes(MiB, PAGE).location(), "the view's page stayed");
            assertTrue(waited < 5_000_000_000L, "waited " + waited / 1_000_000 + " ms for the view");
        } finally {
            done.countDown();
            viewer.join(10_000);
        }
        MemoryFixture.check(r, 0, 2 * MiB, 4);
    }

    @Test
    void blocksPreferringTheDeviceAreEvictedLast() {
        Region kept = mem.allocate(2 * MiB);
        Region streamed = mem.allocate(24 * MiB);
        MemoryFixture.fill(kept, 0, kept.size(), 2);
        kept.advise(0, kept.size(), Advice.preferredLocation(1));
        kept.advise(0, kept.size(), Advice.prefetch(1));       // oldest on the device
        for (long off = 0; off < streamed.size(); off += 2 * MiB) {
            mem.launch(1, dev.noop(), 1, KernelArg.of(streamed, off, 2 * MiB, Access.READ_WRITE));
        }
        assertEquals(1, kept.attributes(0, kept.size()).location(), "the preferring block stayed while 24 MiB streamed");
        assertTrue(mem.stats().node(1).evictions() > 0);
        kept.advise(0, kept.size(), Advice.preferredLocation(-1));
        assertEquals(RangeInfo.NONE, kept.attributes(0, PAGE).preferredLocation());
        assertThrows(IllegalArgumentException.class, () -> kept.advise(0, PAGE, Advice.preferredLocation(3)));
    }

    @Test
    void attributesOfAMixedRangeAreReportedAsMixed() {
        Region r = mem.allocate(8 * MiB, 2 * MiB);
        RangeInfo fresh = r.attributes(0, 8 * MiB);
        assertEquals(2 * MiB, fresh.granularity());
        assertEquals(Protection.READ_WRITE, fresh.protection());
        assertEquals(Boolean.FALSE, fresh.readMostly());
        assertEquals(RangeInfo.NONE, fresh.preferredLocation());
        assertEquals(RangeInfo.NONE, fresh.location(), "untouched");

        r.advise(0, 4 * MiB, Advice.granularity(64 * 1024));
        r.protect(MiB, MiB, Protection.READ_ONLY);
        r.advise(2 * MiB, MiB, Advice.readMostly(true));
        r.advise(0, 2 * MiB, Advice.preferredLocation(1));
        MemoryFixture.fill(r, 4 * MiB, 4 * MiB, 3);
        r.advise(6 * MiB, 2 * MiB, Advice.prefetch(1));
        RangeInfo all = r.attributes(0, 8 * MiB);
        assertEquals(RangeInfo.MIXED, all.granularity());
        assertNull(all.protection());
        assertNull(all.readMostly());
        assertEquals(RangeInfo.MIXED, all.preferredLocation());
        assertEquals(RangeInfo.MIXED, all.location());

        RangeInfo part = r.attributes(MiB, MiB);
        assertEquals(64 * 1024, part.granularity());
        assertEquals(Protection.READ_ONLY, part.protection());
        assertEquals(1, part.preferredLocation());
        assertEquals(0, r.attributes(4 * MiB, 2 * MiB).location());
        assertEquals(1, r.attributes(6 * MiB, 2 * MiB).location());
    }
}
