package dev.hetmem;

import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.device.emulated.EmulatedKernel;
import dev.hetmem.fault.FaultService;
import dev.hetmem.fault.HostMirror;
import dev.hetmem.io.LoadResult;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

import static dev.hetmem.MemoryFixture.MiB;
import static dev.hetmem.MemoryFixture.PAGE;
import static dev.hetmem.MemoryFixture.value;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Transparent host faults: Java and native code touch a region's pages wherever they are. Needs
 * userfaultfd (root here); under CI=true its absence is a failure, elsewhere the tests skip.
 */
@Tag("emulated") // the fault service copies frames in place: the driver must be host-addressable
class UserfaultfdTest {
    static final long GRANULE_FOR_NEIGHBOURS = Long.getLong("hetmem.test.neighbourGranule", 2 * MiB);
    private UnifiedMemory mem;

    static void requireUserfaultfd() {
        var reason = FaultService.unavailableReason();
        MemoryFixture.needs(reason.isEmpty(), () -> reason.orElseThrow());
    }

    static UnifiedMemory uffdMemory(long granularity, EmulatedDevice... devices) {
        UnifiedMemory.Builder b = UnifiedMemory.builder().copyThreads(2).granularity(granularity)
                .hostFaults(HostFaultMode.USERFAULTFD);
        for (EmulatedDevice d : devices) {
            b.device(d);
        }
        return b.build();
    }

    @BeforeEach
    void open() {
        requireUserfaultfd();
    }

    @AfterEach
    void close() {
        if (mem != null) {
            assertEquals(List.of(), mem.verify());
            mem.close();
        }
    }

    /**
     * A launch running by device faults over untouched pages while host code touches pages of the
     * same granules that no argument holds: the service installs the granule around each host
     * fault, and must leave alone the neighbours a running kernel holds. It stole untouched ones
     * (zeros on the host, marked taken home): when that fell between a device fault's reconcile and
     * its commit, the page table later took the host's zeros as the page's truth and the kernel's
     * stores to it were lost.
     */
    @Test
    void hostFaultsBesideAFaultingLaunchLeaveItsUntouchedPagesAlone() throws Exception {
        long granule = 64 * 1024;
        int granules = 64;
        int argPages = (int) (granule / PAGE) - 1;   // the last page of each granule is no argument's
        mem = uffdMemory(granule, EmulatedDevice.builder().capacity(MiB).computeThreads(2).build());
        for (int round = 0; round < 40; round++) {
            Region r = mem.allocate(granules * granule, granule);
            KernelArg[] args = new KernelArg[granules];
            for (int g = 0; g < granules; g++) {
                args[g] = KernelArg.of(r, g * granule, argPages * PAGE, Access.READ_WRITE);
            }
            MemorySegment view = r.segment();
            java.util.concurrent.atomic.AtomicBoolean done = new java.util.concurrent.atomic.AtomicBoolean();
            java.util.concurrent.atomic.AtomicLong started = new java.util.concurrent.atomic.AtomicLong();
            Thread toucher = Thread.ofPlatform().start(() -> {
                // the free page of each granule as the kernel reaches that granule: its device fault and
                // this host fault then meet
                for (int g = 0; g < granules && !done.get(); g++) {
                    while (started.get() < (long) g * argPages && !done.get()) {
                        Thread.onSpinWait();
                    }
                    view.get(JAVA_LONG, g * granule + argPages * PAGE);
                }
            });
            mem.launch(1, (EmulatedKernel) (a, i) -> {
                started.incrementAndGet();
                a.arg((int) (i / argPages)).putLong((i % argPages) * PAGE, i + 1);
            }, (long) granules * argPages, args);
            done.set(true);
            toucher.join();
            for (long i = 0; i < (long) granules * argPages; i++) {
                long at = (i / argPages) * granule + (i % argPages) * PAGE;
                if (view.get(JAVA_LONG, at) != i + 1) {
                    assertEquals(i + 1, view.get(JAVA_LONG, at), "round " + round + ": the kernel's store to page at " + at);
                }
            }
            r.free();
        }
    }

    /**
     * DONT_NEED of pages only a device holds while host code touches other pages of the same
     * granules: when DONT_NEED returns, its pages read as zeros. The service copies the away pages
     * of a faulting page's granule home; one copied between the discard's reconcile and its sync was
     * left as the host's (sync leaves pages the host took alone) and later taken as the page's
     * truth, so it read its old bytes after DONT_NEED.
     */
    @Test
    void dontNeedBesideHostFaultsLeavesZeros() throws Exception {
        long granule = 64 * 1024;
        int granules = 64;
        int dropped = (int) (granule / PAGE) - 1;   // the last page of each granule stays
        mem = uffdMemory(granule, EmulatedDevice.builder().capacity(8 * MiB).build());
        for (int round = 0; round < 40; round++) {
            Region r = mem.allocate(granules * granule, granule);
            MemorySegment view = r.segment();
            fill(view, 0, granules * granule, round + 1);
            assertEquals(granules * granule / PAGE, mem.prefetch(r, new long[] {0}, granules * granule, 1));
            java.util.concurrent.atomic.AtomicInteger reached = new java.util.concurrent.atomic.AtomicInteger(-1);
            Thread toucher = Thread.ofPlatform().start(() -> {
                // the page that stays, in each granule, as DONT_NEED reaches that granule
                for (int g = 0; g < granules; g++) {
                    while (reached.get() < g) {
                        Thread.onSpinWait();
                    }
                    view.get(JAVA_LONG, g * granule + dropped * PAGE);
                }
            });
            for (int g = 0; g < granules; g++) {
                reached.set(g);
                r.advise(g * granule, dropped * PAGE, Advice.dontNeed());
            }
            toucher.join();
            for (int g = 0; g < granules; g++) {
                for (int p = 0; p < dropped; p++) {
                    long at = g * granule + p * PAGE;
                    if (view.get(JAVA_LONG, at) != 0) {
                        assertEquals(0, view.get(JAVA_LONG, at), "round " + round + ": page at " + at + " after DONT_NEED");
                    }
                }
                long kept = g * granule + dropped * PAGE;
                assertEquals(value(round + 1, kept >>> 3), view.get(JAVA_LONG, kept), "the page that stayed");
            }
            r.free();
        }
    }

