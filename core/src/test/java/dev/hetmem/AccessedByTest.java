package dev.hetmem;

import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.device.emulated.EmulatedKernel;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.lang.foreign.ValueLayout;

import static dev.hetmem.MemoryFixture.MiB;
import static dev.hetmem.MemoryFixture.PAGE;
import static dev.hetmem.MemoryFixture.verified;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** ACCESSED_BY: a device maps host pages where they are instead of migrating them. */
@Tag("emulated") // remote mappings of host memory: a feature of the emulated driver (canMapHost)
class AccessedByTest {
    EmulatedDevice d1;
    EmulatedDevice d2;
    UnifiedMemory mem;

    @BeforeEach
    void setUp() {
        d1 = MemoryFixture.emulated(8 * MiB);
        d2 = MemoryFixture.emulated(8 * MiB);
        mem = MemoryFixture.memoryOf(d1, d2);
    }

    @AfterEach
    void tearDown() {
        verified(mem);
        mem.close();
    }

    private LaunchResult add(int node, Region r, long off, long len, long delta) {
        return mem.launch(node, (EmulatedKernel) (a, i) -> a.arg(0).putLong(8 * i, a.arg(0).getLong(8 * i) + delta),
                len / 8, KernelArg.of(r, off, len, Access.READ_WRITE));
    }

    @Test
    void aDeviceReadsAndWritesTheHostCopyInPlace() {
        Region r = mem.allocate(4 * MiB);
        MemoryFixture.fill(r, 0, r.size(), 1);
        r.advise(0, r.size(), Advice.accessedBy(1));
        LaunchResult res = add(1, r, 0, r.size(), 5);
        assertEquals(0, res.pagesMigrated(), "nothing moved");
        assertEquals(1024, r.snapshot(0, r.size()).countOn(0), "every page stayed home");
        assertEquals(8 * MiB, mem.stats().node(1).freeBytes(), "no device frame used");
        verified(mem);
        // the host sees the device's writes at once: it is the same memory
        try (HostView v = r.host(0, r.size(), Access.READ)) {
            for (long i = 0; i < r.size() / 8; i++) {
                assertEquals(MemoryFixture.value(1, i) + 5, v.segment().getAtIndex(ValueLayout.JAVA_LONG, i));
            }
        }
        // device 2 has no such advice: its access migrates the pages, and device 1's mappings go
        add(2, r, 0, 2 * MiB, 1);
        assertEquals("node 2 rw", r.snapshot(0, PAGE).describe(0));
        verified(mem);
        // device 1 then sees data on device 2, not on the host: it migrates as usual
        LaunchResult back = add(1, r, 0, 2 * MiB, 1);
        assertEquals(512, back.pagesMigrated());
        try (HostView v = r.host(0, r.size(), Access.READ)) {
            for (long i = 0; i < r.size() / 8; i++) {
                long added = i < (2 * MiB) / 8 ? 5 + 1 + 1 : 5;   // the first half was written twice more
                assertEquals(MemoryFixture.value(1, i) + added, v.segment().getAtIndex(ValueLayout.JAVA_LONG, i), "long " + i);
            }
        }
    }

    @Test
    void protectionAndDiscardReachRemoteMappings() {
        Region r = mem.allocate(2 * MiB);
        MemoryFixture.fill(r, 0, r.size(), 2);
        r.advise(0, r.size(), Advice.accessedBy(1));
        add(1, r, 0, r.size(), 1);
        r.protect(0, r.size(), Protection.READ_ONLY);
        verified(mem);   // the remote entries turned read-only
        assertThrows(ProtectionException.class, () -> add(1, r, 0, PAGE, 1));
        r.protect(0, r.size(), Protection.READ_WRITE);
        verified(mem);
        r.advise(0, r.size(), Advice.dontNeed());
        verified(mem);   // discarded: no remote entry may remain
        try (HostView v = r.host(0, 8, Access.READ)) {
            assertEquals(0, v.segment().get(ValueLayout.JAVA_LONG, 0));
        }
    }

