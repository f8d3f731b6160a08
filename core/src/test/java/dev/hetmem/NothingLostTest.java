package dev.hetmem;

import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.device.emulated.EmulatedKernel;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Regressions of defects found by testing from outside, each a workload that lost or corrupted
 * data before its fix (the seeded model-based stress test covers the same ground at random).
 */
@Tag("emulated")
class NothingLostTest {
    private static final int SLOT = 64 << 10;

    /**
     * userfaultfd, two devices: plain stores into owned slots while two threads prefetch random
     * ranges to random nodes. Before device frames were freed only after the view stopped naming
     * them, a device-to-device move let a fault copy another page's data home (hundreds of wrong
     * read-backs in a few seconds).
     */
    @Test
    void plainStoresSurviveDeviceToDeviceMoves() throws Exception {
        UserfaultfdTest.requireUserfaultfd();
        for (long granule : new long[] {4096, 2L << 20}) {
            try (UnifiedMemory mem = UserfaultfdTest.uffdMemory(granule,
                    EmulatedDevice.builder().name("d0").capacity(4L << 20).build(),
                    EmulatedDevice.builder().name("d1").capacity(4L << 20).build())) {
                Region r = mem.allocate(8L << 20);
                long wrong = race(r, 2, 2, 1_500);
                assertEquals(0, wrong, "granule " + granule + ": slots read back bytes their owner never stored");
                assertEquals(List.of(), mem.verify());
            }
        }
    }

    /** Writers store and read back their own slots; movers prefetch; returns the wrong read-backs. */
    private static long race(Region r, int writers, int movers, long millis) throws Exception {
        MemorySegment seg = r.segment();
        int slots = (int) (r.size() / SLOT);
        byte[] shadow = new byte[(int) r.size()];
        int nodes = r.memory().nodes().size();
        AtomicBoolean stop = new AtomicBoolean();
        AtomicLong wrong = new AtomicLong();
        ConcurrentLinkedQueue<Throwable> errors = new ConcurrentLinkedQueue<>();
        List<Thread> ts = new ArrayList<>();
        for (int m = 0; m < movers; m++) {
            Random rnd = new Random(100 + m);
            ts.add(Thread.ofPlatform().start(() -> {
                try {
                    while (!stop.get()) {
                        long off = rnd.nextInt((int) (r.size() / 4096)) * 4096L;
                        long len = Math.min(r.size() - off, (1 + rnd.nextInt(64)) * 65536L);
                        r.advise(off, len, Advice.prefetch(rnd.nextInt(nodes)));
                    }
                } catch (Throwable t) {
                    errors.add(t);
                }
            }));
        }
        for (int w = 0; w < writers; w++) {
            final int id = w;
            Random rnd = new Random(id);
            ts.add(Thread.ofPlatform().start(() -> {
                byte[] buf = new byte[SLOT];
                byte[] got = new byte[SLOT];
                while (!stop.get()) {
                    int slot = rnd.nextInt(slots / writers) * writers + id;
                    int base = slot * SLOT;
                    if (rnd.nextBoolean()) {
                        int len = 1 + rnd.nextInt(SLOT);
                        int at = rnd.nextInt(SLOT - len + 1);
                        rnd.nextBytes(buf);
                        MemorySegment.copy(buf, 0, seg, ValueLayout.JAVA_BYTE, base + at, len);
                        System.arraycopy(buf, 0, shadow, base + at, len);
                    } else {
                        MemorySegment.copy(seg, ValueLayout.JAVA_BYTE, base, got, 0, SLOT);
                        if (!Arrays.equals(got, 0, SLOT, shadow, base, base + SLOT)) {
                            wrong.incrementAndGet();
                            System.arraycopy(got, 0, shadow, base, SLOT);
                        }
                    }
                }
            }));
        }
        Thread.sleep(millis);
        stop.set(true);
        for (Thread t : ts) {
            t.join();
        }
        if (!errors.isEmpty()) {
            throw new AssertionError("a prefetch failed", errors.peek());
        }
        byte[] all = new byte[shadow.length];
        MemorySegment.copy(seg, ValueLayout.JAVA_BYTE, 0, all, 0, all.length);
        return wrong.get() + (Arrays.equals(all, shadow) ? 0 : 1);
    }