    /**
     * More kernels at once on one page than the state word's BUSY field counts (5 bits): when they
     * have all ended the page is not BUSY any more. The count stuck at 31 once reached, so a page the
     * host then took home was never taken in (the reconciler leaves BUSY pages to their kernels), and
     * every later pinned launch on it waited a minute for it and failed, for good.
     */
    @Test
    void aPageHeldByMoreKernelsThanBusyCountsIsFreeOnceTheyEnd() throws Exception {
        mem = uffdMemory(PAGE, EmulatedDevice.builder().capacity(8 * MiB).computeThreads(1).build());
        Region r = mem.allocate(PAGE);
        HostMirror m = ((dev.hetmem.fault.UserfaultfdSide) r.state().host()).mirror();
        r.segment().set(JAVA_LONG, 0, 17L);
        mem.launch(1, (EmulatedKernel) (a, i) -> a.arg(0).putLong(0, a.arg(0).getLong(0) + 1), 1, KernelArg.readWrite(r));
        int kernels = 40;
        CountDownLatch release = new CountDownLatch(1);
        List<Thread> launchers = new ArrayList<>();
        for (int k = 0; k < kernels; k++) {
            launchers.add(Thread.ofPlatform().start(() -> mem.launch(1, (EmulatedKernel) (a, i) -> {
                try {
                    release.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }, 1, KernelArg.read(r))));
        }
        long until = System.nanoTime() + 20_000_000_000L;
        while (r.state().pins().size() < kernels && System.nanoTime() < until) {
            Thread.sleep(5);
        }
        assertEquals(kernels, r.state().pins().size(), "every launch holds its pin");
        assertEquals(HostMirror.BUSY, m.state(0) & HostMirror.BUSY, "the field is full");
        release.countDown();
        for (Thread t : launchers) {
            t.join(20_000);
        }
        assertEquals(0, m.state(0) & HostMirror.BUSY, "no kernel holds the page");
        // the host takes the page home, and a pinned launch takes it in, at once
        r.segment().set(JAVA_LONG, 0, 100L);
        long t0 = System.nanoTime();
        mem.launch(1, (EmulatedKernel) (a, i) -> a.arg(0).putLong(0, a.arg(0).getLong(0) + 1), 1, KernelArg.readWrite(r));
        assertTrue(System.nanoTime() - t0 < 10_000_000_000L, "the launch did not wait for a kernel that had ended");
        assertEquals(101L, r.segment().get(JAVA_LONG, 0));
    }

    static void fill(MemorySegment s, long from, long to, long seed) {
        for (long i = from; i < to; i += 8) {
            s.set(JAVA_LONG, i, value(seed, i >>> 3));
        }
    }

    static long mismatches(MemorySegment s, long from, long to, long seed) {
        long bad = 0;
        for (long i = from; i < to; i += 8) {
            bad += s.get(JAVA_LONG, i) == value(seed, i >>> 3) ? 0 : 1;
        }
        return bad;
    }

    /**
     * HMM's exclusive test with plain loads: the pages move to the device (a page at home cannot be
     * kept from plain loads), the device's atomics count, and the host's first load ends it.
     */
    @Test
    void exclusiveAccessEndsWithThePlainLoadThatTouchesIt() {
        mem = uffdMemory(64 * 1024, MemoryFixture.emulated(64 * MiB));
        Region r = mem.allocate(2 * MiB);
        MemorySegment s = r.segment();
        for (long i = 0; i < r.size(); i += 4) {
            s.set(java.lang.foreign.ValueLayout.JAVA_INT, i, (int) i);
        }
        mem.advise(r, 0, r.size(), new Advice.AccessedBy(1, true));   // in place would be the rule: not here
        mem.launch(1, (EmulatedKernel) (a, i) -> a.arg(0).getAndAddInt(4 * i, 1), r.size() / 4,
                KernelArg.of(r, 0, r.size(), Access.EXCLUSIVE));
        assertTrue(r.isExclusive(0, r.size(), 1));
        assertEquals(512, r.snapshot(0, r.size()).countOn(1), "moved to the device, not mapped in place");
        assertEquals(4 * 1000 + 1, s.get(java.lang.foreign.ValueLayout.JAVA_INT, 4 * 1000), "a plain load");
        assertTrue(!r.isExclusive(0, PAGE, 1), "the load's granule came home: exclusivity over");
        assertTrue(r.isExclusive(MiB, PAGE, 1), "granules the host did not touch stay the device's");
    }

    /**
     * HMM's migrate_partial_unmap_fault with plain loads: part of a region freed across pages at
     * home and pages on the device; the rest faults back right, views and launches of the freed
     * part are refused, and a plain load there reads zeros instead of crashing.
     */
    @Test
    void partOfARegionFreedWhileHostCodeUsesPlainLoads() {
        EmulatedDevice device = MemoryFixture.emulated(64 * MiB);
        mem = uffdMemory(64 * 1024, device);
        Region r = mem.allocate(8 * MiB);
        MemorySegment s = r.segment();
        fill(s, 0, r.size(), 9);
        mem.advise(r, 4 * MiB, 4 * MiB, new Advice.Prefetch(1));
        long deviceFree = mem.stats().node(1).freeBytes();
        r.free(2 * MiB + 64 * 1024, 4 * MiB);   // 2 MiB at home, 2 MiB on the device
        assertEquals(deviceFree + 2 * MiB + 64 * 1024, mem.stats().node(1).freeBytes(), "the device's part went");
        assertEquals(List.of(), mem.verify());
        assertEquals(0, mismatches(s, 0, 2 * MiB + 64 * 1024, 9));
        assertEquals(0, mismatches(s, 6 * MiB + 64 * 1024, r.size(), 9), "the device's remaining pages faulted back");
        MemoryFixture.names(IllegalStateException.class, "freed", () -> r.host(3 * MiB, 8, Access.READ));
        MemoryFixture.names(IllegalStateException.class, "freed", () -> mem.launch(1, (EmulatedKernel) (a, i) -> {}, 1,
                KernelArg.read(r)));
        assertEquals(0L, s.get(JAVA_LONG, 3 * MiB), "a plain load of a freed page reads zeros");
        assertTrue(r.snapshot(3 * MiB, PAGE).freed(0));
    }

    /**
     * A region smaller than a page has a segment of its own size: the view under it is a whole page,
     * and the segment was too, so stores past the region's end went through (from a review).
     */
    @Test
    void aRegionSmallerThanAPageHasASegmentOfItsSize() {
        mem = uffdMemory(PAGE, MemoryFixture.emulated(4 * MiB));
        Region r = mem.allocate(100);
        MemorySegment s = r.segment();
        assertEquals(100, s.byteSize());
        s.set(JAVA_LONG, 88, 7L);   // the last whole aligned long of the region
        assertEquals(7L, s.get(JAVA_LONG, 88));
        assertThrows(IndexOutOfBoundsException.class, () -> s.set(JAVA_LONG, 100, 1L), "a store past the region's end");
    }

    /**
     * The service serves a bounded number of regions; the one past it is refused naming that limit.
     * It said "Too many open files (errno 24)", sending the user to the process's descriptor limit.
     */
    @Test
    void theRegionPastTheServicesLimitIsRefusedNamingIt() {
        mem = uffdMemory(PAGE, MemoryFixture.emulated(4 * MiB));
        List<Region> regions = new java.util.ArrayList<>();
        IllegalStateException refused = null;
        while (refused == null && regions.size() <= 4096) {
            try {
                regions.add(mem.allocate(PAGE));
            } catch (IllegalStateException e) {
                refused = e;
            }
        }
        assertNotNull(refused, "some region was refused");
        assertTrue(refused.getMessage().contains("at most 1024 live regions") && !refused.getMessage().contains("errno"),
                refused.getMessage());
        regions.getFirst().free();
        regions.set(0, mem.allocate(PAGE));   // room again once one is freed
        for (Region r : regions) {
            r.free();
        }
    }

    @Test
    void javaCodeReadsAndWritesPagesWhereverTheyAre() {
        for (long granule : new long[] {PAGE, 64 * 1024, 2 * MiB}) {
            mem = uffdMemory(granule, MemoryFixture.emulated(64 * MiB));
            Region r = mem.allocate(8 * MiB + 3 * PAGE);
            MemorySegment s = r.segment();
            assertEquals(r.size(), s.byteSize());
            fill(s, 0, r.size(), 1);
            mem.advise(r, 0, r.size(), new Advice.Prefetch(1));
            assertEquals(0, mem.stats().node(0).residentBytes(), "granule " + granule);
            assertEquals(List.of(), mem.verify());
            long faultsBefore = mem.stats().node(0).faults();
            // a read of one page brings its granule home, no more
            assertEquals(value(1, (5 * PAGE) >>> 3), s.get(JAVA_LONG, 5 * PAGE));
            assertEquals(List.of(), mem.verify());
            assertEquals(Math.min(granule, r.size()), mem.stats().node(0).residentBytes(), "granule " + granule);
            assertEquals(0, mismatches(s, 0, r.size(), 1), "granule " + granule);
            assertTrue(mem.stats().node(0).faults() > faultsBefore);
            // writes on the host, then the device reads them
            fill(s, 0, r.size(), 2);
            long[] sum = new long[1];
            mem.launch(1, (EmulatedKernel) (args, item) -> {
                for (long i = 0; i < args.arg(0).length(); i += 8) {
                    sum[0] += args.arg(0).getLong(i) == value(2, i >>> 3) ? 0 : 1;
                }
            }, 1, KernelArg.read(r));
            assertEquals(0, sum[0], "device saw host writes, granule " + granule);
            // the device writes, the host reads
            mem.launch(1, (EmulatedKernel) (args, item) -> {
                for (long i = 0; i < args.arg(0).length(); i += 8) {
                    args.arg(0).putLong(i, value(3, i >>> 3));
                }
            }, 1, KernelArg.readWrite(r));
            assertEquals(0, mismatches(s, 0, r.size(), 3), "granule " + granule);
            assertEquals(List.of(), mem.verify());
            mem.close();
            mem = null;
        }
    }

    /** The kernel's own page map of the view for pages [from, to) must read {@code expected} for each. */
    private static void assertView(HostMirror m, long from, long to, int expected, String why) {
        byte[] got = m.viewPages(from, (int) (to - from));
        for (int i = 0; i < got.length; i++) {
            assertEquals(expected, got[i], "page " + (from + i) + ": " + why);
        }
    }

    @Test
    void theViewMapsExactlyThePagesTheHostHoldsAndWriteProtectsItsReadOnlyCopies() {
        mem = uffdMemory(PAGE, MemoryFixture.emulated(64 * MiB));
        Region r = mem.allocate(2 * MiB);
        HostMirror m = ((dev.hetmem.fault.UserfaultfdSide) r.state().host()).mirror();
        MemorySegment s = r.segment();
        int mapped = HostMirror.VIEW_MAPPED;
        int protectedCopy = HostMirror.VIEW_MAPPED | HostMirror.VIEW_WRITE_PROTECTED;
        assertView(m, 0, 512, 0, "never touched");
        fill(s, 0, r.size(), 8);
        assertView(m, 0, 512, mapped, "written on the host");
        mem.advise(r, 0, MiB, new Advice.Prefetch(1));
        assertView(m, 0, 256, 0, "moved to the device: the next touch must fault");
        assertView(m, 256, 512, mapped, "still on the host");
        assertEquals(value(8, (7 * PAGE + 16) >>> 3), s.get(JAVA_LONG, 7 * PAGE + 16));
        assertView(m, 7, 8, mapped, "read, so brought home");
        assertView(m, 8, 256, 0, "a 4 KiB granule brings one page");
        // read duplication: the host keeps its copy, write-protected
        mem.advise(r, MiB, MiB, new Advice.ReadMostly(true));
        mem.launch(1, (EmulatedKernel) (args, item) -> args.arg(0).getLong(0), 1,
                KernelArg.of(r, MiB, MiB, Access.READ));
        assertEquals(2 * MiB - PAGE, r.stats().node(1).residentBytes(), "the second MiB duplicated onto the device");
        assertView(m, 256, 512, protectedCopy, "a read-only host copy");
        s.set(JAVA_LONG, MiB + 5 * PAGE, 1L);   // faults: the host becomes the page's only writer
        assertView(m, 261, 262, mapped, "written, so writable again");
        assertView(m, 262, 512, protectedCopy, "neighbours keep their protection");
        assertEquals(List.of(), mem.verify());
    }

    @Test
    void aStoreToAProtectedPageCannotBeRefusedSoItIsLetThroughAndTheProtectionStays() {
        mem = uffdMemory(PAGE, MemoryFixture.emulated(64 * MiB));
        Region r = mem.allocate(MiB);
        HostMirror m = ((dev.hetmem.fault.UserfaultfdSide) r.state().host()).mirror();
        MemorySegment s = r.segment();
        fill(s, 0, r.size(), 12);
        r.protect(0, 64 * 1024, Protection.READ_ONLY);
        assertView(m, 0, 16, HostMirror.VIEW_MAPPED | HostMirror.VIEW_WRITE_PROTECTED, "protected");
        assertThrows(ProtectionException.class, () -> r.host(0, PAGE, Access.WRITE));
        // a plain store has no way to fail but a signal that would kill the JVM: the service lets it
        // through (a write fault), and the engine protects the page again when it next looks
        s.set(JAVA_LONG, 3 * PAGE, 99L);
        assertEquals(99L, s.get(JAVA_LONG, 3 * PAGE));
        assertEquals(List.of(), mem.verify());
        assertView(m, 3, 4, HostMirror.VIEW_MAPPED | HostMirror.VIEW_WRITE_PROTECTED, "protected again");
        assertEquals(Protection.READ_ONLY, r.protection(3 * PAGE));
    }

    @Test
    void faultsTheServiceResolvedShowInFlightRecorderOnceTheEngineLooks() throws Exception {
        Path file = Files.createTempFile("hetmem-uffd", ".jfr");
        try (jdk.jfr.Recording rec = new jdk.jfr.Recording()) {
            rec.enable("dev.hetmem.Fault");
            rec.start();
            mem = uffdMemory(64 * 1024, MemoryFixture.emulated(64 * MiB));
            Region r = mem.allocate(2 * MiB);
            MemorySegment s = r.segment();
            fill(s, 0, r.size(), 13);
            mem.advise(r, 0, r.size(), new Advice.Prefetch(1));
            assertEquals(value(13, (MiB + 8) >>> 3), s.get(JAVA_LONG, MiB + 8));   // one 64 KiB granule home
            assertEquals(List.of(), mem.verify());                                 // the engine looks
            rec.stop();
            rec.dump(file);
            List<jdk.jfr.consumer.RecordedEvent> faults = jdk.jfr.consumer.RecordingFile.readAllEvents(file).stream()
                    .filter(e -> e.getEventType().getName().equals("dev.hetmem.Fault"))
                    .filter(e -> "userfaultfd".equals(e.getString("path"))).toList();
            assertTrue(faults.stream().anyMatch(e -> e.getLong("pagesMigrated") == 16 && e.getLong("offset") == MiB
                    && e.getLong("length") == 64 * 1024 && e.getInt("node") == 0), faults.toString());
        } finally {
            Files.deleteIfExists(file);
        }
    }

    /** An emulated device whose copies to the device wait at a latch: a migration held half-way. */
    private static final class HeldCopies extends WrappedDevice {
        final CountDownLatch copying = new CountDownLatch(1);
        final CountDownLatch release = new CountDownLatch(1);
        volatile boolean hold;

        HeldCopies() {
            super("held0", 64 * MiB);
        }

        @Override
        public long hostAddress(int frame) {
            return inner.hostAddress(frame);
        }

        @Override
        public void copy(dev.hetmem.driver.CopyBatch b, int from, int to) {
            if (hold && b.op(from) == dev.hetmem.driver.CopyBatch.TO_DEVICE) {
                copying.countDown();
                try {
                    release.await();
                } catch (InterruptedException e) {
                    throw new IllegalStateException(e);
                }
            }
            super.copy(b, from, to);
        }
    }

    @Test
    void pagesBeingCopiedOffTheHostStayReadableAndAWriteTakesItsPageBack() throws Exception {
        HeldCopies device = new HeldCopies();
        mem = UnifiedMemory.builder().copyThreads(1).granularity(PAGE).hostFaults(HostFaultMode.USERFAULTFD)
                .device(device).build();
        Region r = mem.allocate(MiB);
        HostMirror m = ((dev.hetmem.fault.UserfaultfdSide) r.state().host()).mirror();
        MemorySegment s = r.segment();
        fill(s, 0, r.size(), 14);
        assertEquals(List.of(), mem.verify());
        device.hold = true;
        AtomicReference<Throwable> failed = new AtomicReference<>();
        Thread mover = Thread.ofPlatform().start(() -> {
            try {
                mem.advise(r, 0, r.size(), new Advice.Prefetch(1));
            } catch (Throwable e) {
                failed.set(e);
            }
        });
        try {
            device.copying.await();
            // the copy to the device is under way: every page is write-protected, and reading costs nothing
            assertView(m, 0, 256, HostMirror.VIEW_MAPPED | HostMirror.VIEW_WRITE_PROTECTED, "being copied off the host");
            long faults = mem.faultServiceCounters().faults() + mem.faultServiceCounters().writeFaults();
            assertEquals(0, mismatches(s, 0, r.size(), 14));
            assertEquals(faults, mem.faultServiceCounters().faults() + mem.faultServiceCounters().writeFaults(),
                    "reads of pages being copied out took no fault");
            s.set(JAVA_LONG, 9 * PAGE, -1L);   // a write faults and takes its page back
            assertEquals(faults + 1, mem.faultServiceCounters().writeFaults() + mem.faultServiceCounters().faults());
        } finally {
            device.release.countDown();   // a failure above must not leave the migration, and its locks, held
            mover.join(30_000);
        }
        assertEquals(null, failed.get());
        assertEquals(List.of(), mem.verify());
        PageSnapshot where = r.snapshot(0, r.size());
        assertEquals(1, where.countOn(0), "the written page stayed home");
        assertEquals(255, where.countOn(1), "the rest moved");
        assertView(m, 9, 10, HostMirror.VIEW_MAPPED, "the host's, writable");
        assertView(m, 10, 256, 0, "gone to the device");
        assertEquals(-1L, s.get(JAVA_LONG, 9 * PAGE));
        s.set(JAVA_LONG, 9 * PAGE, value(14, (9 * PAGE) >>> 3));
        assertEquals(0, mismatches(s, 0, r.size(), 14));
    }

    @Test
    void hostViewsAndTheWholeRegionSegmentSeeTheSameBytes() {
        mem = uffdMemory(PAGE, MemoryFixture.emulated(64 * MiB));
        Region r = mem.allocate(MiB);
        MemorySegment s = r.segment();
        fill(s, 0, r.size(), 9);
        mem.advise(r, 0, r.size(), new Advice.Prefetch(1));
        try (HostView v = r.host(64 * 1024, 128 * 1024, Access.READ_WRITE)) {
            for (long i = 0; i < v.segment().byteSize(); i += 8) {
                assertEquals(value(9, (64 * 1024 + i) >>> 3), v.segment().get(JAVA_LONG, i), "view word " + i);
                v.segment().set(JAVA_LONG, i, value(10, (64 * 1024 + i) >>> 3));
            }
        }
        assertEquals(0, mismatches(s, 0, 64 * 1024, 9));
        assertEquals(0, mismatches(s, 64 * 1024, 192 * 1024, 10));
        assertEquals(0, mismatches(s, 192 * 1024, r.size(), 9));
        assertEquals(List.of(), mem.verify());
    }

    /**
     * A load to the device while host code reads the pages already loaded, one after another behind
     * the load: each read brings its granule home, and the granule holds pages the load is filling
     * at that moment (chunks smaller than a granule). The service took such untouched neighbours as
     * zeros, marked taken home; between the fill's reconcile and its commit, the page table later
     * took the host's zeros as the pages' truth, and the loaded bytes were lost.
     */
    @Test
    void aLoadBesideHostReadsOfItsLoadedPagesKeepsEveryByte() throws Exception {
        long granule = 64 * 1024;
        mem = uffdMemory(granule, EmulatedDevice.builder().capacity(32 * MiB).build());
        byte[] data = new byte[(int) (4 * MiB)];
        Path p = Files.createTempFile("hetmem-uffd-load-beside", ".bin");
        try {
            for (int round = 0; round < 12; round++) {
                new java.util.Random(round).nextBytes(data);
                Files.write(p, data);
                java.util.concurrent.atomic.AtomicLong done = new java.util.concurrent.atomic.AtomicLong();
                java.util.concurrent.atomic.AtomicLong reads = new java.util.concurrent.atomic.AtomicLong();
                AtomicReference<Throwable> failed = new AtomicReference<>();
                AtomicBoolean over = new AtomicBoolean();
                int regionsBefore = mem.regions().size();
                Thread reader = Thread.ofPlatform().uncaughtExceptionHandler((t, e) -> failed.set(e)).start(() -> {
                    Region loading = null;
                    long page = 0;
                    while (!over.get()) {
                        if (loading == null) {
                            List<Region> live = mem.regions();
                            if (live.size() > regionsBefore) {
                                loading = live.getLast();
                            }
                            continue;
                        }
                        // the last page loaded so far: its granule's later pages are still being filled
                        long front = done.get() / PAGE - 1;
                        if (front > page) {
                            page = front;
                            loading.segment().get(JAVA_LONG, page * PAGE);
                            reads.incrementAndGet();
                        } else {
                            Thread.onSpinWait();
                        }
                    }
                });
                LoadResult loaded;
                try {
                    loaded = mem.load(p, 1, dev.hetmem.io.LoadOptions.defaults().withThreads(1).withChunkBytes(PAGE)
                            .withProgress((d, total) -> done.accumulateAndGet(d, Math::max)));
                } finally {
                    over.set(true);
                    reader.join();
                }
                assertEquals(null, failed.get(), "the reader's reads");
                assertTrue(reads.get() > 0, "the reader read loaded pages while the load went on");
                Region r = loaded.region();
                long at = r.segment().mismatch(MemorySegment.ofArray(data));
                assertEquals(-1, at, "round " + round + ": the loaded region differs from the file at byte " + at);
                assertEquals(List.of(), mem.verify());
                r.free();
            }
        } finally {
            Files.deleteIfExists(p);
        }
    }

    @Test
    void filesLoadIntoTheRegionOnTheHostAndOnTheDevice() throws IOException {
        mem = uffdMemory(64 * 1024, MemoryFixture.emulated(64 * MiB));
        byte[] data = new byte[(int) (5 * MiB + 123)];
        new java.util.Random(11).nextBytes(data);
        Path p = Files.createTempFile("hetmem-uffd-load", ".bin");
        try {
            Files.write(p, data);
            for (int node : new int[] {0, 1}) {
                LoadResult loaded = mem.load(p, node);
                Region r = loaded.region();
                PageSnapshot where = r.snapshot(0, r.size());
                assertEquals(where.pages(), where.countOn(node), "every page loaded to node " + node);
                assertEquals(-1, r.segment().mismatch(MemorySegment.ofArray(data)), "loaded to node " + node);
                assertEquals(List.of(), mem.verify());
                r.free();
            }
        } finally {
            Files.deleteIfExists(p);
        }
    }

    @Test
    void nativeCodeWorksOnDevicePages() throws Throwable {
        mem = uffdMemory(PAGE, MemoryFixture.emulated(64 * MiB));
        Region r = mem.allocate(4 * MiB);
        MemorySegment s = r.segment();
        fill(s, 0, r.size(), 4);
        mem.advise(r, 0, r.size(), new Advice.Prefetch(1));
        // memcpy the second MiB over the first, memset the third, all while on the device
        MemorySegment base = MemorySegment.ofAddress(r.address());
        MemorySegment ignored = (MemorySegment) MemoryFixture.MEMCPY.invokeExact(base, base.reinterpret(r.size()).asSlice(MiB), MiB);
        ignored = (MemorySegment) MemoryFixture.MEMSET.invokeExact(base.reinterpret(r.size()).asSlice(2 * MiB), 0x5A, MiB);
        for (long i = 0; i < MiB; i += 8) {
            assertEquals(value(4, (MiB + i) >>> 3), s.get(JAVA_LONG, i), "memcpy'd word at " + i);
        }
        assertEquals(0, mismatches(s, MiB, 2 * MiB, 4));
        for (long i = 2 * MiB; i < 3 * MiB; i += 8) {
            assertEquals(0x5A5A5A5A5A5A5A5AL, s.get(JAVA_LONG, i));
        }
        assertEquals(0, mismatches(s, 3 * MiB, 4 * MiB, 4));
    }

    /**
     * Pages only the device holds, gathered within it for a plain argument: the state words that
     * named their old frames name the new ones before the old go back (FREED_FRAMES_AFTER_MIRROR),
     * so plain loads afterwards read what the kernel wrote, from the frames it is in now.
     */
    @Test
    void plainLoadsReadPagesGatheredWithinTheDevice() {
        EmulatedDevice dev = MemoryFixture.emulated(16 * MiB);
        mem = uffdMemory(PAGE, dev);
        long bytes = 256 * PAGE;
        Region in = mem.allocate(bytes);
        Region out = mem.allocate(bytes);
        MemorySegment s = in.segment();
        fill(s, 0, bytes, 6);
        for (long p = bytes / PAGE - 1; p >= 0; p--) {
            mem.advise(in, p * PAGE, PAGE, new Advice.Prefetch(1));   // frames not in page order
        }
        mem.launch(1, (EmulatedKernel) (a, i) -> a.arg(0).putLong(8 * i, a.arg(0).getLong(8 * i) + 3), bytes / 8,
                KernelArg.readWrite(in));
        long before = dev.pagesCopiedWithin();
        mem.launch(1, EmulatedKernel.plain((a, i) -> a.plain(1).setAtIndex(JAVA_LONG, i, a.plain(0).getAtIndex(JAVA_LONG, i) + 1),
                0, 1), bytes / 8, KernelArg.read(in), KernelArg.write(out));
        assertEquals(bytes / PAGE, dev.pagesCopiedWithin() - before, "in's pages moved within the device");
        assertEquals(List.of(), mem.verify());
        for (long i = 0; i < bytes; i += 8) {
            assertEquals(value(6, i >>> 3) + 3, s.get(JAVA_LONG, i), "in's long at " + i);
            assertEquals(value(6, i >>> 3) + 4, out.segment().get(JAVA_LONG, i), "out's long at " + i);
        }
    }

    @Test
    void writesToReadDuplicatedPagesInvalidateTheDeviceCopiesFirst() {
        mem = uffdMemory(PAGE, MemoryFixture.emulated(64 * MiB));
        Region r = mem.allocate(2 * MiB);
        MemorySegment s = r.segment();
        fill(s, 0, r.size(), 5);
        mem.advise(r, 0, r.size(), new Advice.ReadMostly(true));
        mem.launch(1, (EmulatedKernel) (args, item) -> args.arg(0).getLong(0), 1, KernelArg.read(r));
        assertEquals(List.of(), mem.verify());
        assertEquals(r.size(), mem.stats().node(1).residentBytes(), "read duplicated onto the device");
        assertEquals(r.size(), mem.stats().node(0).residentBytes(), "and still on the host");
        long before = mem.faultServiceCounters().writeFaults();
        s.set(JAVA_LONG, 3 * PAGE, 77L);   // the host's copy is write-protected: this write faults
        assertEquals(before + 1, mem.faultServiceCounters().writeFaults());
        assertEquals(List.of(), mem.verify());
        // the device's copy of that page is gone; a kernel reads the new value
        assertEquals(r.size() - PAGE, mem.stats().node(1).residentBytes());
        long[] seen = new long[1];
        mem.launch(1, (EmulatedKernel) (args, item) -> seen[0] = args.arg(0).getLong(3 * PAGE), 1, KernelArg.read(r));
        assertEquals(77L, seen[0]);
        assertEquals(value(5, (4 * PAGE) >>> 3), s.get(JAVA_LONG, 4 * PAGE));
    }

    @Test
    void aKernelKeepsItsPagesWhileHostThreadsTouchTheirNeighbours() throws Exception {
        mem = uffdMemory(GRANULE_FOR_NEIGHBOURS, MemoryFixture.emulated(64 * MiB));
        Region r = mem.allocate(8 * MiB);
        MemorySegment s = r.segment();
        fill(s, 0, r.size(), 6);
        for (int round = 0; round < 5; round++) {
            long seed = 100 + round;
            CountDownLatch running = new CountDownLatch(1);
            CountDownLatch touched = new CountDownLatch(4);
            List<Thread> hosts = new ArrayList<>();
            AtomicReference<Throwable> failure = new AtomicReference<>();
            for (int t = 0; t < 4; t++) {
                long from = t * 2 * MiB + MiB;   // the second half of each 2 MiB granule
                hosts.add(Thread.ofPlatform().start(() -> {
                    try {
                        running.await();
                        fill(s, from, from + MiB, seed);
                    } catch (Throwable e) {
                        failure.set(e);
                    } finally {
                        touched.countDown();
                    }
                }));
            }
            // the kernel holds every page; it writes the first half of each granule once the host has
            // written the second halves meanwhile (each host touch takes just its page from the kernel)
            mem.launch(1, (EmulatedKernel) (args, item) -> {
                running.countDown();
                try {
                    touched.await();
                } catch (InterruptedException e) {
                    throw new IllegalStateException(e);
                }
                for (int g = 0; g < 4; g++) {
                    for (long i = g * 2 * MiB; i < g * 2 * MiB + MiB; i += 8) {
                        args.arg(0).putLong(i, value(seed + 1000, i >>> 3));
                    }
                }
            }, 1, KernelArg.readWrite(r));
            for (Thread t : hosts) {
                t.join();
            }
            assertEquals(null, failure.get());
            for (int g = 0; g < 4; g++) {
                assertEquals(0, mismatches(s, g * 2 * MiB, g * 2 * MiB + MiB, seed + 1000), "kernel's half, round " + round);
                assertEquals(0, mismatches(s, g * 2 * MiB + MiB, (g + 1) * 2 * MiB, seed), "host's half, round " + round);
            }
            assertEquals(List.of(), mem.verify());
        }
    }

    /**
     * A fault message the service has read can be served late, after its thread was woken by
     * someone else: the engine bringing the page home installs it and wakes every thread waiting on
     * it. The thread's load is then over; if the page has since gone to a device and a kernel holds
     * it, the late message must not take it from the kernel (the host's copy would win over the
     * kernel's stores). The service is held after its read so the late message is certain.
     */
    @Test
    void aFaultMessageServedLateCannotTakeAPageFromAKernelThatStartedAfterTheLoadEnded() throws Exception {
        lateFaultMessage(64 * MiB, 2 * MiB);
    }

    /** The same for a launch over more than the device, which runs by device faults with no pins. */
    @Test
    void aFaultMessageServedLateCannotTakeAPageFromAFaultingLaunchThatStartedAfterTheLoadEnded() throws Exception {
        lateFaultMessage(4 * MiB, 8 * MiB);
    }

    private void lateFaultMessage(long deviceBytes, long regionBytes) throws Exception {
        mem = uffdMemory(PAGE, MemoryFixture.emulated(deviceBytes));
        Region r = mem.allocate(regionBytes);
        MemorySegment s = r.segment();
        fill(s, 0, r.size(), 8);
        long page = 5 * PAGE;
        mem.advise(r, 0, 2 * MiB, new Advice.Prefetch(1));   // the page only on the device
        HostMirror m = ((dev.hetmem.fault.UserfaultfdSide) r.state().host()).mirror();
        long faults = mem.faultServiceCounters().faults();
        long[] seen = new long[1];
        try {
            long held = m.holdServiceAfterReadForTesting(700_000_000L);
            Thread reader = Thread.ofPlatform().start(() -> seen[0] = s.get(JAVA_LONG, page));
            while (m.messagesHeldForTesting() == held) {   // the service has read the reader's fault and holds it
                Thread.onSpinWait();
            }
            mem.advise(r, page, PAGE, new Advice.Prefetch(0));   // installs the page: the reader goes on
            reader.join();
            assertEquals(value(8, page >>> 3), seen[0]);
            assertEquals(faults, mem.faultServiceCounters().faults(), "the reader went on while its message was held");
            mem.advise(r, page, PAGE, new Advice.Prefetch(1));   // and the page leaves again
            // a kernel holds the page and writes it after the held message has been served
            mem.launch(1, (EmulatedKernel) (args, item) -> {
                try {
                    Thread.sleep(1000);
                } catch (InterruptedException e) {
                    throw new IllegalStateException(e);
                }
                args.arg(0).putLong(page, 4321L);
            }, 1, KernelArg.readWrite(r));
        } finally {
            m.holdServiceAfterReadForTesting(0);
        }
        assertEquals(faults + 1, mem.faultServiceCounters().faults(), "the held message was served, once");
        assertEquals(List.of(), mem.verify());
        assertEquals(4321L, s.get(JAVA_LONG, page), "the kernel's store");
        assertEquals(0, mismatches(s, 0, page, 8) + mismatches(s, page + PAGE, r.size(), 8), "the other pages");
    }

    @Test
    void manyThreadsFaultTheSameAndDifferentGranulesAgainstAShadowCopy() throws Exception {
        mem = uffdMemory(16 * 1024, MemoryFixture.emulated(16 * MiB));
        long size = 24 * MiB;   // larger than the device: prefetches evict
        Region r = mem.allocate(size);
        MemorySegment s = r.segment();
        int threads = 6;
        long slice = size / threads;
        long[][] shadow = new long[threads][(int) (slice / PAGE)];
        AtomicBoolean stop = new AtomicBoolean();
        ConcurrentLinkedQueue<Throwable> failures = new ConcurrentLinkedQueue<>();
        List<Thread> workers = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            int me = t;
            workers.add(Thread.ofPlatform().start(() -> {
                ThreadLocalRandom rnd = ThreadLocalRandom.current();
                long base = me * slice;
                try {
                    for (int op = 0; op < 3000 && failures.isEmpty(); op++) {
                        int page = rnd.nextInt(shadow[me].length);
                        long off = base + page * PAGE + 8L * rnd.nextInt(512);
                        long got = s.get(JAVA_LONG, base + page * PAGE);
                        if (got != shadow[me][page]) {
                            throw new AssertionError("thread " + me + " page " + page + ": " + got + " != " + shadow[me][page]);
                        }
                        // everybody also reads a shared page, which keeps bouncing
                        s.get(JAVA_LONG, 0);
                        long v = rnd.nextLong();
                        s.set(JAVA_LONG, base + page * PAGE, v);
                        shadow[me][page] = v;
                        s.set(JAVA_LONG, off == base + page * PAGE ? off + 8 : off, v);
                    }
                } catch (Throwable e) {
                    failures.add(e);
                }
            }));
        }
        Thread mover = Thread.ofPlatform().start(() -> {
            ThreadLocalRandom rnd = ThreadLocalRandom.current();
            try {
                while (!stop.get()) {
                    long off = rnd.nextLong(size / MiB) * MiB;
                    mem.advise(r, off, Math.min(4 * MiB, size - off), new Advice.Prefetch(rnd.nextInt(2)));
                }
            } catch (Throwable e) {
                failures.add(e);
            }
        });
        for (Thread w : workers) {
            w.join(120_000);
        }
        stop.set(true);
        mover.join(60_000);
        assertEquals(List.of(), List.copyOf(failures));
        for (int t = 0; t < threads; t++) {
            for (int p = 0; p < shadow[t].length; p++) {
                assertEquals(shadow[t][p], s.get(JAVA_LONG, t * slice + p * PAGE), "thread " + t + " page " + p);
            }
        }
    }

