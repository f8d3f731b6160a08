package dev.hetmem;

import dev.hetmem.device.emulated.EmulatedKernel;
import dev.hetmem.driver.CopyBatch;
import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.host.HostMapping;
import dev.hetmem.host.HostSide;
import dev.hetmem.internal.RegionState;
import dev.hetmem.pagetable.Block;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;

import static dev.hetmem.MemoryFixture.MiB;
import static dev.hetmem.MemoryFixture.PAGE;
import static dev.hetmem.MemoryFixture.value;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The Java half of userfaultfd mode's steals (pages the fault service took home on its own), from a
 * review of it: a reconcile whose host sync fails for one run of a block keeps the block's other
 * runs (collect had cleared their marks: they were never reported again), and a faulting launch waits
 * for a page host code took while another kernel held it (its items wrote the device's copy through
 * that kernel's writable entry, and the host's copy won once that kernel ended).
 */
class StealReconcileTest {

    /** The region's real host side, whose next sync, once armed, fails after doing its work (an hm_sync rc != 0). */
    static final class Failing implements HostSide {
        final HostSide d;
        volatile boolean armed;
        volatile boolean leaveArmed;
        Failing(HostSide d) { this.d = d; }
        public HostMapping mapping() { return d.mapping(); }
        public long address() { return d.address(); }
        public MemorySegment segment(Object o) { return d.segment(o); }
        public void leave(long p, long c) {
            d.leave(p, c);
            if (leaveArmed) {
                leaveArmed = false;
                throw new IllegalStateException("injected: hm_leave returned -ENOMEM");
            }
        }
        volatile boolean writeProtectArmed;
        public void writeProtect(long p, long c) {
            d.writeProtect(p, c);
            if (writeProtectArmed) {
                writeProtectArmed = false;
                throw new IllegalStateException("injected: hm_write_protect returned -ENOMEM");
            }
        }
        public void copyHome(long p, int c, DeviceDriver f, int[] fr, CopyBatch b) { d.copyHome(p, c, f, fr, b); }
        public void sync(Block b, int p0, int p1, DeviceDriver[] dr, ReadOnly ro) {
            d.sync(b, p0, p1, dr, ro);
            if (armed) { armed = false; throw new IllegalStateException("injected: hm_sync returned -ENOMEM"); }
        }
        public void syncLoaded(Block b, int p0, int p1, DeviceDriver[] dr, ReadOnly ro) { d.syncLoaded(b, p0, p1, dr, ro); }
        public void release(long[] r, int c) { d.release(r, c); }
        public long retainedBytes() { return d.retainedBytes(); }
        public boolean releasesFrames() { return d.releasesFrames(); }
        public void discard(long o, long b) { d.discard(o, b); }
        public long[] collect(long b, long[] bt) { return d.collect(b, bt); }
        public void uncollect(long b, long[] t) { d.uncollect(b, t); }
        public void granularity(long f, long t, int s) { d.granularity(f, t, s); }
        public boolean takesPagesOnItsOwn() { return d.takesPagesOnItsOwn(); }
        public boolean takeAnySteals() { return d.takeAnySteals(); }
        public boolean stolenIn(long f, long t, boolean b) { return d.stolenIn(f, t, b); }
        public void busy(long f, long c, boolean on) { d.busy(f, c, on); }
        public void awaitFaultsRead() { d.awaitFaultsRead(); }
        public boolean namesNone(DeviceDriver dr, int[] f, int c, long p) { return d.namesNone(dr, f, c, p); }
        public boolean populate(long o, long b) { return d.populate(o, b); }
        public void check(Block b, int p, DeviceDriver[] dr, ReadOnly ro, Object o, List<String> pr) { d.check(b, p, dr, ro, o, pr); }
        public void kill() { d.kill(); }
        public void close() { d.close(); }
    }

    /** The region's host side replaced by a {@link Failing} around it: the failure goes in around the real side. */
    private static Failing wrapped(Region r) throws ReflectiveOperationException {
        var f = RegionState.class.getDeclaredField("host");
        f.setAccessible(true);
        Failing failing = new Failing(r.state().host());
        f.set(r.state(), failing);
        return failing;
    }