    @Test
    void readDuplicationElsewhereMakesRemoteMappingsReadOnly() {
        Region r = mem.allocate(2 * MiB);
        MemoryFixture.fill(r, 0, r.size(), 3);
        r.advise(0, r.size(), Advice.accessedBy(1));
        r.advise(0, r.size(), Advice.readMostly(true));
        add(1, r, 0, r.size(), 1);                      // remote, writable
        java.lang.foreign.MemorySegment buf = java.lang.foreign.Arena.ofAuto().allocate(PAGE);
        d2.read(r, 0, 1, buf);                           // device 2 takes a read-only copy: the host loses write
        verified(mem);                                   // so device 1's remote entries are read-only now
        add(1, r, 0, PAGE, 1);                           // a write from device 1 collapses to device 1
        assertEquals("node 1 rw", r.snapshot(0, PAGE).describe(0));
        verified(mem);
    }

    /**
     * A thread's read view, then its write view of the same page, where a device maps the host copy in
     * place and another holds a read-only duplicate: the write goes through (the duplicate dropped).
     * It was refused as waiting for the thread's own view (PinnedByCallerException): pages mapped in
     * place counted host views as users of the device entries, which host code never reaches. And a
     * write view of another thread waited for read views. From a review of host views.
     */
    @Test
    void aReadViewUpgradedToWriteOverAPageMappedInPlaceGoesThrough() {
        for (boolean inPlace : new boolean[] {false, true}) {
            Region r = mem.allocate(2 * MiB);
            MemoryFixture.fill(r, 0, r.size(), 3);
            if (inPlace) {
                r.advise(0, r.size(), Advice.accessedBy(1));
            }
            r.advise(0, r.size(), Advice.readMostly(true));
            add(1, r, 0, r.size(), 1);
            java.lang.foreign.MemorySegment buf = java.lang.foreign.Arena.ofAuto().allocate(PAGE);
            d2.read(r, 0, 1, buf);   // a read-only duplicate on device 2: the host's copy read-only too
            try (HostView ro = r.host(0, PAGE, Access.READ); HostView rw = r.host(0, PAGE, Access.READ_WRITE)) {
                rw.segment().set(ValueLayout.JAVA_LONG, 0, 42);
                assertEquals(42, ro.segment().get(ValueLayout.JAVA_LONG, 0));
            }
            assertEquals("node 0 rw", r.snapshot(0, PAGE).describe(0), "mapped in place: " + inPlace);
            verified(mem);
            r.free();
        }
    }