    @Test
    void aRegionFreedWhileThreadsFaultOnItGivesThemAnErrorAndTheJvmGoesOn() throws Exception {
        mem = uffdMemory(PAGE, MemoryFixture.emulated(64 * MiB));
        for (int round = 0; round < 5; round++) {
            Region r = mem.allocate(8 * MiB);
            MemorySegment s = r.segment();
            fill(s, 0, r.size(), 7);
            mem.advise(r, 0, r.size(), new Advice.Prefetch(1));
            AtomicReference<Throwable> ended = new AtomicReference<>();
            CountDownLatch started = new CountDownLatch(2);
            List<Thread> readers = new ArrayList<>();
            for (int t = 0; t < 2; t++) {
                readers.add(Thread.ofPlatform().start(() -> {
                    started.countDown();
                    try {
                        for (long i = 0; ; i = (i + PAGE) % s.byteSize()) {
                            s.get(JAVA_LONG, i);
                        }
                    } catch (Throwable e) {
                        ended.compareAndSet(null, e);
                    }
                }));
            }
            started.await();
            Thread.sleep(5);
            r.free();
            for (Thread t : readers) {
                t.join(30_000);
                assertTrue(!t.isAlive(), "a reader is still blocked after the region was freed");
            }
            assertInstanceOf(IllegalStateException.class, ended.get());
            assertThrows(IllegalStateException.class, r::segment);
        }
    }

