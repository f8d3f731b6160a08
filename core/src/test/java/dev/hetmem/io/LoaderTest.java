package dev.hetmem.io;

import dev.hetmem.Access;
import dev.hetmem.HostView;
import dev.hetmem.PageSnapshot;
import dev.hetmem.Region;
import dev.hetmem.UnifiedMemory;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Files into regions, byte for byte, on the host and on the device. */
class LoaderTest {
    static final long MiB = 1L << 20;
    /** On the build's own disk (ext4 here), not /tmp, which may be tmpfs without O_DIRECT. */
    static final Path DIR = Path.of("target", "loader-test-files").toAbsolutePath();

    static UnifiedMemory mem;

    @BeforeAll
    static void setUp() throws IOException {
        Files.createDirectories(DIR);
        mem = UnifiedMemory.builder().device(dev.hetmem.TestDevice.create(256 * MiB).driver()).copyThreads(2).build();
    }

    @AfterAll
    static void tearDown() {
        mem.close();
    }

    /** A file of {@code size} pseudo-random bytes. */
    static Path file(String name, long size, long seed) throws IOException {
        Path p = DIR.resolve(name);
        SplittableRandom rnd = new SplittableRandom(seed);
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            ByteBuffer b = ByteBuffer.allocate(1 << 20);
            long left = size;
            while (left > 0) {
                b.clear();
                int n = (int) Math.min(b.capacity(), left);
                for (int i = 0; i < n; i++) {
                    b.put((byte) rnd.nextInt());
                }
                b.flip();
                while (b.hasRemaining()) {
                    ch.write(b);
                }
                left -= n;
            }
        }
        return p;
    }

    /** The id of the newest live region of {@code mem}, or 0. */
    static long newestRegion() {
        return mem.regions().stream().mapToLong(Region::id).max().orElse(0);
    }

    /** The region allocated after region {@code newest}: the one a load in progress fills. */
    static Region regionAfter(long newest) {
        return mem.regions().stream().filter(x -> x.id() > newest).findFirst().orElseThrow();
    }

    static void sameBytes(Path p, Region r) throws IOException {
        long size = Files.size(p);
        assertEquals(size, r.size());
        if (size == 0) {
            return;
        }
        try (FileChannel ch = FileChannel.open(p); HostView v = r.host(0, size, Access.READ)) {
            MemorySegment seg = v.segment();
            ByteBuffer b = ByteBuffer.allocate(1 << 20);
            long off = 0;
            while (off < size) {
                b.clear();
                int n = ch.read(b, off);
                for (int i = 0; i < n; i++) {
                    if (b.get(i) != seg.get(ValueLayout.JAVA_BYTE, off + i)) {
                        assertEquals(b.get(i), seg.get(ValueLayout.JAVA_BYTE, off + i), "byte " + (off + i) + " of " + size);
                    }
                }
                off += n;
            }
        }
    }

    static Stream<Long> sizes() {
        return Stream.of(0L, 1L, 4095L, 4096L, 4097L, 2 * MiB - 1, 2 * MiB + 1, 100 * MiB + 3);
    }

    @ParameterizedTest
    @MethodSource("sizes")
    void loadsToTheHostByteForByte(long size) throws IOException {
        Path p = file("host-" + size, size, size);
        LoadResult r = mem.load(p, 0);
        try {
            sameBytes(p, r.region());
            assertEquals(size, r.bytes());
            if (size > 0) {
                assertTrue(r.direct(), "O_DIRECT on the build's disk: " + r.fallbackReason());
                assertEquals(0, r.peakExtraHostBytes());
                assertEquals(r.region().snapshot(0, size).pages(), r.region().snapshot(0, size).countOn(0));
                assertTrue(r.allocationNanos() > 0 && r.allocationNanos() <= r.nanos(),
                        "pages populated ahead in " + r.allocationNanos() + " ns of the load's " + r.nanos());
            }
        } finally {
            r.region().free();
        }
    }

    @ParameterizedTest
    @MethodSource("sizes")
    void loadsToTheDeviceByteForByteWithinTheRing(long size) throws IOException {
        Path p = file("dev-" + size, size, size + 7);
        LoadOptions o = LoadOptions.defaults().withRingBytes(8 * MiB).withChunkBytes(MiB);
        LoadResult r = mem.load(p, 1, o);
        try {
            if (size > 0) {
                PageSnapshot s = r.region().snapshot(0, size);
                assertEquals(s.pages(), s.countOn(1), "every page on the device, none on the host");
                assertEquals(0, s.countOn(0));
                assertTrue(r.peakExtraHostBytes() <= 8 * MiB, "ring of " + r.peakExtraHostBytes());
                assertTrue(r.direct());
            }
            assertTrue(mem.verify().isEmpty(), () -> String.join("\n", mem.verify()));
            sameBytes(p, r.region());   // faults the pages home
        } finally {
            r.region().free();
        }
    }

    @Test
    void morePopulatorsThanChunksAndStripesOfUnevenLength() throws IOException {
        Path p = file("stripes", 7 * MiB + 11, 33);
        for (int threads : new int[] {1, 2, 3, 16}) {
            LoadResult r = mem.load(p, 0, LoadOptions.defaults().withChunkBytes(MiB).withThreads(threads));
            try {
                sameBytes(p, r.region());
                assertTrue(r.allocationNanos() > 0, threads + " threads: every chunk populated");
            } finally {
                r.region().free();
            }
        }
    }

    @Test
    void aRingOfOneChunkStaysOneChunk() throws IOException {
        Path p = file("one-chunk-ring", 10 * MiB + 5, 21);
        LoadResult r = mem.load(p, 1, LoadOptions.defaults().withChunkBytes(MiB).withRingBytes(MiB).withThreads(4));
        try {
            assertEquals(MiB, r.peakExtraHostBytes(), "four readers share the one buffer the ring allows");
            sameBytes(p, r.region());
        } finally {
            r.region().free();
        }
    }

    @Test
    void aFileLargerThanTheDeviceLoadsWithEviction() throws IOException {
        Path p = file("bigger-than-device", 40 * MiB + 9, 11);
        try (UnifiedMemory small = UnifiedMemory.builder()
                .device(dev.hetmem.TestDevice.create(16 * MiB).driver()).copyThreads(2).build()) {
            LoadResult r = small.load(p, 1);
            assertTrue(small.stats().node(1).evictions() > 0, "the device made room as the file streamed in");
            assertTrue(r.region().stats().node(1).residentBytes() <= 16 * MiB);
            sameBytes(p, r.region());
            assertTrue(small.verify().isEmpty(), () -> String.join("\n", small.verify()));
        }
    }

    /** Loads {@code p} in every scheme to the host and to the device, each compared with the file. */
    static void loadsTheSameBytesInEveryScheme(Path p) throws IOException {
        for (LoadScheme s : LoadScheme.values()) {
            for (int node : new int[] {0, 1}) {
                LoadResult r = mem.load(p, node, LoadOptions.defaults().withScheme(s));
                try {
                    sameBytes(p, r.region());
                } finally {
                    r.region().free();
                }
            }
        }
    }

    @Test
    void everySchemeLoadsTheSameBytes() throws IOException {
        Path p = file("schemes", 9 * MiB + 123, 99);
        loadsTheSameBytesInEveryScheme(p);
    }

    /**
     * A file whose name is not valid UTF-8 (bytes 0xff 0xfe: found by listing its folder, as a user's
     * program finds weights) loads in every scheme: the schemes that open the file themselves
     * encoded the path's text as UTF-8, which names another file ("No such file or directory"), where
     * the memory-mapped scheme, through the JDK, found it.
     */
    @Test
    void aFileWhoseNameIsNotUtf8LoadsInEveryScheme() throws Throwable {
        Path dir = Files.createDirectories(DIR.resolve("raw-names"));
        try (var old = Files.list(dir)) {
            for (Path q : old.toList()) {
                Files.delete(q);
            }
        }
        Path plain = file("raw-names/plain", 3 * MiB + 17, 5);
        // renamed to bytes the JDK cannot write in a name: through libc's rename
        java.lang.foreign.Linker linker = java.lang.foreign.Linker.nativeLinker();
        var rename = linker.downcallHandle(linker.defaultLookup().find("rename").orElseThrow(),
                java.lang.foreign.FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.ADDRESS));
        try (java.lang.foreign.Arena a = java.lang.foreign.Arena.ofConfined()) {
            byte[] to = (dir + "/w").getBytes(java.nio.charset.StandardCharsets.US_ASCII);
            MemorySegment target = a.allocate(to.length + 3L);
            MemorySegment.copy(to, 0, target, ValueLayout.JAVA_BYTE, 0, to.length);
            target.set(ValueLayout.JAVA_BYTE, to.length, (byte) 0xff);
            target.set(ValueLayout.JAVA_BYTE, to.length + 1, (byte) 0xfe);
            assertEquals(0, (int) rename.invokeExact(a.allocateFrom(plain.toString()), target));
        }
        Path odd;
        try (var listed = Files.list(dir)) {
            odd = listed.findFirst().orElseThrow();
        }
        assertTrue(Files.isRegularFile(odd), odd + " is found by the JDK");
        loadsTheSameBytesInEveryScheme(odd);
        Files.delete(odd);
    }

    @Test
    void progressReachesTheTotal() throws IOException {
        Path p = file("progress", 20 * MiB + 5, 3);
        AtomicLong last = new AtomicLong();
        LoadResult r = mem.load(p, 0, LoadOptions.defaults().withProgress((done, total) -> {
            assertEquals(20 * MiB + 5, total);
            last.accumulateAndGet(done, Math::max);
        }));
        r.region().free();
        assertEquals(20 * MiB + 5, last.get());
    }

    /**
     * Host code that writes pages of a region before the load to the device reaches them, through a
     * view held open meanwhile: the load waits for the view, then its bytes replace what the view
     * wrote, as a write of the whole page after the view's would. It failed ("a load only fills
     * fresh pages") and left the region half loaded.
     */
    /**
     * An interrupt of the loading thread while it reads (its first progress report) fails the load
     * with {@link java.io.InterruptedIOException}, the flag kept and nothing left allocated, in every
     * scheme to either node, as {@code load} promises. From a review: only the overlapped scheme to
     * a device stopped; the other seven loaded the whole file and returned with the flag set.
     */
    @Test
    void anInterruptWhileTheLoadReadsFailsItInEveryScheme() throws IOException {
        Path p = file("interrupted-read", 48 * MiB, 22);   // three of the memory-mapped scheme's 16 MiB steps
        for (int node : new int[] {0, 1}) {
            for (LoadScheme scheme : LoadScheme.values()) {
                Thread caller = Thread.currentThread();
                AtomicBoolean sent = new AtomicBoolean();
                LoadOptions o = LoadOptions.defaults().withScheme(scheme).withThreads(1).withChunkBytes(MiB)
                        .withProgress((done, total) -> {
                            if (Thread.currentThread() == caller && done < total && !sent.getAndSet(true)) {
                                caller.interrupt();
                            }
                        });
                int before = mem.regions().size();
                Throwable thrown = null;
                try {
                    mem.load(p, node, o).region().free();
                } catch (Throwable t) {
                    thrown = t;
                }
                boolean flag = Thread.interrupted();
                String what = scheme + " to node " + node;
                assertTrue(sent.get(), what + ": interrupted at its first progress report");
                assertTrue(thrown instanceof java.io.InterruptedIOException, what + ": thrown " + thrown);
                assertTrue(flag, what + ": the interrupt is kept for the caller");
                assertEquals(before, mem.regions().size(), what + ": the half-loaded region was freed");
            }
        }
        assertEquals(java.util.List.of(), mem.verify());
    }

    /**
     * A load to a device whose every frame a running kernel pins waits for room; an interrupt then
     * ends it as an interrupted read ends one: {@link java.io.InterruptedIOException}, the flag kept,
     * the half-loaded region freed (it threw the engine's {@code IllegalStateException}).
     */
    @Test
    @org.junit.jupiter.api.Tag("emulated") // the kernel waits on a latch in the JVM, which only a Java kernel can
    void aLoadInterruptedWhileItWaitsForRoomOnTheDeviceFailsAsAnInterruptedRead() throws Exception {
        Path p = file("interrupted-wait", 4 * MiB, 21);
        try (UnifiedMemory small = UnifiedMemory.builder().device(dev.hetmem.TestDevice.create(8 * MiB).driver()).build()) {
            Region held = small.allocate(8 * MiB);
            java.util.concurrent.CountDownLatch running = new java.util.concurrent.CountDownLatch(1);
            java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
            Thread kernel = holdUntil(small, held, running, release);
            try {
                assertTrue(running.await(10, java.util.concurrent.TimeUnit.SECONDS), "the kernel holding the device runs");
                int before = small.regions().size();
                // the overlapped scheme's ring waits in the engine's fill; the buffered scheme stages the whole
                // file on the host, then its prefetch to the device waits (outside the reading threads)
                for (LoadScheme scheme : new LoadScheme[] {LoadScheme.OVERLAPPED, LoadScheme.BUFFERED}) {
                    java.util.concurrent.atomic.AtomicReference<Throwable> thrown = new java.util.concurrent.atomic.AtomicReference<>();
                    AtomicBoolean flagKept = new AtomicBoolean();
                    Thread loader = Thread.ofPlatform().start(() -> {
                        try {
                            small.load(p, 1, LoadOptions.defaults().withScheme(scheme)).region().free();
                            thrown.set(new AssertionError("the load completed on a device with no frame to spare"));
                        } catch (Throwable t) {
                            flagKept.set(Thread.currentThread().isInterrupted());
                            thrown.set(t);
                        }
                    });
                    Thread.sleep(300);
                    assertTrue(loader.isAlive(), () -> scheme + ": the load did not wait for room: " + thrown.get());
                    loader.interrupt();
                    loader.join(10_000);
                    assertTrue(!loader.isAlive(), scheme + ": the interrupted load ended");
                    assertTrue(thrown.get() instanceof java.io.InterruptedIOException, () -> scheme + ": thrown: " + thrown.get());
                    assertTrue(flagKept.get(), scheme + ": the interrupt is kept for the caller");
                    assertEquals(before, small.regions().size(), scheme + ": the half-loaded region was freed");
                }
            } finally {
                release.countDown();
                kernel.join(10_000);
            }
            assertEquals(java.util.List.of(), small.verify());
        }
    }

    /**
     * From a review: another thread's free of a region being loaded to a device gives up waiting for
     * the load after the close timeout (the load waits for room); the load's next chunk is then
     * refused and the load fails, but it left the region to that free, which had already given up:
     * the region stayed allocated, holding its frames. The failed load now frees it.
     */
    @Test
    @org.junit.jupiter.api.Tag("emulated") // the kernel waits on a latch in the JVM, which only a Java kernel can
    void aLoadWhoseRegionsFreeGaveUpWaitingForItFreesTheRegionWhenItFails() throws Exception {
        Path p = file("free-gave-up", 4 * MiB, 23);
        try (UnifiedMemory small = UnifiedMemory.builder().device(dev.hetmem.TestDevice.create(8 * MiB).driver())
                .closeTimeout(java.time.Duration.ofMillis(200)).build()) {
            Region held = small.allocate(8 * MiB);
            java.util.concurrent.CountDownLatch running = new java.util.concurrent.CountDownLatch(1);
            java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
            Thread kernel = holdUntil(small, held, running, release);
            java.util.concurrent.atomic.AtomicReference<Throwable> thrown = new java.util.concurrent.atomic.AtomicReference<>();
            Thread loader = null;
            try {
                assertTrue(running.await(10, java.util.concurrent.TimeUnit.SECONDS), "the kernel holding the device runs");
                loader = Thread.ofPlatform().start(() -> {
                    try {
                        small.load(p, 1, LoadOptions.defaults().withChunkBytes(MiB)).region().free();
                        thrown.set(new AssertionError("the load completed"));
                    } catch (Throwable t) {
                        thrown.set(t);
                    }
                });
                Region loading = null;
                for (int i = 0; i < 1000 && loading == null; i++) {
                    Thread.sleep(10);
                    loading = small.regions().stream().filter(r -> r != held).findFirst().orElse(null);
                }
                assertTrue(loading != null, "the load allocated its region");
                Thread.sleep(100);   // the load waits for room
                Region r = loading;
                IllegalStateException gaveUp = assertThrows(IllegalStateException.class, r::free);
                assertTrue(!r.isFreed(), "the free gave up: " + gaveUp.getMessage());
            } finally {
                release.countDown();
                kernel.join(10_000);
                if (loader != null) {
                    loader.join(10_000);
                }
            }
            assertTrue(thrown.get() != null && !(thrown.get() instanceof AssertionError), () -> "the load failed: " + thrown.get());
            assertEquals(java.util.List.of(held), small.regions(), "the loading region was freed");
            assertEquals(java.util.List.of(), small.verify());
        }
    }

    /** A thread running a kernel that pins all of {@code held} on device 1 from {@code running} until {@code release}. */
    private static Thread holdUntil(UnifiedMemory m, Region held, java.util.concurrent.CountDownLatch running,
                                    java.util.concurrent.CountDownLatch release) {
        return Thread.ofPlatform().start(() -> m.launch(1, (dev.hetmem.device.emulated.EmulatedKernel) (args, i) -> {
            running.countDown();
            try {
                release.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, 1, dev.hetmem.KernelArg.of(held, 0, held.size(), Access.READ)));
    }

    @Test
    void pagesWrittenBeforeTheLoadReachesThemTakeTheLoadedBytes() throws Exception {
        Path p = file("written-first", 8 * MiB + 4096, 13);
        Thread loading = Thread.currentThread();
        int before = mem.regions().size();
        java.util.concurrent.CountDownLatch open = new java.util.concurrent.CountDownLatch(1);
        java.util.concurrent.atomic.AtomicReference<Thread> writer = new java.util.concurrent.atomic.AtomicReference<>();
        LoadOptions o = LoadOptions.defaults().withThreads(1).withChunkBytes(MiB).withProgress((done, total) -> {
            if (Thread.currentThread() != loading || writer.get() != null) {
                return;
            }
            java.util.List<Region> live = mem.regions();
            Region r = live.get(live.size() - 1);   // the one being loaded
            assertEquals(before + 1, live.size());
            writer.set(Thread.ofPlatform().start(() -> {
                // the last two pages, which the load reaches last, written and held under a view for a while
                try (HostView v = r.host(r.size() - 8192, 8192, Access.WRITE)) {
                    v.segment().fill((byte) 0x5A);
                    open.countDown();
                    Thread.sleep(300);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }));
            try {
                assertTrue(open.await(20, java.util.concurrent.TimeUnit.SECONDS), "the view was opened");
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        LoadResult r = mem.load(p, 1, o);
        try {
            writer.get().join();
            sameBytes(p, r.region());
            assertEquals(java.util.List.of(), mem.verify());
        } finally {
            r.region().free();
        }
    }

    /**
     * A progress callback that frees the region being loaded, on the loading thread: refused at once
     * (the load is an operation on its region) with nothing closed, and the load completes with the
     * file's bytes, to the host and to a device. Such a free used to close the load's own write view
     * and unmap the region while the load's other reader and populating threads still wrote into it
     * by address (a crash in userfaultfd mode; elsewhere a failed load, or reads landing in whatever
     * was mapped there next).
     */
    @Test
    void aFreeFromTheLoadsOwnProgressCallbackIsRefusedAndTheLoadCompletes() throws IOException {
        Path p = file("self-free", 16 * MiB + 7, 9);
        Thread loading = Thread.currentThread();
        int before = mem.regions().size();
        java.util.concurrent.atomic.AtomicReference<Throwable> answer = new java.util.concurrent.atomic.AtomicReference<>();
        LoadOptions o = LoadOptions.defaults().withThreads(1).withChunkBytes(MiB).withProgress((done, total) -> {
            if (Thread.currentThread() == loading && answer.get() == null) {
                java.util.List<Region> live = mem.regions();
                Region beingLoaded = live.get(live.size() - 1);   // the newest
                try {
                    beingLoaded.free();
                    answer.set(new AssertionError("the free went through"));
                } catch (IllegalStateException e) {
                    answer.set(e);
                }
            }
        });
        for (int node : new int[] {0, 1}) {
            answer.set(null);
            LoadResult r = mem.load(p, node, o);
            try {
                assertTrue(answer.get() instanceof IllegalStateException, "node " + node + ": " + answer.get());
                assertTrue(answer.get().getMessage().contains("would wait for itself"), answer.get().getMessage());
                assertTrue(!r.region().isFreed());
                sameBytes(p, r.region());
            } finally {
                r.region().free();
            }
        }
        assertEquals(before, mem.regions().size());
    }

    /**
     * A progress callback that closes the memory from one of the load's reader threads: refused at
     * once, and the load completes. That close used to wait for the load, whose loading thread
     * waited for that reader to end, until closeTimeout; then the load failed and the memory was
     * left closed.
     */
    @Test
    void aCloseFromAReaderThreadsProgressCallbackIsRefusedAndTheLoadCompletes() throws IOException {
        Path p = file("reader-close", 16 * MiB + 7, 10);
        Thread loading = Thread.currentThread();
        java.util.concurrent.atomic.AtomicReference<Throwable> answer = new java.util.concurrent.atomic.AtomicReference<>();
        try (UnifiedMemory own = UnifiedMemory.builder().closeTimeout(java.time.Duration.ofSeconds(5)).build()) {
            LoadOptions o = LoadOptions.defaults().withThreads(2).withChunkBytes(MiB).withProgress((done, total) -> {
                if (Thread.currentThread() != loading) {
                    if (answer.get() == null) {
                        try {
                            own.close();
                            answer.set(new AssertionError("the close went through"));
                        } catch (IllegalStateException e) {
                            answer.set(e);
                        }
                    }
                    return;
                }
                // the loading thread waits (at most 10 s) for the other reader's try, so that it happens
                long until = System.nanoTime() + 10_000_000_000L;
                while (answer.get() == null && System.nanoTime() < until) {
                    Thread.onSpinWait();
                }
            });
            LoadResult r = own.load(p, 0, o);
            assertTrue(answer.get() instanceof IllegalStateException, String.valueOf(answer.get()));
            assertTrue(answer.get().getMessage().contains("would wait for itself"), answer.get().getMessage());
            sameBytes(p, r.region());
            r.region().free();
        }
    }

    /**
     * A file system without O_DIRECT: tmpfs gained it in Linux 6.6, so a ramfs is mounted for the
     * test. That takes root: CI runs as root and must run this; elsewhere it is skipped without it.
     */
    @Test
    void aFileSystemWithoutDirectIoFallsBackToBufferedReadsAndSaysSo() throws Exception {
        Path mnt = DIR.resolve("ramfs");
        Files.createDirectories(mnt);
        boolean root = "root".equals(System.getProperty("user.name"));
        if (!"true".equals(System.getenv("CI"))) {
            org.junit.jupiter.api.Assumptions.assumeTrue(root, "mounting a ramfs needs root");
        }
        run("mount", "-t", "ramfs", "ramfs", mnt.toString());
        try {
            Path p = mnt.resolve("no-direct");
            Files.write(p, new byte[10_000]);
            for (int node : new int[] {0, 1}) {
                LoadResult r = mem.load(p, node);
                try {
                    assertTrue(!r.direct(), "ramfs has no O_DIRECT");
                    assertTrue(r.fallbackReason().contains("O_DIRECT"), r.fallbackReason());
                    sameBytes(p, r.region());
                } finally {
                    r.region().free();
                }
            }
        } finally {
            run("umount", mnt.toString());
        }
    }

    private static void run(String... command) throws Exception {
        Process pr = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(pr.getInputStream().readAllBytes());
        assertEquals(0, pr.waitFor(), String.join(" ", command) + ": " + out);
    }

    @Test
    void badPathsAreClearErrorsAndLeaveNothingAllocated() throws IOException {
        int before = mem.regions().size();
        var missing = assertThrows(NoSuchFileException.class, () -> mem.load(DIR.resolve("nope"), 0));
        assertTrue(missing.getMessage().contains("nope") && missing.getMessage().contains("no such file"), missing.getMessage());
        // the safetensors reader opens the file itself: its refusal said the path alone
        var missingModel = assertThrows(NoSuchFileException.class, () -> SafeTensors.load(mem, DIR.resolve("nope.safetensors"), 0));
        assertTrue(missingModel.getMessage().contains("nope.safetensors") && missingModel.getMessage().contains("no such file"),
                missingModel.getMessage());
        var dir = assertThrows(IOException.class, () -> mem.load(DIR, 0));
        assertTrue(dir.getMessage().contains("is a directory"), dir.getMessage());
        assertThrows(IllegalArgumentException.class, () -> mem.load(file("x", 10, 1), 9));
        // a (sparse) file larger than the machine's memory is refused up front for the host, with the numbers
        Path huge = DIR.resolve("larger-than-memory");
        long physical = mem.node(0).capacityBytes();   // MemTotal, as /proc/meminfo says
        assertTrue(physical > 0, "the host node knows the machine's memory");
        try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(huge.toFile(), "rw")) {
            f.setLength(physical + 4096);
        }
        try {
            var big = assertThrows(IOException.class, () -> mem.load(huge, 0));
            assertTrue(big.getMessage().contains(String.valueOf(physical)), big.getMessage());
        } finally {
            Files.deleteIfExists(huge);
        }
        // to a device, streamed: refused where the device and the host together cannot hold it (what the
        // device cannot keep is evicted to the host; such a load was accepted, and filled the host's
        // MAP_NORESERVE mappings past the machine's memory)
        long device = mem.node(1).capacityBytes();
        try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(huge.toFile(), "rw")) {
            f.setLength(physical + device + 4096);
        }
        try {
            var big = assertThrows(IOException.class, () -> mem.load(huge, 1));
            assertTrue(big.getMessage().contains(String.valueOf(physical)) && big.getMessage().contains(String.valueOf(device)),
                    big.getMessage());
        } finally {
            Files.deleteIfExists(huge);
        }
        for (String special : new String[] {"/dev/zero", "/dev/null", "/proc/self/status"}) {
            var e = assertThrows(IOException.class, () -> mem.load(Path.of(special), 0));
            assertTrue(e.getMessage().contains("not a regular file"), e.getMessage());
        }
        assertEquals(before, mem.regions().size());
    }

    @Test
    void aFifoIsRefusedWithoutBlocking() throws Exception {
        Path fifo = DIR.resolve("fifo-" + System.nanoTime());
        run("mkfifo", fifo.toString());
        try {
            // before the check, opening the FIFO for reading blocked for ever (no writer)
            var e = assertThrows(IOException.class, () -> mem.load(fifo, 0));
            assertTrue(e.getMessage().contains("not a regular file"), e.getMessage());
        } finally {
            Files.deleteIfExists(fifo);
        }
    }

    /**
     * The loader's opens refuse a FIFO at once rather than block in the open: the loader checks the
     * path first, but a FIFO renamed over it before the open blocked that native call until a
     * writer came (no interrupt ends it), holding the region's operation and a write view of it.
     * From a review of the loader.
     */
    @Test
    void theLoadersOpensRefuseAFifoWithoutBlocking() throws Exception {
        Path fifo = DIR.resolve("fifo-open-" + System.nanoTime());
        run("mkfifo", fifo.toString());
        try {
            assertTimeoutPreemptively(java.time.Duration.ofSeconds(10), () -> {
                var e = assertThrows(IOException.class, () -> dev.hetmem.host.FileIo.open(fifo, dev.hetmem.host.FileIo.O_RDONLY));
                assertTrue(e.getMessage().contains("not a regular file"), e.getMessage());
                var c = assertThrows(IOException.class, () -> dev.hetmem.host.FileIo.openChannel(fifo));
                assertTrue(c.getMessage().contains("not a regular file"), c.getMessage());
            });
        } finally {
            Files.deleteIfExists(fifo);
        }
        Path p = file("opened", 64 * 1024, 3);   // a regular file opens as before, O_DIRECT or not
        int fd = dev.hetmem.host.FileIo.open(p, dev.hetmem.host.FileIo.O_RDONLY);
        dev.hetmem.host.FileIo.close(fd);
        try (java.nio.channels.FileChannel ch = dev.hetmem.host.FileIo.openChannel(p)) {
            assertEquals(64 * 1024, ch.size());
        }
    }

    /**
     * A load that fails inside a kernel (its progress callback throws), where the free of its region
     * is refused for a reason no wait ends (a free from inside a kernel), gives up at once: it tried
     * the free again until the close timeout, spinning a core, since the wait for other threads'
     * views returned at once. From a review of the loader. The load's own failure is reported, the
     * refused free beside it, and the region is freed once out of the kernel.
     */
    @Test
    @org.junit.jupiter.api.Tag("emulated")
    void aFailedLoadWhoseFreeIsRefusedForGoodGivesUpAtOnce() throws Exception {
        Path p = file("inside-a-kernel", 4 * MiB, 6);
        try (UnifiedMemory own = UnifiedMemory.builder().closeTimeout(java.time.Duration.ofSeconds(30))
                .device(dev.hetmem.device.emulated.EmulatedDevice.builder().name("k").capacity(16 * MiB).build()).build()) {
            dev.hetmem.Region arg = own.allocate(4096);
            java.util.concurrent.atomic.AtomicReference<Throwable> seen = new java.util.concurrent.atomic.AtomicReference<>();
            long[] nanos = new long[1];
            int before = own.regions().size();
            own.launch(1, (dev.hetmem.device.emulated.EmulatedKernel) (a, i) -> {
                long t0 = System.nanoTime();
                try {
                    own.load(p, 0, LoadOptions.defaults().withProgress((done, total) -> {
                        throw new IllegalStateException("a progress callback's failure");
                    }));
                } catch (Throwable t) {
                    seen.set(t);
                }
                nanos[0] = System.nanoTime() - t0;
            }, 1, dev.hetmem.KernelArg.readWrite(arg));
            assertTrue(seen.get() != null && String.valueOf(seen.get().getMessage()).contains("a progress callback's failure"),
                    String.valueOf(seen.get()));
            // a behaviour, not a speed: 30 s of retries against none (the close timeout bounds the retries)
            assertTrue(nanos[0] < 10_000_000_000L, "the failed load took " + nanos[0] / 1_000_000 + " ms to give up");
            // its region stays until freed from outside the kernel
            for (dev.hetmem.Region r : own.regions()) {
                if (r != arg) {
                    r.free();
                }
            }
            assertEquals(before, own.regions().size());
        }
    }

    @Test
    void aFileThatShrinksDuringTheLoadFailsAndLeavesNothing() throws IOException {
        Path p = file("shrinks", 64 * MiB, 5);
        int before = mem.regions().size();
        AtomicBoolean cut = new AtomicBoolean();
        LoadOptions o = LoadOptions.defaults().withThreads(1).withChunkBytes(MiB).withProgress((done, total) -> {
            if (cut.compareAndSet(false, true)) {
                try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
                    ch.truncate(3 * MiB);
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            }
        });
        for (int node : new int[] {0, 1}) {
            cut.set(false);
            file("shrinks", 64 * MiB, 5);
            IOException e = assertThrows(IOException.class, () -> mem.load(p, node, o));
            assertTrue(e.getMessage().contains("shrank") || e.getMessage().contains("changed size"), e.getMessage());
            assertEquals(before, mem.regions().size(), "the half-loaded region was freed");
        }
        assertEquals(256 * MiB, mem.stats().node(1).freeBytes(), "no device frame leaked");
        // the memory-mapped scheme reads past the new end: the JVM's InternalError becomes an IOException
        cut.set(false);
        file("shrinks", 64 * MiB, 5);
        IOException e = assertThrows(IOException.class, () -> mem.load(p, 0, o.withScheme(LoadScheme.MMAP)));
        assertTrue(e.getMessage().contains("changed size"), e.getMessage());
        assertEquals(before, mem.regions().size(), "the half-loaded region was freed");
    }

    /**
     * Found by a review: a failed load freed its region with a plain free, which another thread's host
     * view refuses (the region is listed, and its pages readable, from the start of a load to a device);
     * the half-loaded region then stayed allocated after the failure, readable as if complete. Now the
     * failed load waits for such views (within the close timeout) and frees the region.
     */
    @Test
    void aFailedLoadFreesItsRegionOnceAnotherThreadsViewOfItCloses() throws Exception {
        Path p = file("viewed-while-failing", 16 * MiB, 22);
        int before = mem.regions().size();
        long newest = newestRegion();
        java.util.concurrent.CountDownLatch opened = new java.util.concurrent.CountDownLatch(1);
        java.util.concurrent.atomic.AtomicReference<Throwable> viewer = new java.util.concurrent.atomic.AtomicReference<>();
        AtomicBoolean first = new AtomicBoolean(true);
        LoadOptions o = LoadOptions.defaults().withThreads(1).withChunkBytes(MiB).withProgress((done, total) -> {
            if (first.compareAndSet(true, false)) {
                // another thread opens a view of the region being loaded and keeps it a while; the file then
                // shrinks, which fails the load
                Thread.ofPlatform().start(() -> {
                    try {
                        Region r = regionAfter(newest);
                        try (HostView v = r.host(0, 4096, Access.READ)) {
                            opened.countDown();
                            Thread.sleep(500);
                        }
                    } catch (Throwable t) {
                        viewer.set(t);
                        opened.countDown();
                    }
                });
                try {
                    assertTrue(opened.await(10, java.util.concurrent.TimeUnit.SECONDS));
                    try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
                        ch.truncate(3 * MiB);
                    }
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                } catch (InterruptedException e) {
                    throw new AssertionError(e);
                }
            }
        });
        IOException e = assertThrows(IOException.class, () -> mem.load(p, 1, o));
        assertTrue(e.getMessage().contains("shrank") || e.getMessage().contains("changed size"), e.getMessage());
        assertEquals(null, viewer.get(), "the other thread's view of the loading region");
        assertEquals(before, mem.regions().size(), "the half-loaded region was freed once the view closed");
        assertEquals(java.util.List.of(), mem.verify());
    }

    /**
     * A progress callback that opens a view of the region being loaded and leaves it open: the failed
     * load closes it, as a free closes its caller's own views, and frees the region (the wait for
     * other threads' views refused to wait for this thread's own, and the region stayed allocated).
     */
    @Test
    void aFailedLoadClosesTheViewItsOwnProgressCallbackLeftOpenAndFreesTheRegion() throws IOException {
        Path p = file("own-view-while-failing", 16 * MiB, 24);
        int before = mem.regions().size();
        long newest = newestRegion();
        java.util.concurrent.atomic.AtomicReference<HostView> left = new java.util.concurrent.atomic.AtomicReference<>();
        LoadOptions o = LoadOptions.defaults().withThreads(1).withChunkBytes(MiB).withProgress((done, total) -> {
            if (left.get() == null) {
                Region r = regionAfter(newest);
                left.set(r.host(0, 4096, Access.READ));   // never closed by the callback
                try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
                    ch.truncate(3 * MiB);
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            }
        });
        IOException e = assertThrows(IOException.class, () -> mem.load(p, 1, o));
        assertTrue(e.getMessage().contains("shrank") || e.getMessage().contains("changed size"), e.getMessage());
        assertEquals(java.util.List.of(), java.util.Arrays.asList(e.getSuppressed()), "the region was freed without trouble");
        assertEquals(before, mem.regions().size(), "the half-loaded region was freed");
        assertThrows(IllegalStateException.class, () -> left.get().segment().get(ValueLayout.JAVA_BYTE, 0),
                "the callback's view was closed with the region");
    }

    /**
     * Found by a review: another thread's free of a region being loaded to a device stops the load at
     * its next chunk, which failed with the free's own refusal ("... its free waits for operations
     * still running ... free it again once they end"), advice meant for the one freeing. It says now
     * that the region was freed while the file loaded; the free completes once the load has stopped.
     */
    @Test
    void aRegionFreedByAnotherThreadWhileItLoadsStopsTheLoadSayingSo() throws Exception {
        Path p = file("freed-while-loading", 16 * MiB, 23);
        int before = mem.regions().size();
        long newest = newestRegion();
        java.util.concurrent.atomic.AtomicReference<Throwable> freer = new java.util.concurrent.atomic.AtomicReference<>();
        java.util.concurrent.atomic.AtomicReference<Thread> freeing = new java.util.concurrent.atomic.AtomicReference<>();
        AtomicBoolean first = new AtomicBoolean(true);
        LoadOptions o = LoadOptions.defaults().withThreads(1).withChunkBytes(MiB).withProgress((done, total) -> {
            if (first.compareAndSet(true, false)) {
                Region r = regionAfter(newest);
                Thread t = Thread.ofPlatform().start(() -> {
                    try {
                        r.free();   // waits for the load to stop
                    } catch (Throwable e) {
                        freer.set(e);
                    }
                });
                freeing.set(t);
                // the free has begun once its thread waits for the load
                long deadline = System.nanoTime() + 10_000_000_000L;
                while (t.getState() != Thread.State.TIMED_WAITING && t.getState() != Thread.State.WAITING
                        && t.isAlive() && System.nanoTime() < deadline) {
                    Thread.onSpinWait();
                }
            }
        });
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> mem.load(p, 1, o));
        assertTrue(e.getMessage().contains("was freed") && e.getMessage().contains("while the file loaded into it")
                && e.getMessage().contains("the load stopped"), e.getMessage());
        freeing.get().join(10_000);
        assertEquals(null, freer.get(), "the other thread's free");
        assertEquals(before, mem.regions().size(), "the region is freed");
        assertEquals(256 * MiB, mem.stats().node(1).freeBytes(), "no device frame leaked");
    }

    /**
     * The schemes open the file by its path: a file written in place (same size), replaced by
     * another under its name, or deleted while it loads must not leave a region that says it holds
     * the file (the load checked only the size, by path: a replacement of the same size passed, and a
     * deletion failed with a bare "no such file").
     */
    @Test
    void aFileWrittenReplacedOrDeletedDuringTheLoadFailsSayingWhichAndLeavesNothing() throws IOException {
        Path p = file("changes", 16 * MiB, 7);
        int before = mem.regions().size();
        for (String change : List.of("written", "written, its time put back", "replaced", "deleted")) {
            for (int node : new int[] {0, 1}) {
                file("changes", 16 * MiB, 7);
                AtomicBoolean done = new AtomicBoolean();
                LoadOptions o = LoadOptions.defaults().withThreads(1).withChunkBytes(MiB).withProgress((loaded, total) -> {
                    if (done.compareAndSet(false, true)) {
                        try {
                            switch (change) {
                                case "written" -> writeInPlace(p);
                                case "written, its time put back" -> {   // as touch -r or a copy that keeps times
                                    var was = Files.getLastModifiedTime(p);
                                    writeInPlace(p);
                                    Files.setLastModifiedTime(p, was);
                                }
                                case "replaced" -> {
                                    Path other = p.resolveSibling("changes.new");
                                    Files.write(other, new byte[(int) (16 * MiB)]);
                                    Files.move(other, p, java.nio.file.StandardCopyOption.REPLACE_EXISTING,
                                            java.nio.file.StandardCopyOption.ATOMIC_MOVE);
                                }
                                default -> Files.delete(p);
                            }
                        } catch (IOException e) {
                            throw new java.io.UncheckedIOException(e);
                        }
                    }
                });
                IOException e = assertThrows(IOException.class, () -> mem.load(p, node, o), change + " to node " + node);
                String says = switch (change) {
                    case "written", "written, its time put back" -> "was written during the load";
                    case "replaced" -> "was replaced by another file during the load";
                    default -> "was deleted or renamed during the load";
                };
                assertTrue(e.getMessage().contains(says) && e.getMessage().contains(p.toString()), e.getMessage());
                assertEquals(before, mem.regions().size(), change + " to node " + node + ": the region was freed");
            }
        }
        assertEquals(256 * MiB, mem.stats().node(1).freeBytes(), "no device frame leaked");
    }

    /** Three bytes in the middle of a 16 MiB file changed, its size kept. */
    private static void writeInPlace(Path p) throws IOException {
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.wrap(new byte[] {1, 2, 3}), 8 * MiB);
        }
    }

    @Test
    void aFileThatGrowsDuringTheLoadFailsAndLeavesNothing() throws IOException {
        Path p = file("grows", 16 * MiB, 6);
        int before = mem.regions().size();
        AtomicBoolean grown = new AtomicBoolean();
        LoadOptions o = LoadOptions.defaults().withThreads(1).withChunkBytes(MiB).withProgress((done, total) -> {
            if (grown.compareAndSet(false, true)) {
                try {
                    Files.write(p, new byte[4096], StandardOpenOption.APPEND);
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            }
        });
        IOException e = assertThrows(IOException.class, () -> mem.load(p, 0, o));
        assertTrue(e.getMessage().contains("changed size") && e.getMessage().contains(String.valueOf(16 * MiB)), e.getMessage());
        assertEquals(before, mem.regions().size());
    }

    @Test
    void optionsRefuseBadValues() {
        assertThrows(IllegalArgumentException.class, () -> LoadOptions.defaults().withThreads(0));
        assertThrows(IllegalArgumentException.class, () -> LoadOptions.defaults().withChunkBytes(1000));
        var e = assertThrows(IllegalArgumentException.class, () -> LoadOptions.defaults().withRingBytes(1024));
        assertTrue(e.getMessage().contains("1024"), e.getMessage());
    }
}