    /**
     * userfaultfd: a kernel writes its slot on a device while other threads' plain loads fault on
     * neighbouring pages of the same granule. Before pins were checked against steals, a page the
     * fault service took home between planning and pinning lost the kernel's stores.
     */
    @Test
    void kernelStoresSurviveNeighbourFaults() throws Exception {
        UserfaultfdTest.requireUserfaultfd();
        try (UnifiedMemory mem = UserfaultfdTest.uffdMemory(2L << 20,
                EmulatedDevice.builder().name("d0").capacity(8L << 20).computeThreads(1).build(),
                EmulatedDevice.builder().name("d1").capacity(8L << 20).computeThreads(1).build())) {
            Region r = mem.allocate(8L << 20);
            MemorySegment seg = r.segment();
            int slots = (int) (r.size() / SLOT);
            byte[] shadow = new byte[(int) r.size()];
            AtomicBoolean stop = new AtomicBoolean();
            AtomicLong wrong = new AtomicLong();
            ConcurrentLinkedQueue<Throwable> errors = new ConcurrentLinkedQueue<>();
            List<Thread> ts = new ArrayList<>();
            int workers = 3;
            for (int w = 0; w < workers; w++) {
                final int id = w;
                Random rnd = new Random(7 + id);
                ts.add(Thread.ofPlatform().start(() -> {
                    byte[] buf = new byte[SLOT];
                    byte[] got = new byte[SLOT];
                    try {
                        while (!stop.get()) {
                            int slot = rnd.nextInt(slots / workers) * workers + id;
                            int base = slot * SLOT;
                            if (rnd.nextInt(3) == 0) {
                                rnd.nextBytes(buf);
                                MemorySegment src = MemorySegment.ofArray(buf.clone());
                                mem.launch(1 + rnd.nextInt(2), (EmulatedKernel) (a, i) ->
                                                a.arg(0).copyFrom(src, i * 4096, i * 4096, 4096), SLOT / 4096,
                                        KernelArg.of(r, base, SLOT, Access.WRITE));
                                System.arraycopy(buf, 0, shadow, base, SLOT);
                            } else {
                                MemorySegment.copy(seg, ValueLayout.JAVA_BYTE, base, got, 0, SLOT);
                                if (!Arrays.equals(got, 0, SLOT, shadow, base, base + SLOT)) {
                                    wrong.incrementAndGet();
                                    System.arraycopy(got, 0, shadow, base, SLOT);
                                }
                            }
                        }
                    } catch (Throwable t) {
                        errors.add(t);
                    }
                }));
            }
            Thread.sleep(2_000);
            stop.set(true);
            for (Thread t : ts) {
                t.join();
            }
            if (!errors.isEmpty()) {
                throw new AssertionError("a worker failed", errors.peek());
            }
            assertEquals(0, wrong.get(), "slots read back bytes other than their kernel's stores");
            assertEquals(List.of(), mem.verify());
        }
    }