    @Test
    void theModeNeedsDevicesWhoseMemoryTheHostCanRead() {
        var d = new WrappedDevice("opaque0", 4 * MiB);   // frames the host cannot read
        var e = assertThrows(UserfaultfdUnavailableException.class,
                () -> UnifiedMemory.builder().device(d).hostFaults(HostFaultMode.USERFAULTFD).build());
        assertTrue(e.getMessage().contains("opaque0"), e.getMessage());
        d.close();
        try (UnifiedMemory views = UnifiedMemory.builder().build()) {
            Region r = views.allocate(MiB);
            var ise = assertThrows(IllegalStateException.class, r::segment);
            assertTrue(ise.getMessage().contains("USERFAULTFD"), ise.getMessage());
        }
    }


    /**
     * With userfaultfd host faults a launch larger than the device runs tile by tile where windows
     * are declared (its tiles are pinned) and by device faults where none is: its pages are marked
     * BUSY for the fault service without a pin, so the engine may still evict them.
     */
    @Test
    void aLaunchLargerThanTheDeviceRunsTiledOrByFaults() {
        mem = uffdMemory(2 * MiB, MemoryFixture.emulated(4 * MiB));
        long bytes = 12 * MiB;
        Region r = mem.allocate(bytes);
        MemoryFixture.fill(r.segment(), 0, 4);
        EmulatedKernel add = (a, i) -> a.arg(0).putLong(8 * i, a.arg(0).getLong(8 * i) + 3);
        LaunchResult byFaults = mem.launch(1, add, bytes / 8, KernelArg.readWrite(r));
        assertTrue(byFaults.faults() >= bytes / (2 * MiB), "every granule faulted in: " + byFaults);
        mem.launch(1, add, bytes / 8, KernelArg.readWrite(r).perItem(8));
        for (long i = 0; i < bytes / 8; i++) {
            long got = r.segment().get(JAVA_LONG, 8 * i);
            if (got != MemoryFixture.value(4, i) + 6) {
                assertEquals(MemoryFixture.value(4, i) + 6, got, "long " + i + ", read by plain loads");
            }
        }
        assertEquals(List.of(), mem.verify());
    }