    /** A reconcile whose sync of one run fails took the block's later runs in nowhere: a kernel read the device's stale copy. */
    @Test
    void aReconcileFailingOnOneRunKeepsTheStealsOfTheOthers() throws Exception {
        UserfaultfdTest.requireUserfaultfd();
        UnifiedMemory mem = UserfaultfdTest.uffdMemory(PAGE, MemoryFixture.emulated(16 * MiB));
        try {
            Region r = mem.allocate(2 * MiB);
            MemorySegment s = r.segment();
            UserfaultfdTest.fill(s, 0, r.size(), 4);
            mem.advise(r, 0, r.size(), new Advice.Prefetch(1));
            Failing failing = wrapped(r);
            s.set(JAVA_LONG, 3 * PAGE, 333L);   // stolen: run 1 of the block
            s.set(JAVA_LONG, 7 * PAGE, 777L);   // stolen: run 2 of the block
            failing.armed = true;
            assertThrows(IllegalStateException.class, () -> mem.advise(r, 100 * PAGE, PAGE, new Advice.Prefetch(1)));
            long[] seen = new long[2];
            mem.launch(1, (EmulatedKernel) (a, i) -> {
                seen[0] = a.arg(0).getLong(3 * PAGE);
                seen[1] = a.arg(0).getLong(7 * PAGE);
            }, 1, KernelArg.read(r));
            assertEquals(333L, seen[0]);
            assertEquals(777L, seen[1], "the kernel reads the host's store to page 7");
        } finally {
            mem.close();
        }
    }

    /**
     * A host read of a page a read-only kernel pins (no race with that kernel) leaves the page stolen
     * and BUSY; a faulting launch that started afterwards left it out of its reconcile (pinned), wrote
     * the device's copy through the existing entry, and lost its stores once the pin went. It waits
     * for that kernel now.
     */
    @Test
    void aHostReadBesideAReadOnlyKernelCostsALaterFaultingLaunchItsStores() throws Exception {
        UserfaultfdTest.requireUserfaultfd();
        UnifiedMemory mem = UserfaultfdTest.uffdMemory(PAGE, MemoryFixture.emulated(MiB));
        try {
            Region r = mem.allocate(2 * MiB, PAGE);
            MemorySegment view = r.segment();
            MemoryFixture.fill(view, 0, 3);
            long q = 100 * PAGE;
            assertEquals(1, mem.prefetch(r, new long[] {q}, PAGE, 1));
            HeldKernel resident = new HeldKernel(mem, 1, KernelArg.of(r, q, PAGE, Access.READ));
            AtomicReference<Throwable> faultingFailed = new AtomicReference<>();
            Thread faulting = null;
            try {
                assertTrue(resident.awaitRunning(20));
                long before = view.get(JAVA_LONG, q);   // a read, beside a kernel that only reads
                assertEquals(value(3, q / 8), before);
                faulting = Thread.ofPlatform().start(() -> {
                    try {
                        mem.launch(1, (EmulatedKernel) (a, i) -> a.arg(0).putLong(q + 8 * i, a.arg(0).getLong(q + 8 * i) + 5),
                                PAGE / 8, KernelArg.of(r, 0, 2 * MiB, Access.READ_WRITE));
                    } catch (Throwable t) {
                        faultingFailed.set(t);
                    }
                });
                Thread.sleep(300);
                assertTrue(faulting.isAlive(), "the faulting launch waits for the kernel holding the page host code took");
            } finally {
                resident.release();
                if (faulting != null) {
                    faulting.join(30_000);
                }
            }
            if (faultingFailed.get() != null) {
                throw new AssertionError(faultingFailed.get());
            }
            if (resident.failure() != null) {
                throw new AssertionError(resident.failure());
            }
            assertEquals(value(3, q / 8) + 5, view.get(JAVA_LONG, q), "the faulting launch's store");
            assertEquals(List.of(), mem.verify());
        } finally {
            mem.close();
        }
    }