    /**
     * Thrashing control maps held-home pages in place on devices; with copy and allocation
     * failures injected, undo put a run's remote entries back with its first page's write access.
     * Kernels then failed on pages they had been given, and verify() found read-only entries. The
     * workload of the outside reproduction: three granularities, read-mostly and preferred ranges,
     * more data than the two devices hold.
     */
    @Test
    void undoRestoresEachRemoteEntrysAccess() throws Exception {
        EmulatedDevice d1 = EmulatedDevice.builder().name("d1").capacity(24L << 20).build();
        EmulatedDevice d2 = EmulatedDevice.builder().name("d2").capacity(16L << 20).build();
        try (UnifiedMemory mem = UnifiedMemory.builder().copyThreads(2).device(d1).device(d2).build()) {
            List<Region> rs = List.of(mem.allocate(24L << 20, 2L << 20), mem.allocate(16L << 20, 64L << 10),
                    mem.allocate(16L << 20, 4096));
            rs.get(0).advise(0, 8L << 20, Advice.readMostly(true));
            rs.get(1).advise(0, 4L << 20, Advice.preferredLocation(1));
            AtomicBoolean stop = new AtomicBoolean();
            ConcurrentLinkedQueue<Throwable> errors = new ConcurrentLinkedQueue<>();
            List<Thread> ts = new ArrayList<>();
            int workers = 4;
            for (int w = 0; w < workers; w++) {
                final int id = w;
                Random rnd = new Random(31 + id);
                ts.add(Thread.ofPlatform().start(() -> {
                    while (!stop.get()) {
                        Region r = rs.get(rnd.nextInt(rs.size()));
                        int slots = (int) (r.size() / SLOT);
                        long base = (long) (rnd.nextInt(slots / workers) * workers + id) * SLOT;
                        try {
                            switch (rnd.nextInt(8)) {
                                case 0, 1 -> mem.launch(1 + rnd.nextInt(2), (EmulatedKernel) (a, i) ->
                                        a.arg(0).putLong(i * 4096, i), SLOT / 4096,
                                        KernelArg.of(r, base, SLOT, rnd.nextBoolean() ? Access.WRITE : Access.READ_WRITE));
                                case 2, 3 -> mem.launch(1 + rnd.nextInt(2), (EmulatedKernel) (a, i) ->
                                        a.arg(0).getLong(i * 4096), SLOT / 4096, KernelArg.of(r, base, SLOT, Access.READ));
                                case 4 -> {
                                    try (HostView v = r.host(base, SLOT, Access.WRITE)) {
                                        v.segment().set(ValueLayout.JAVA_LONG, 0, base);
                                    }
                                }
                                case 5 -> {
                                    long len = (1 + rnd.nextInt(64)) * 65536L;
                                    long off = rnd.nextInt((int) ((r.size() - len) / 4096) + 1) * 4096L;
                                    r.advise(off, len, Advice.prefetch(rnd.nextInt(3)));
                                }
                                case 6 -> r.advise(rnd.nextInt((int) (r.size() >> 21)) * (2L << 20), 2L << 20,
                                        Advice.readMostly(rnd.nextBoolean()));
                                default -> mem.prefetchAsync(r, base, SLOT, rnd.nextInt(3)).join();
                            }
                        } catch (Throwable t) {
                            Throwable c = t instanceof java.util.concurrent.CompletionException ? t.getCause() : t;
                            if (!(c instanceof dev.hetmem.driver.DeviceMemoryException || c instanceof dev.hetmem.driver.DeviceCopyException)
                                    || !String.valueOf(c.getMessage()).contains("injected")) {
                                errors.add(c);
                            }
                        }
                    }
                }));
            }
            Random rnd = new Random(5);
            long end = System.nanoTime() + 6_000_000_000L;
            while (System.nanoTime() < end && errors.isEmpty()) {
                EmulatedDevice d = rnd.nextBoolean() ? d1 : d2;
                if (rnd.nextBoolean()) {
                    d.failAllocation(rnd.nextInt(20));
                } else {
                    d.failCopy(rnd.nextInt(60));
                }
                Thread.sleep(5 + rnd.nextInt(40));
            }
            stop.set(true);
            for (Thread t : ts) {
                t.join();
            }
            d1.failAllocation(-1);
            d1.failCopy(-1);
            d2.failAllocation(-1);
            d2.failCopy(-1);
            if (!errors.isEmpty()) {
                throw new AssertionError(errors.size() + " operations failed other than by injection", errors.peek());
            }
            assertEquals(List.of(), mem.verify());
        }
    }