    /**
     * A faulting launch over six arguments of one region, each a 2 MiB granule less its last 64 KiB,
     * on a device of two granules (constant eviction and faults), while another thread stores into
     * the 64 KiB holes with plain stores. Each store faults its granule home, and the fault service
     * takes the granule's other pages with it unless they are marked BUSY: without the mark, pages a
     * work item is writing would be taken home and its later stores thrown away. Every long of the
     * arguments must gain exactly the kernel's delta, and every hole hold the last value stored.
     */
    @Test
    void hostStoresBesideAFaultingLaunchLoseNothing() throws Exception {
        mem = uffdMemory(2 * MiB, MemoryFixture.emulated(4 * MiB));
        long granule = 2 * MiB;
        long hole = 64 * 1024;
        int args = 6;
        Region r = mem.allocate(args * granule);
        MemoryFixture.fill(r.segment(), 0, 9);
        long perArg = (granule - hole) / 8;
        KernelArg[] kargs = new KernelArg[args];
        for (int g = 0; g < args; g++) {
            kargs[g] = KernelArg.of(r, g * granule, granule - hole, Access.READ_WRITE);
        }
        EmulatedKernel add = (a, i) -> {
            int g = (int) (i / perArg);
            long at = 8 * (i % perArg);
            a.arg(g).putLong(at, a.arg(g).getLong(at) + 5);
        };
        AtomicBoolean done = new AtomicBoolean();
        long[] last = new long[(int) (args * hole / 8)];
        AtomicReference<Throwable> failed = new AtomicReference<>();
        Thread host = Thread.ofPlatform().start(() -> {
            try {
                MemorySegment seg = r.segment();
                long v = 1;
                while (!done.get()) {
                    for (int g = 0; g < args; g++) {
                        for (long o = 0; o < hole; o += PAGE) {
                            long at = g * granule + granule - hole + o;
                            seg.set(JAVA_LONG, at, v);
                            last[(int) ((g * hole + o) / 8)] = v;
                            v++;
                        }
                    }
                }
            } catch (Throwable t) {
                failed.set(t);
            }
        });
        LaunchResult res;
        try {
            res = mem.launch(1, add, args * perArg, kargs);
        } finally {
            done.set(true);
            host.join();
        }
        if (failed.get() != null) {
            throw new AssertionError("the storing thread failed", failed.get());
        }
        MemorySegment seg = r.segment();
        for (int g = 0; g < args; g++) {
            for (long i = 0; i < perArg; i++) {
                long index = (g * granule) / 8 + i;
                long got = seg.get(JAVA_LONG, 8 * index);
                if (got != value(9, index) + 5) {
                    assertEquals(value(9, index) + 5, got, "argument " + g + ", long " + i + " (" + res + ")");
                }
            }
            for (long o = 0; o < hole; o += PAGE) {
                long at = g * granule + granule - hole + o;
                assertEquals(last[(int) ((g * hole + o) / 8)], seg.get(JAVA_LONG, at), "the last store into hole " + g + " at " + o);
            }
        }
        assertEquals(List.of(), mem.verify());
    }