    /**
     * A move off the host whose revoke failed part-way (here the host side's leave, after it marked
     * the pages leaving and write-protected them) was not undone: the pages stayed LEAVING in the
     * fault service while the page table kept them on the host, and the next move's leave, which
     * marks only HOST pages, left them writable while it copied them (a store meanwhile was lost).
     */
    @Test
    void aMoveWhoseRevokeFailsIsUndoneAndTheNextMoveLosesNoStore() throws Exception {
        UserfaultfdTest.requireUserfaultfd();
        UnifiedMemory mem = UserfaultfdTest.uffdMemory(PAGE, MemoryFixture.emulated(16 * MiB));
        try {
            Region r = mem.allocate(2 * MiB);
            MemorySegment s = r.segment();
            UserfaultfdTest.fill(s, 0, r.size(), 6);
            Failing failing = wrapped(r);
            failing.leaveArmed = true;
            assertThrows(IllegalStateException.class, () -> mem.advise(r, 0, r.size(), new Advice.Prefetch(1)));
            assertEquals(List.of(), mem.verify(), "the failed move was undone");
            s.set(JAVA_LONG, 5 * PAGE, 555L);
            mem.advise(r, 0, r.size(), new Advice.Prefetch(1));
            assertEquals(555L, s.get(JAVA_LONG, 5 * PAGE));
            assertEquals(List.of(), mem.verify());
        } finally {
            mem.close();
        }
    }

    /**
     * A reconcile whose driver fails to drop a device's copy of a stolen page (its unmap throws; the
     * SPI says it does not, a driver still may) leaves that page and the block's later stolen runs
     * reported again by the next collect. Before, collect had cleared their marks: the table kept
     * giving them to the device, and a move of them home copied the device's stale bytes over the
     * host's stores.
     */
    @Test
    void aReconcileWhoseUnmapFailsReportsItsStealsAgain() throws Exception {
        UserfaultfdTest.requireUserfaultfd();
        java.util.concurrent.atomic.AtomicBoolean unmapFails = new java.util.concurrent.atomic.AtomicBoolean();
        WrappedDevice dev = new WrappedDevice("unmap-fails", 16 * MiB) {
            @Override
            public long hostAddress(int frame) {
                return inner.hostAddress(frame);
            }

            @Override
            public void unmap(long va, long pages) {
                if (unmapFails.getAndSet(false)) {
                    throw new IllegalStateException("injected unmap failure");
                }
                super.unmap(va, pages);
            }
        };
        try (UnifiedMemory mem = UnifiedMemory.builder().copyThreads(2).granularity(PAGE)
                .hostFaults(HostFaultMode.USERFAULTFD).device(dev).build()) {
            Region r = mem.allocate(2 * MiB);
            MemorySegment s = r.segment();
            UserfaultfdTest.fill(s, 0, r.size(), 5);
            mem.advise(r, 0, r.size(), new Advice.Prefetch(1));
            assertEquals(r.size() / PAGE, r.snapshot(0, r.size()).countOn(1), "the block is on the device");
            s.set(JAVA_LONG, 3 * PAGE, 333L);   // stolen: run 1 of the block
            s.set(JAVA_LONG, 7 * PAGE, 777L);   // stolen: run 2 of the block
            unmapFails.set(true);
            MemoryFixture.names(IllegalStateException.class, "injected unmap failure",
                    () -> mem.advise(r, 100 * PAGE, PAGE, new Advice.Prefetch(1)));
            // the next operation takes both steals in: a kernel reads the host's stores, not the device's old copies
            long[] seen = new long[3];
            mem.launch(1, (EmulatedKernel) (a, i) -> {
                seen[0] = a.arg(0).getLong(3 * PAGE);
                seen[1] = a.arg(0).getLong(7 * PAGE);
                seen[2] = a.arg(0).getLong(5 * PAGE);
            }, 1, KernelArg.read(r));
            assertEquals(333L, seen[0], "the kernel reads the host's store to page 3");
            assertEquals(777L, seen[1], "the kernel reads the host's store to page 7");
            assertEquals(value(5, 5 * PAGE / 8), seen[2]);
            assertEquals(List.of(), mem.verify());
        }
    }

    /**
     * An undone move off the host puts the host side back in line before the devices' entries of the
     * host's copy come back (the reverse of the revoke, DEVICES_BEFORE_HOST). In the other order a
     * device that maps the host's copy in place (accessed-by advice) could store through its
     * restored entry while the page was still leaving the host: the fault service took that store
     * for a host write and counted a steal the page table never made (the next reconcile then
     * took the page in again, and would drop other devices' copies of it).
     */
    @Test
    void anUndoneMoveGivesTheHostItsPagesBackBeforeADeviceStoresInPlace() throws Exception {
        undoneRevokeThenAnInPlaceStore(false);
    }