    /**
     * A driver whose copy throws a checked exception it does not declare (another JVM language, a
     * sneaky throw) fails the migration, undone, with every byte where it was: split over copy
     * threads, the failure was dropped and the batch committed pages never copied; on one thread it
     * skipped the undo. From a review of the copy path.
     */
    @Test
    void aCopyFailingWithAnUndeclaredCheckedExceptionIsAFailedCopy() {
        for (int threads : new int[] {1, 2}) {
            AtomicBoolean fail = new AtomicBoolean();
            WrappedDevice dev = new WrappedDevice("sneaky", 16L << 20) {
                @Override
                public void copy(dev.hetmem.driver.CopyBatch b, int from, int to) {
                    if (fail.get()) {
                        NothingLostTest.<RuntimeException>sneakyThrow(new java.io.IOException("a checked failure (a test's driver)"));
                    }
                    super.copy(b, from, to);
                }
            };
            try (UnifiedMemory mem = UnifiedMemory.builder().device(dev).copyThreads(threads).build()) {
                long bytes = 4L << 20;
                Region r = mem.allocate(bytes);
                MemoryFixture.fill(r, 0, bytes, 11);
                fail.set(true);
                RuntimeException e = org.junit.jupiter.api.Assertions.assertThrows(RuntimeException.class,
                        () -> mem.prefetch(r, new long[] {0}, bytes, 1));
                org.junit.jupiter.api.Assertions.assertTrue(String.valueOf(e.getMessage()).contains("a checked failure"),
                        threads + " copy threads: " + e);
                fail.set(false);
                assertEquals(0, r.snapshot(0, bytes).countOn(1), threads + " copy threads: nothing moved");
                MemoryFixture.check(r, 0, bytes, 11);
                assertEquals(List.of(), mem.verify());
            }
        }
    }

    /**
     * A driver's mapping calls (prepareFrames, map, unmap, protect, invalidate) that throw a checked
     * exception the interface does not declare (another JVM language, a sneaky throw) end the
     * operation as an unchecked failure of the same call does: the same sequence of operations,
     * failing at the same call, once with an unchecked exception and once with a checked one, ends
     * with an unchecked exception that carries the checked one, and leaves the same count of
     * problems for {@code verify()} and the same count of wrong bytes (none, where the contract lets
     * the call fail: prepareFrames). The engine's failure paths (an undo's later steps, a commit's
     * cleanup, eviction's invalidation flush) caught unchecked failures only: a checked one skipped
     * them and reached the caller, whose signature admits none. From the driver-contract gaps the
     * session notes listed.
     */
    @Test
    void aMappingCallFailingWithAnUndeclaredCheckedExceptionIsHandledAsAnUncheckedOne() {
        int failed = 0;
        for (int after = 0; after < 24; after++) {
            SequenceOutcome unchecked = failingSequence(false, after);
            SequenceOutcome checked = failingSequence(true, after);
            String at = "failing at driver call " + after + " (" + unchecked.call + ")";
            assertEquals(unchecked.call, checked.call, at + ": the same call failed");
            assertEquals(unchecked.failure == null, checked.failure == null, at + ": " + checked.failure);
            if (checked.failure != null) {
                failed++;
                org.junit.jupiter.api.Assertions.assertTrue(checked.failure instanceof RuntimeException, at + ": " + checked.failure);
                org.junit.jupiter.api.Assertions.assertTrue(causedBy(checked.failure, java.io.IOException.class),
                        at + ": the checked failure is the cause: " + checked.failure);
            }
            assertEquals(unchecked.problems, checked.problems, at + ": verify() problems");
            assertEquals(unchecked.wrongLongs, checked.wrongLongs, at + ": words that read wrong");
            if (unchecked.call.equals("prepareFrames")) {
                assertEquals(0, checked.problems, at);
                assertEquals(0, checked.wrongLongs, at);
            }
        }
        org.junit.jupiter.api.Assertions.assertTrue(failed >= 10, failed + " of 24 sequences failed (the sequence makes some 14 calls)");
    }

    /** How one run of {@link #failingSequence} ended. */
    private record SequenceOutcome(String call, Throwable failure, int problems, long wrongLongs) {}