    /**
     * A page host code took (by a store) before a launch that runs by device faults, in a block
     * where a resident kernel pins another page: the faulting launch's own BUSY mark must not keep
     * the steal from being taken in before its work items run. It did (the reconcile decided for
     * the whole block that a device pin might hold the page): the items reached the device's stale
     * copy through its old mapping, and when the pin went, the host's copy was taken as the truth
     * and the launch's stores to the page were lost.
     */
    @Test
    void aPageTakenHomeBeforeAFaultingLaunchIsTakenInWhileAnotherKernelPinsItsBlock() throws Exception {
        mem = uffdMemory(PAGE, MemoryFixture.emulated(MiB));
        Region r = mem.allocate(2 * MiB, PAGE);
        MemorySegment view = r.segment();
        MemoryFixture.fill(view, 0, 3);
        long q = 100 * PAGE;   // the resident kernel's page; page 0 is the one host code takes
        assertEquals(2, mem.prefetch(r, new long[] {0, q}, PAGE, 1));
        HeldKernel resident = new HeldKernel(mem, 1, KernelArg.of(r, q, PAGE, Access.READ));
        try {
            assertTrue(resident.awaitRunning(20), "the resident kernel started");
            view.set(JAVA_LONG, 0, 777);   // takes page 0 home from device 1 (a 4 KiB granule)
            // more than the device holds: runs by device faults; every long of page 0 gains 5
            mem.launch(1, (EmulatedKernel) (a, i) -> a.arg(0).putLong(8 * i, a.arg(0).getLong(8 * i) + 5), PAGE / 8,
                    KernelArg.of(r, 0, q, Access.READ_WRITE), KernelArg.of(r, q + PAGE, 2 * MiB - q - PAGE, Access.READ_WRITE));
        } finally {
            resident.release();
        }
        if (resident.failure() != null) {
            throw new AssertionError("the resident kernel failed", resident.failure());
        }
        assertEquals(782, view.get(JAVA_LONG, 0), "the host's store plus the faulting launch's");
        for (long i = 1; i < PAGE / 8; i++) {
            assertEquals(value(3, i) + 5, view.get(JAVA_LONG, 8 * i), "long " + i + " of page 0");
        }
        assertEquals(value(3, q / 8), view.get(JAVA_LONG, q), "the resident kernel's page");
    }

    /**
     * A region freed while a native call still uses a slice of its view (a blocking read into it):
     * the free waits for the call to return, then frees. It failed at once ("acquired by 1
     * clients") with the region already marked closed, so it stayed registered and mapped for good.
     */
    @Test
    void aFreeWaitsForANativeCallUsingTheView() throws Throwable {
        whileANativeCallUsesTheView(false);
    }

    /**
     * The same with the memory closed by an interrupted thread (a task cancelled with
     * {@code Future.cancel(true)} that closes its memory): the wait for the native call went at
     * once, the close failed and left the region mapped. It waits, and the interrupt is kept.
     */
    @Test
    void anInterruptedCloseWaitsForANativeCallUsingTheView() throws Throwable {
        whileANativeCallUsesTheView(true);
    }