    /**
     * Device 1 runs an exclusive kernel over a host copy it maps in place, and device 2, with
     * accessed-by advice, asks to map the same pages in place meanwhile: device 2 waits for the
     * kernel (any other device's access ends exclusivity, waiting for a kernel that uses the
     * pages), then maps them and ends device 1's exclusivity. Its mapping in place waited for
     * nothing and ended the exclusivity in the middle of the kernel.
     */
    @Test
    void anotherDevicesMappingInPlaceWaitsForAnExclusiveKernel() throws Exception {
        Region r = mem.allocate(2 * MiB);
        MemoryFixture.fill(r, 0, r.size(), 2);
        r.advise(0, r.size(), Advice.accessedBy(1));
        r.advise(0, r.size(), Advice.accessedBy(2));
        java.util.concurrent.CountDownLatch running = new java.util.concurrent.CountDownLatch(1);
        java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
        java.util.concurrent.CompletableFuture<LaunchResult> exclusive = java.util.concurrent.CompletableFuture.supplyAsync(
                () -> mem.launch(1, (EmulatedKernel) (a, i) -> {
                    running.countDown();
                    try {
                        release.await();
                    } catch (InterruptedException e) {
                        throw new IllegalStateException(e);
                    }
                }, 1, KernelArg.of(r, 0, r.size(), Access.EXCLUSIVE)));
        try {
            org.junit.jupiter.api.Assertions.assertTrue(running.await(20, java.util.concurrent.TimeUnit.SECONDS));
            assertEquals(0, r.snapshot(0, r.size()).countOn(1), "device 1 maps the host copy in place");
            org.junit.jupiter.api.Assertions.assertTrue(r.isExclusive(0, r.size(), 1));
            java.util.concurrent.CompletableFuture<Long> second = mem.prefetchAsync(r, 0, r.size(), 2);
            Thread.sleep(300);
            org.junit.jupiter.api.Assertions.assertFalse(second.isDone(), "device 2's mapping waits for the exclusive kernel");
            org.junit.jupiter.api.Assertions.assertTrue(r.isExclusive(0, r.size(), 1), "still exclusive while the kernel runs");
            release.countDown();
            exclusive.get(20, java.util.concurrent.TimeUnit.SECONDS);
            second.get(20, java.util.concurrent.TimeUnit.SECONDS);
            org.junit.jupiter.api.Assertions.assertFalse(r.isExclusive(0, PAGE, 1), "device 2 reaches the pages now");
        } finally {
            release.countDown();
        }
    }

    /**
     * A host access that ends a device's exclusivity over pages the device maps in place unmaps them
     * one by one; should the driver's unmap throw (it should not, a driver still may), the pages
     * unmapped before it are invalidated all the same (their table bits are cleared already): the
     * invalidation came after the walk, and a throw skipped it. From a review.
     */
    @Test
    @Tag("emulated")
    void anExclusivityEndedForTheHostInvalidatesWhatItUnmappedThoughALaterUnmapThrows() {
        java.util.concurrent.atomic.AtomicInteger unmapsBeforeFailure = new java.util.concurrent.atomic.AtomicInteger(-1);
        java.util.concurrent.atomic.AtomicLong invalidations = new java.util.concurrent.atomic.AtomicLong();
        WrappedDevice dev = new WrappedDevice("unmap-fails-later", 8 * MiB) {
            @Override
            public boolean canMapHost() {
                return true;
            }

            @Override
            public void mapHost(long va, long hostAddress, int pages, boolean writable) {
                inner.mapHost(va, hostAddress, pages, writable);
            }

            @Override
            public void unmap(long va, long pages) {
                if (unmapsBeforeFailure.get() >= 0 && unmapsBeforeFailure.getAndDecrement() == 0) {
                    throw new IllegalStateException("injected unmap failure");
                }
                super.unmap(va, pages);
            }

            @Override
            public void invalidate(dev.hetmem.driver.VaRanges ranges) {
                invalidations.incrementAndGet();
                super.invalidate(ranges);
            }
        };
        try (UnifiedMemory m = UnifiedMemory.builder().device(dev).build()) {
            Region r = m.allocate(2 * PAGE);
            MemoryFixture.fill(r, 0, r.size(), 3);
            r.advise(0, r.size(), Advice.accessedBy(1));
            m.launch(1, (EmulatedKernel) (a, i) -> { }, 1, KernelArg.of(r, 0, r.size(), Access.EXCLUSIVE));
            assertEquals(0, r.snapshot(0, r.size()).countOn(1), "the device maps the host's copy in place");
            org.junit.jupiter.api.Assertions.assertTrue(r.isExclusive(0, r.size(), 1));
            long before = invalidations.get();
            unmapsBeforeFailure.set(1);   // the first page's unmap goes through, the second's throws
            MemoryFixture.names(IllegalStateException.class, "injected unmap failure", () -> r.host(0, r.size(), Access.READ));
            org.junit.jupiter.api.Assertions.assertTrue(invalidations.get() > before, "the first page's unmapping was invalidated");
            unmapsBeforeFailure.set(-1);
        }
    }
}