    /**
     * Moves a 4 MiB region to a device and back, duplicated and released, on a driver whose
     * {@code after}-th mapping call fails ({@code checked}: with an undeclared IOException); then,
     * failures disarmed, what verify() finds and how many words read wrong.
     */
    private static SequenceOutcome failingSequence(boolean checked, int after) {
        dev.hetmem.driver.FaultCountdown countdown = new dev.hetmem.driver.FaultCountdown();
        String[] failedCall = {"none"};
        WrappedDevice dev = new WrappedDevice("sneaky-maps", 16L << 20) {
            private void maybeFail(String call) {
                if (countdown.fire()) {
                    failedCall[0] = call;
                    if (checked) {
                        NothingLostTest.<RuntimeException>sneakyThrow(new java.io.IOException("a checked failure of " + call));
                    }
                    throw new IllegalStateException("an unchecked failure of " + call);
                }
            }

            @Override
            public void prepareFrames(int first, int count) {
                maybeFail("prepareFrames");
                inner.prepareFrames(first, count);
            }

            @Override
            public void map(long va, int frame, int pages, boolean w) {
                maybeFail("map");
                super.map(va, frame, pages, w);
            }

            @Override
            public void unmap(long va, long pages) {
                maybeFail("unmap");
                super.unmap(va, pages);
            }

            @Override
            public void protect(long va, long pages, boolean w) {
                maybeFail("protect");
                super.protect(va, pages, w);
            }

            @Override
            public void invalidate(dev.hetmem.driver.VaRanges ranges) {
                maybeFail("invalidate");
                super.invalidate(ranges);
            }
        };
        try (UnifiedMemory mem = UnifiedMemory.builder().device(dev).copyThreads(1).build()) {
            long bytes = 4L << 20;
            Region r = mem.allocate(bytes);
            MemoryFixture.fill(r, 0, bytes, 21);
            Throwable failure = null;
            countdown.arm(after);
            try {
                mem.prefetch(r, new long[] {0}, bytes, 1);
                mem.prefetch(r, new long[] {0}, bytes / 2, 0);
                r.advise(0, bytes, Advice.readMostly(true));
                mem.prefetch(r, new long[] {0}, bytes, 1);
                try (HostView v = r.host(0, bytes, Access.READ)) {
                    v.segment().get(ValueLayout.JAVA_LONG, 0);
                }
                r.advise(0, bytes, Advice.readMostly(false));
                mem.release(1);
            } catch (Throwable t) {
                failure = t;
            }
            countdown.arm(-1);
            int problems = mem.verify().size();
            long wrong = 0;
            try (HostView v = r.host(0, bytes, Access.READ)) {
                for (long i = 0; i < bytes / 8; i++) {
                    wrong += v.segment().getAtIndex(ValueLayout.JAVA_LONG, i) == MemoryFixture.value(21, i) ? 0 : 1;
                }
            } catch (RuntimeException e) {
                wrong = -1;   // the read itself failed: compared as such
            }
            return new SequenceOutcome(failedCall[0], failure, problems, wrong);
        }
    }

    /**
     * A kernel whose item throws a checked exception it does not declare (a sneaky throw) on the
     * launching thread ends the launch only once the items other compute threads had begun have
     * ended: the emulated device waited for its helper threads after unchecked failures only, so
     * the launch returned, and unpinned its arguments, while items still ran on them. From a review
     * of the driver boundary.
     */
    @Test
    @Tag("emulated")
    void aKernelsUndeclaredCheckedExceptionEndsTheLaunchOnlyOnceEveryBegunItemHasEnded() {
        try (UnifiedMemory mem = fourComputeThreads("sneaky-kernel")) {
            Region r = mem.allocate(1L << 20);
            Thread launcher = Thread.currentThread();
            AtomicLong begun = new AtomicLong();
            AtomicLong ended = new AtomicLong();
            EmulatedKernel k = (a, i) -> {
                if (Thread.currentThread() == launcher) {
                    spinUntil(() -> begun.get() > 0);   // a helper's item is under way before this one fails
                    NothingLostTest.<RuntimeException>sneakyThrow(new java.io.IOException("a checked failure (a test's kernel)"));
                }
                begun.incrementAndGet();
                java.util.concurrent.locks.LockSupport.parkNanos(50_000_000L);
                ended.incrementAndGet();
            };
            RuntimeException e = org.junit.jupiter.api.Assertions.assertThrows(RuntimeException.class,
                    () -> mem.launch(1, k, 256, KernelArg.readWrite(r)));
            long atReturn = ended.get();
            org.junit.jupiter.api.Assertions.assertTrue(begun.get() > 0, "a helper's item ran");
            assertEquals(begun.get(), atReturn, "items that had begun when the launch returned had ended");
            org.junit.jupiter.api.Assertions.assertTrue(atReturn < 128, atReturn + " of the 255 other items ran: "
                    + "the failure stops the handing out of items (it ran every one, 50 ms each, after the launch had failed)");
            org.junit.jupiter.api.Assertions.assertTrue(causedBy(e, java.io.IOException.class),
                    "the kernel's exception is the cause: " + e);
            assertEquals(List.of(), mem.verify());
        }
    }