    /** A blocking read(2) into a slice of a region's view while the region is freed (or, {@code close}, the memory closed interrupted). */
    private void whileANativeCallUsesTheView(boolean interruptedClose) throws Throwable {
        mem = uffdMemory(2 * MiB, EmulatedDevice.builder().capacity(8 * MiB).build());
        Region r = mem.allocate(2 * MiB);
        java.lang.foreign.Linker linker = java.lang.foreign.Linker.nativeLinker();
        var lookup = linker.defaultLookup();
        var pipe = linker.downcallHandle(lookup.find("pipe").orElseThrow(),
                java.lang.foreign.FunctionDescriptor.of(java.lang.foreign.ValueLayout.JAVA_INT, java.lang.foreign.ValueLayout.ADDRESS));
        var read = linker.downcallHandle(lookup.find("read").orElseThrow(),
                java.lang.foreign.FunctionDescriptor.of(java.lang.foreign.ValueLayout.JAVA_LONG, java.lang.foreign.ValueLayout.JAVA_INT,
                        java.lang.foreign.ValueLayout.ADDRESS, java.lang.foreign.ValueLayout.JAVA_LONG));
        var write = linker.downcallHandle(lookup.find("write").orElseThrow(),
                java.lang.foreign.FunctionDescriptor.of(java.lang.foreign.ValueLayout.JAVA_LONG, java.lang.foreign.ValueLayout.JAVA_INT,
                        java.lang.foreign.ValueLayout.ADDRESS, java.lang.foreign.ValueLayout.JAVA_LONG));
        var close = linker.downcallHandle(lookup.find("close").orElseThrow(),
                java.lang.foreign.FunctionDescriptor.of(java.lang.foreign.ValueLayout.JAVA_INT, java.lang.foreign.ValueLayout.JAVA_INT));
        try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
            MemorySegment fds = arena.allocate(java.lang.foreign.ValueLayout.JAVA_INT, 2);
            assertEquals(0, (int) pipe.invokeExact(fds));
            int in = fds.getAtIndex(java.lang.foreign.ValueLayout.JAVA_INT, 0);
            int out = fds.getAtIndex(java.lang.foreign.ValueLayout.JAVA_INT, 1);
            CountDownLatch reading = new CountDownLatch(1);
            AtomicReference<Object> got = new AtomicReference<>();
            Thread reader = Thread.ofPlatform().start(() -> {
                try {
                    reading.countDown();
                    got.set((long) read.invokeExact(in, r.segment().asSlice(4096, 8), 8L));
                } catch (Throwable t) {
                    got.set(t);
                }
            });
            assertTrue(reading.await(10, java.util.concurrent.TimeUnit.SECONDS));
            Thread.sleep(200);   // the reader is in read(2) by now, the view's arena acquired
            Thread writer = Thread.ofPlatform().start(() -> {
                try {
                    Thread.sleep(500);
                    MemorySegment b = java.lang.foreign.Arena.global().allocate(8);
                    b.set(JAVA_LONG, 0, 42);
                    long n = (long) write.invokeExact(out, b, 8L);
                    assertEquals(8, n);
                } catch (Throwable t) {
                    throw new AssertionError(t);
                }
            });
            if (interruptedClose) {
                Thread.currentThread().interrupt();
                UnifiedMemory closing = mem;
                mem = null;   // closed here, not after the test
                try {
                    closing.close();   // waits for the read to return
                    assertTrue(Thread.currentThread().isInterrupted(), "the interrupt is kept");
                } finally {
                    Thread.interrupted();
                }
            } else {
                r.free();   // waits for the read to return
            }
            writer.join();
            reader.join();
            assertEquals(8L, got.get(), "the read returned its 8 bytes");
            assertTrue(r.isFreed());
            int unused = (int) close.invokeExact(in);
            unused = (int) close.invokeExact(out);
        }
        if (!interruptedClose) {
            assertEquals(List.of(), mem.verify());
        }
    }

    /**
     * Granularity advice in userfaultfd mode: a host fault brings home the advised granule around
     * it, not the region's. The service walked the region's granule whatever the advice said (a
     * 4 KiB advice still moved 2 MiB at every touch).
     */
    @Test
    void aHostFaultBringsHomeTheAdvisedGranule() {
        mem = uffdMemory(2 * MiB, EmulatedDevice.builder().capacity(8 * MiB).build());
        Region r = mem.allocate(4 * MiB);
        MemoryFixture.fill(r.segment(), 0, 4);
        r.advise(0, 2 * MiB, Advice.granularity(64 * 1024));
        assertEquals(4 * MiB / PAGE, mem.prefetch(r, new long[] {0}, 4 * MiB, 1));
        MemorySegment view = r.segment();
        assertEquals(value(4, (3 * 64 * 1024 + 8) / 8), view.get(JAVA_LONG, 3 * 64 * 1024 + 8));
        PageSnapshot s = r.snapshot(0, 4 * MiB);
        for (long p = 0; p < 1024; p++) {
            boolean home = p >= 48 && p < 64;   // the fourth 64 KiB granule
            assertEquals(home ? "node 0 rw" : "node 1 rw", s.describe((int) p), "page " + p);
        }
        // the second block keeps the region's 2 MiB granule
        assertEquals(value(4, (3 * MiB) / 8), view.get(JAVA_LONG, 3 * MiB));
        s = r.snapshot(0, 4 * MiB);
        assertEquals("node 0 rw", s.describe(512));
        assertEquals("node 0 rw", s.describe(1023));
        assertEquals(List.of(), mem.verify());
        // granules above 2 MiB too (the service took at most 2 MiB and refused the advice)
        Region big = mem.allocate(8 * MiB);
        MemoryFixture.fill(big.segment(), 0, 5);
        big.advise(0, 8 * MiB, Advice.granularity(4 * MiB));
        mem.prefetch(big, new long[] {0}, 8 * MiB, 1);
        assertEquals(value(5, MiB / 8), big.segment().get(JAVA_LONG, MiB));
        PageSnapshot b = big.snapshot(0, 8 * MiB);
        assertEquals("node 0 rw", b.describe(1023), "the 4 MiB granule came home whole");
        assertEquals("node 1 rw", b.describe(1024), "the next granule stayed");
        assertEquals(List.of(), mem.verify());
    }

    private static final long HEAD = 64 * 1024;

    /**
     * A 2 MiB region of one 2 MiB granule holding the pattern of {@code seed} on device 1, but for
     * its first {@link #HEAD} bytes, which the host holds as zeros with nothing mapped in the view
     * (discarded, then prefetched home): set up with 4 KiB granules, one range at a time.
     */
    private Region zerosAtHomeBesideDevicePages(long seed) {
        mem = uffdMemory(PAGE, MemoryFixture.emulated(16 * MiB));
        return zerosAtHomeBesideDevicePages(mem, seed);
    }

    private static Region zerosAtHomeBesideDevicePages(UnifiedMemory mem, long seed) {
        Region r = mem.allocate(2 * MiB);
        MemoryFixture.fill(r.segment(), 0, seed);
        mem.prefetch(r, new long[] {0}, 2 * MiB, 1);         // the data on the device, nothing in the view
        mem.advise(r, 0, HEAD, new Advice.DontNeed());       // the head's pages held by nobody
        mem.prefetch(r, new long[] {0}, HEAD, 0);            // ... then by the host, as zeros, nothing mapped
        r.advise(0, 2 * MiB, Advice.granularity(2 * MiB));
        return r;
    }

    /** Every page of r where {@code where} says, and its bytes zeros in the head, the pattern of {@code seed} after it. */
    private static void assertPlacedAndKept(Region r, java.util.function.IntFunction<String> where, long seed, String after) {
        PageSnapshot s = r.snapshot(0, 2 * MiB);
        for (int p = 0; p < 512; p++) {
            assertEquals(where.apply(p), s.describe(p), "page " + p + " after " + after);
        }
        for (long at = 0; at < 2 * MiB; at += 8) {
            long want = at < HEAD ? 0 : value(seed, at >>> 3);
            if (r.segment().get(JAVA_LONG, at) != want) {
                assertEquals(want, r.segment().get(JAVA_LONG, at), "byte " + at);
            }
        }
    }

    /**
     * A prefetch to a device of a granule holding pages the host holds as zeros with nothing mapped:
     * the copy reads each such page through the view, and that read must not be taken for host
     * code's. It faulted, and the service took the fault's granule home, the pages already on the
     * device included, so the prefetch returned with pages at home that it had been asked to move.
     */
    @Test
    void aPrefetchCopyingPagesTheHostHoldsAsZerosFaultsNothingHome() {
        Region r = zerosAtHomeBesideDevicePages(9);
        FaultServiceCounters before = mem.faultServiceCounters();
        assertEquals(HEAD / PAGE, mem.prefetch(r, new long[] {0}, 2 * MiB, 1), "pages the prefetch moved");
        FaultServiceCounters after = mem.faultServiceCounters();
        assertEquals(List.of(), mem.verify());   // before the reads below take the granule home
        String service = "(service: " + before + " before, " + after + " after)";
        assertPlacedAndKept(r, p -> "node 1 rw", 9, "the prefetch to node 1 " + service);
        assertEquals(before.faults(), after.faults(), "faults during the prefetch " + service);
        assertEquals(before.stolen(), after.stolen(), "pages the service took during the prefetch " + service);
    }

    /**
     * A zero fill for the copy that fails (short of memory) leaves its page missing, and the
     * migration goes on: the copy's read faults as it did before fills for copies existed, so the
     * granule comes home, but every byte is kept and the page table agrees with the view.
     */
    @Test
    void aPrefetchWhoseZeroFillForTheCopyFailsKeepsEveryByte() {
        Region r = zerosAtHomeBesideDevicePages(11);
        HostMirror m = ((dev.hetmem.fault.UserfaultfdSide) r.state().host()).mirror();
        FaultServiceCounters before = mem.faultServiceCounters();
        m.failFillsForTesting(0, 1, 12 /* ENOMEM */, false);   // the engine's first fill: the head's run
        try {
            mem.prefetch(r, new long[] {0}, 2 * MiB, 1);
        } finally {
            m.failFillsForTesting(-1, 0, 0, false);
        }
        FaultServiceCounters after = mem.faultServiceCounters();
        assertEquals(List.of(), mem.verify());
        assertEquals(before.errors() + 1, after.errors(), "the failed fill (" + before + " before, " + after + " after)");
        assertTrue(after.faults() > before.faults(), "the copy's read faulted instead (" + after + ")");
        // the head went (the copy read zeros from the pages its faults installed), the rest came home for them
        assertPlacedAndKept(r, p -> p < HEAD / PAGE ? "node 1 rw" : "node 0 rw", 11, "the prefetch whose fill failed");
    }

    /**
     * The zeroed pages a migration's copy reads are write-protected from the start: reads of them
     * during the copy take no fault, and a host store to one faults and takes its page back (the
     * copy of it being made is dropped), so the store is kept.
     */
    @Test
    void aStoreToAPageZeroFilledForTheCopyTakesItBackAndIsKept() throws Exception {
        HeldCopies device = new HeldCopies();
        mem = UnifiedMemory.builder().copyThreads(1).granularity(PAGE).hostFaults(HostFaultMode.USERFAULTFD)
                .device(device).build();
        Region r = zerosAtHomeBesideDevicePages(mem, 12);
        HostMirror m = ((dev.hetmem.fault.UserfaultfdSide) r.state().host()).mirror();
        MemorySegment s = r.segment();
        device.hold = true;
        AtomicReference<Throwable> failed = new AtomicReference<>();
        Thread mover = Thread.ofPlatform().start(() -> {
            try {
                mem.prefetch(r, new long[] {0}, 2 * MiB, 1);
            } catch (Throwable e) {
                failed.set(e);
            }
        });
        FaultServiceCounters before;
        FaultServiceCounters reads;
        FaultServiceCounters written;
        try {
            device.copying.await();
            assertView(m, 0, HEAD / PAGE, HostMirror.VIEW_MAPPED | HostMirror.VIEW_WRITE_PROTECTED, "zeros for the copy, protected");
            before = mem.faultServiceCounters();
            for (long at = 0; at < HEAD; at += 8) {
                assertEquals(0L, s.get(JAVA_LONG, at), "byte " + at);
            }
            reads = mem.faultServiceCounters();
            s.set(JAVA_LONG, 3 * PAGE + 8, 77L);   // a write faults and takes its page back
            written = mem.faultServiceCounters();
        } finally {
            device.release.countDown();   // a failure above must not leave the migration, and its locks, held
            mover.join(30_000);
        }
        assertEquals(before, reads, "reads of the zeros being copied took no fault");
        assertEquals(before.writeFaults() + 1, written.writeFaults(), "the store's fault");
        assertEquals(null, failed.get());
        assertEquals(List.of(), mem.verify());
        PageSnapshot where = r.snapshot(0, 2 * MiB);
        assertEquals("node 0 rw", where.describe(3), "the written page stayed home");
        assertEquals(511, where.countOn(1), "the rest moved");
        assertEquals(77L, s.get(JAVA_LONG, 3 * PAGE + 8));
        s.set(JAVA_LONG, 3 * PAGE + 8, 0L);
        assertPlacedAndKept(r, p -> p == 3 ? "node 0 rw" : "node 1 rw", 12, "the store, put back");
    }

    /** The same for a read duplicate: the copy made of the host's page, which the host keeps, read-only. */
    @Test
    void aReadDuplicateOfPagesTheHostHoldsAsZerosFaultsNothingHome() {
        Region r = zerosAtHomeBesideDevicePages(10);
        r.advise(0, 2 * MiB, new Advice.ReadMostly(true));
        FaultServiceCounters before = mem.faultServiceCounters();
        LaunchResult l = mem.launch(1, (EmulatedKernel) (a, i) -> a.arg(0).getLong(i * PAGE), 512,
                KernelArg.of(r, 0, 2 * MiB, Access.READ));
        FaultServiceCounters after = mem.faultServiceCounters();
        assertEquals(List.of(), mem.verify());
        String service = "(service: " + before + " before, " + after + " after)";
        assertEquals(HEAD / PAGE, l.pagesMigrated(), "pages the launch duplicated " + service);
        assertPlacedAndKept(r, p -> p < HEAD / PAGE ? "nodes 0,1 ro" : "node 1 rw", 10, "the launch " + service);
        assertEquals(before.faults(), after.faults(), "faults during the launch " + service);
    }

    /**
     * A tiled launch in userfaultfd mode whose kernel reaches outside its declared window (back
     * into the previous tile's pages, still mapped on the device and pinned by nothing): the launch
     * fails naming the window, and nothing is lost. The access reached the stale mapping, where a
     * store could be lost to a copy home or land in a frame another region reused since.
     */
    @Test
    void aTiledLaunchReachingOutsideItsWindowFailsInUserfaultfdMode() {
        mem = uffdMemory(2 * MiB, MemoryFixture.emulated(4 * MiB));
        long bytes = 12 * MiB;
        Region r = mem.allocate(bytes);
        MemoryFixture.fill(r.segment(), 0, 4);
        EmulatedKernel backwards = (a, i) -> {
            long at = 8 * i;
            a.arg(0).putLong(at, a.arg(0).getLong(at) + 1);
            if (i == bytes / 8 - 1) {
                a.arg(0).putLong(bytes - MiB - 8, 99);   // the previous tile's last long, from the last tile
            }
        };
        var e = assertThrows(dev.hetmem.driver.DeviceFaultException.class,
                () -> mem.launch(1, backwards, bytes / 8, KernelArg.readWrite(r).perItem(8)));
        assertTrue(e.getMessage().contains("KernelArg.perItem"), e.getMessage());
        MemorySegment view = r.segment();
        assertEquals(value(4, (bytes - MiB - 8) / 8) + 1, view.get(JAVA_LONG, bytes - MiB - 8),
                "the previous tile's store stays, the stray one never landed");
        for (long i = 0; i < bytes / 8 - 1; i += 4099) {
            assertEquals(value(4, i) + 1, view.get(JAVA_LONG, 8 * i), "long " + i);
        }
    }

    /**
     * A fault's granule comes home in several fills; one that fails after others have installed
     * pages (memory short: ENOMEM from a cgroup's charge) left those pages mapped and writable while
     * their state words still said AWAY: a store to one took no fault, nothing told the page table,
     * and the next fault in the granule unmapped it as stale and copied the device's old bytes over it
     * (the store lost), while verify() found a page mapped that the host does not hold. The pages
     * installed before a failure now take the words planned for them.
     */
    @Test
    void aFaultWhoseInstallFailsPartWayKeepsThePagesItInstalledAndLosesNoStore() {
        long granule = 16 * PAGE;
        mem = uffdMemory(granule, MemoryFixture.emulated(8 * MiB));
        Region r = mem.allocate(2 * MiB);
        MemorySegment s = r.segment();
        fill(s, 0, r.size(), 31);
        mem.advise(r, 0, granule, new Advice.Prefetch(1));   // the granule's pages only on the device
        HostMirror m = ((dev.hetmem.fault.UserfaultfdSide) r.state().host()).mirror();
        long errors = mem.faultServiceCounters().errors();
        m.failFillsForTesting(4, 1, 12, true);   // ENOMEM once 4 pages of the granule are in
        try {
            assertEquals(value(31, 0), s.get(JAVA_LONG, 0), "the faulting page was installed before the failure");
            // the fill of the first 4 pages wakes this thread; the failing fill comes after it on the
            // service's thread: disarmed before that, the failure never happened (a run in CI read 0)
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (m.fillsLeftToFailForTesting() > 0 && System.nanoTime() < deadline) {
                Thread.onSpinWait();
            }
        } finally {
            m.failFillsForTesting(-1, 0, 0, false);
        }
        assertEquals(errors + 1, mem.faultServiceCounters().errors(), "the injected failure happened");
        s.set(JAVA_LONG, 2 * PAGE + 8, 777L);   // a page installed before the failure: its store must stay
        assertEquals(List.of(), mem.verify(), "every mapped page is the host's in the page table");
        assertEquals(value(31, (10 * PAGE) >>> 3), s.get(JAVA_LONG, 10 * PAGE), "a page past the failure faults in");
        assertEquals(777L, s.get(JAVA_LONG, 2 * PAGE + 8), "the store before the second fault of the granule");
        mem.prefetch(r, new long[] {0}, granule, 1);
        mem.prefetch(r, new long[] {0}, granule, 0);
        assertEquals(777L, s.get(JAVA_LONG, 2 * PAGE + 8), "the store after a round trip through the device");
        s.set(JAVA_LONG, 2 * PAGE + 8, value(31, (2 * PAGE + 8) >>> 3));
        assertEquals(0, mismatches(s, 0, r.size(), 31));
    }

    /**
     * A fault whose page cannot be installed (a failure that lasts) is served again when its thread
     * faults again: served at once, the service and the thread spun at some 10^5 faults a second for as
     * long as the failure lasted, a core burnt and the thread at no safepoint. The service pauses
     * between such faults (up to 10 ms): over 500 ms of failure, a few dozen faults, not tens of
     * thousands; and the load completes with the right bytes once the failure ends.
     */
    @Test
    void aFaultThatKeepsFailingIsRetriedWithPausesAndCompletesOnceTheFailureEnds() throws Exception {
        mem = uffdMemory(PAGE, MemoryFixture.emulated(8 * MiB));
        Region r = mem.allocate(2 * MiB);
        MemorySegment s = r.segment();
        fill(s, 0, r.size(), 32);
        mem.advise(r, 0, 2 * MiB, new Advice.Prefetch(1));
        HostMirror m = ((dev.hetmem.fault.UserfaultfdSide) r.state().host()).mirror();
        m.failFillsForTesting(0, Long.MAX_VALUE, 12, true);   // every fill fails until disarmed
        long faults = mem.faultServiceCounters().faults();
        long[] seen = new long[1];
        // the read is a native call's (memcpy): a thread held in a fault inside Java code cannot reach a
        // safepoint, and a GC wanted by another thread meanwhile stopped the whole JVM before the failure
        // was disarmed (seen once in CI); in a native call it does not hold safepoints up
        java.lang.foreign.Linker linker = java.lang.foreign.Linker.nativeLinker();
        java.lang.invoke.MethodHandle memcpy = linker.downcallHandle(linker.defaultLookup().find("memcpy").orElseThrow(),
                java.lang.foreign.FunctionDescriptor.of(java.lang.foreign.ValueLayout.ADDRESS, java.lang.foreign.ValueLayout.ADDRESS,
                        java.lang.foreign.ValueLayout.ADDRESS, JAVA_LONG));
        Thread reader = Thread.ofPlatform().start(() -> {
            try (java.lang.foreign.Arena a = java.lang.foreign.Arena.ofConfined()) {
                MemorySegment out = a.allocate(8);
                MemorySegment ignored = (MemorySegment) memcpy.invokeExact(out, s.asSlice(5 * PAGE, 8), 8L);
                seen[0] = out.get(JAVA_LONG, 0);
            } catch (Throwable t) {
                throw new AssertionError(t);
            }
        });
        try {
            Thread.sleep(500);
            assertTrue(reader.isAlive(), "the read waits while its page cannot be installed");
            long served = mem.faultServiceCounters().faults() - faults;
            assertTrue(served >= 2 && served < 1000, served + " faults served in 500 ms of failure");
            // a kernel's pin marks pages BUSY and waits for the fault batch in progress: the pauses come
            // after a batch has closed (taken inside it, each mark waited out a pause of up to 10 ms)
            long t0 = System.nanoTime();
            for (int i = 0; i < 100; i++) {
                m.busy(100, 1, true);
                m.busy(100, 1, false);
            }
            long ms = (System.nanoTime() - t0) / 1_000_000;
            assertTrue(ms < 300, "100 BUSY marks beside the failing fault took " + ms + " ms");
        } finally {
            m.failFillsForTesting(-1, 0, 0, false);
        }
        reader.join(10_000);
        assertTrue(!reader.isAlive(), "the read completed once the failure ended");
        assertEquals(value(32, (5 * PAGE) >>> 3), seen[0]);
        assertEquals(0, mismatches(s, 0, r.size(), 32));
    }

    /**
     * The partial install under concurrency: three threads store into and load from their own longs,
     * interleaved across every page, with plain accesses on the view, while a fourth moves granules to
     * the device and back, and the service's fills fail part-way (after 0 to 20 pages, one to three
     * in a row) every millisecond. Each thread checks every load against what it last stored; at the
     * end every long is checked and verify() must be clean. Three seconds here
     * ({@code -Dhetmem.test.fillFailureSeconds} for longer).
     */
    @Test
    void storesAndLoadsBesideMigrationsWhileFaultFillsFailPartWayLoseNothing() throws Exception {
        long granule = 16 * PAGE;
        mem = uffdMemory(granule, MemoryFixture.emulated(8 * MiB));
        Region r = mem.allocate(4 * MiB);
        MemorySegment s = r.segment();
        int threads = 3;
        int longs = (int) (r.size() / 8);
        long[][] shadow = new long[threads][longs / threads + 1];   // thread t owns longs t, t + 3, t + 6, ...
        HostMirror m = ((dev.hetmem.fault.UserfaultfdSide) r.state().host()).mirror();
        long millis = Long.getLong("hetmem.test.fillFailureSeconds", 3) * 1000;
        AtomicBoolean stop = new AtomicBoolean();
        AtomicReference<Throwable> failed = new AtomicReference<>();
        List<Thread> all = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            int me = t;
            all.add(Thread.ofPlatform().start(() -> {
                ThreadLocalRandom rnd = ThreadLocalRandom.current();
                try {
                    while (!stop.get()) {
                        int k = rnd.nextInt(shadow[me].length);
                        long at = 8L * (me + (long) threads * k);
                        if (at >= r.size()) {
                            continue;
                        }
                        if (rnd.nextBoolean()) {
                            long v = rnd.nextLong();
                            s.set(JAVA_LONG, at, v);
                            shadow[me][k] = v;
                        } else {
                            long got = s.get(JAVA_LONG, at);
                            if (got != shadow[me][k]) {
                                throw new AssertionError("byte " + at + " reads " + got + ", last stored " + shadow[me][k]);
                            }
                        }
                    }
                } catch (Throwable e) {
                    failed.compareAndSet(null, e);
                }
            }));
        }
        all.add(Thread.ofPlatform().start(() -> {
            ThreadLocalRandom rnd = ThreadLocalRandom.current();
            try {
                while (!stop.get()) {
                    long g = rnd.nextLong(r.size() / granule) * granule;
                    mem.prefetch(r, new long[] {g}, Math.min(granule * (1 + rnd.nextInt(4)), r.size() - g), rnd.nextInt(2));
                }
            } catch (Throwable e) {
                failed.compareAndSet(null, e);
            }
        }));
        long errors = mem.faultServiceCounters().errors();
        long end = System.nanoTime() + millis * 1_000_000L;
        ThreadLocalRandom rnd = ThreadLocalRandom.current();
        try {
            while (System.nanoTime() < end && failed.get() == null) {
                m.failFillsForTesting(rnd.nextInt(21), 1 + rnd.nextInt(3), 12, true);
                Thread.sleep(1);
            }
        } finally {
            m.failFillsForTesting(-1, 0, 0, false);
            stop.set(true);
            for (Thread t : all) {
                t.join(30_000);
            }
        }
        if (failed.get() != null) {
            throw new AssertionError("a lost store or a failed step", failed.get());
        }
        assertTrue(mem.faultServiceCounters().errors() > errors, "fills failed");
        for (int t = 0; t < threads; t++) {
            for (int k = 0; k < shadow[t].length; k++) {
                long at = 8L * (t + (long) threads * k);
                if (at < r.size()) {
                    assertEquals(shadow[t][k], s.get(JAVA_LONG, at), "byte " + at);
                }
            }
        }
    }
}