    /**
     * The same for a read-only duplicate of host-written pages: its revoke write-protects the host's
     * copy and the in-place entries; the undo gave the entries their write back before the host's,
     * and a store through one was taken for a host write to a write-protected page.
     */
    @Test
    void anUndoneDuplicateGivesTheHostItsWriteBackBeforeADeviceStoresInPlace() throws Exception {
        undoneRevokeThenAnInPlaceStore(true);
    }

    /**
     * Device 1 writes the host's copy of a region in place; a move (or, {@code duplicate}, a
     * read-only duplicate) of it to device 1 fails in its revoke after the host side's step; the
     * device stores through the first entry the undo makes writable again. The service must count
     * no steal, and the store must stay.
     */
    private static void undoneRevokeThenAnInPlaceStore(boolean duplicate) throws Exception {
        UserfaultfdTest.requireUserfaultfd();
        java.util.concurrent.atomic.AtomicBoolean storeWhenWritable = new java.util.concurrent.atomic.AtomicBoolean();
        AtomicReference<MemorySegment> view = new AtomicReference<>();
        AtomicReference<Thread> store = new AtomicReference<>();
        WrappedDevice dev = new WrappedDevice("maps-host", 16 * MiB) {
            @Override
            public long hostAddress(int frame) {
                return inner.hostAddress(frame);
            }

            @Override
            public boolean canMapHost() {
                return inner.canMapHost();
            }

            @Override
            public void mapHost(long va, long hostAddress, int pages, boolean writable) {
                inner.mapHost(va, hostAddress, pages, writable);
                storeIfArmed(writable, hostAddress);
            }

            @Override
            public void protect(long va, long pages, boolean writable) {
                inner.protect(va, pages, writable);
                storeIfArmed(writable, va);   // the host's copy is mapped at its own address
            }

            /** The device stores through the entry as soon as it is writable again, as a running item would. */
            private void storeIfArmed(boolean writable, long address) {
                if (writable && storeWhenWritable.getAndSet(false)) {
                    long at = address - view.get().address();
                    Thread t = Thread.ofPlatform().start(() -> view.get().set(JAVA_LONG, at, 4242L));
                    store.set(t);
                    try {
                        t.join(5_000);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
            }
        };
        try (UnifiedMemory mem = UnifiedMemory.builder().copyThreads(2).granularity(PAGE)
                .hostFaults(HostFaultMode.USERFAULTFD).device(dev).build()) {
            Region r = mem.allocate(2 * MiB);
            MemorySegment s = r.segment();
            view.set(s);
            UserfaultfdTest.fill(s, 0, r.size(), 8);
            r.advise(0, r.size(), Advice.accessedBy(1));
            mem.launch(1, (EmulatedKernel) (a, i) -> a.arg(0).putLong(8 * i, a.arg(0).getLong(8 * i) + 1),
                    r.size() / 8, KernelArg.readWrite(r));
            assertEquals(r.size() / PAGE, r.snapshot(0, r.size()).countOn(0), "the device wrote the host's copy in place");
            // the advice goes, the device's entries of the host's copy stay: a prefetch now moves the pages
            // (or, read-mostly, duplicates them)
            r.advise(0, r.size(), new Advice.AccessedBy(1, false));
            if (duplicate) {
                r.advise(0, r.size(), Advice.readMostly(true));
            }
            long stolenBefore = mem.faultServiceCounters().stolen();
            // the revoke fails after the host side's step (the engine copies by the device's host address,
            // so a failed copy cannot be injected here; a failed revoke is undone the same way)
            Failing failing = wrapped(r);
            if (duplicate) {
                failing.writeProtectArmed = true;
            } else {
                failing.leaveArmed = true;
            }
            storeWhenWritable.set(true);
            assertThrows(IllegalStateException.class, () -> r.advise(0, r.size(), new Advice.Prefetch(1)));
            assertTrue(store.get() != null, "the undo gave the device its writable entry of the host's copy again");
            store.get().join(10_000);
            assertEquals(4242L, s.get(JAVA_LONG, 0), "the device's store");
            assertEquals(stolenBefore, mem.faultServiceCounters().stolen(),
                    "the device's store through its restored entry was taken for a host write");
            assertEquals(value(8, 1) + 1, s.get(JAVA_LONG, 8));
            assertEquals(List.of(), mem.verify());
        }
    }
}