    /**
     * An {@code Error} a kernel item throws reaches the caller as it is, whichever compute thread ran
     * the item: from a helper thread it came wrapped in an IllegalStateException, from the launching
     * thread unwrapped. From a review of tiled launches.
     */
    @Test
    @Tag("emulated")
    void aKernelItemsErrorReachesTheCallerUnwrappedFromAnyComputeThread() {
        try (UnifiedMemory mem = fourComputeThreads("erring-kernel")) {
            Region r = mem.allocate(1L << 20);
            Thread launcher = Thread.currentThread();
            AtomicBoolean helperFailed = new AtomicBoolean();
            EmulatedKernel k = (a, i) -> {
                if (Thread.currentThread() != launcher) {
                    helperFailed.set(true);
                    throw new AssertionError("an item's error (a test's kernel)");
                }
                spinUntil(helperFailed::get);   // until a helper thread's item has failed, however late it starts
            };
            AssertionError e = org.junit.jupiter.api.Assertions.assertThrows(AssertionError.class,
                    () -> mem.launch(1, k, 256, KernelArg.readWrite(r)));
            assertEquals("an item's error (a test's kernel)", e.getMessage());
            assertEquals(List.of(), mem.verify());
        }
    }

    /**
     * A device's copy engine lives through a stray interrupt of its thread (code that interrupts
     * every thread): the engine ended on it, and every later copy through it waited for good.
     * From a review of the copy path.
     */
    @Test
    @Tag("emulated")
    void aCopyEngineLivesThroughAStrayInterrupt() throws Exception {
        EmulatedDevice dev = EmulatedDevice.builder().name("interrupted").capacity(16L << 20).build();
        try (UnifiedMemory mem = UnifiedMemory.builder().device(dev).copyPath(CopyPath.ENGINE).build()) {
            long bytes = 4L << 20;
            Region r = mem.allocate(bytes);
            MemoryFixture.fill(r, 0, bytes, 12);
            for (Thread t : Thread.getAllStackTraces().keySet()) {
                if (t.getName().equals("interrupted-copy-engine")) {
                    t.interrupt();
                }
            }
            Thread.sleep(50);
            java.util.concurrent.CompletableFuture<Long> moved = mem.prefetchAsync(r, 0, bytes, 1);
            assertEquals(bytes / 4096, moved.get(20, java.util.concurrent.TimeUnit.SECONDS), "the copy went through the engine");
            MemoryFixture.check(r, 0, bytes, 12);
        }
    }

    /** A memory over an emulated device of 16 MiB whose launches run on four compute threads. */
    private static UnifiedMemory fourComputeThreads(String name) {
        return UnifiedMemory.builder().device(EmulatedDevice.builder().name(name).capacity(16L << 20).computeThreads(4).build())
                .build();
    }

    /** Spins until {@code done} says so, for at most 30 s (a helper thread may start late on a loaded machine). */
    private static void spinUntil(java.util.function.BooleanSupplier done) {
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (!done.getAsBoolean() && System.nanoTime() < deadline) {
            Thread.onSpinWait();
        }
    }

    /** Whether {@code t} or one of its causes is a {@code type}. */
    private static boolean causedBy(Throwable t, Class<? extends Throwable> type) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (type.isInstance(c)) {
                return true;
            }
        }
        return false;
    }

    @SuppressWarnings("unchecked")
    private static <T extends Throwable> void sneakyThrow(Throwable t) throws T {
        throw (T) t;
    }
}
