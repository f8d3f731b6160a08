package dev.hetmem;

import dev.hetmem.device.emulated.EmulatedDevice;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.function.Supplier;

import static dev.hetmem.MemoryFixture.MiB;
import static dev.hetmem.MemoryFixture.names;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Bad input gets an exception that names the bad value and the limit it broke. */
@Tag("emulated") // argument checks of the API and of the emulated driver's builder
class ArgumentCheckTest {

    @Test
    void badArgumentsAreRefusedWithTheirValues() {
        try (UnifiedMemory mem = MemoryFixture.memory(MemoryFixture.device(8 * MiB))) {
            Region r = mem.allocate(MiB);
            names(IndexOutOfBoundsException.class, "-1", () -> r.host(-1, 10, Access.READ));
            names(IllegalArgumentException.class, "length -1", () -> r.host(0, -1, Access.READ));   // length 0 is an empty view
            names(IndexOutOfBoundsException.class, "1048576", () -> r.host(MiB - 10, 11, Access.READ));
            names(IndexOutOfBoundsException.class, String.valueOf(Long.MAX_VALUE), () -> r.host(1, Long.MAX_VALUE, Access.READ));
            names(IllegalArgumentException.class, "region size 0", () -> mem.allocate(0));
            names(IllegalArgumentException.class, "region size -5", () -> mem.allocate(-5));
            names(IllegalArgumentException.class, "region size " + (1L << 62), () -> mem.allocate(1L << 62));
            names(IllegalArgumentException.class, "granularity 3000", () -> mem.allocate(MiB, 3000));
            names(IllegalArgumentException.class, "granularity 12288", () -> r.advise(0, MiB, Advice.granularity(12288)));
            names(IllegalArgumentException.class, "unknown node 7", () -> r.advise(0, MiB, Advice.prefetch(7)));
            names(IllegalArgumentException.class, "unknown node -1", () -> mem.release(-1));
            names(IllegalArgumentException.class, "node 0 is the host", () -> mem.launch(0,
                    new EmulatedTestDevice(4096).noop(), 1, KernelArg.read(r)));
            names(IllegalArgumentException.class, "global size 0", () -> mem.launch(1,
                    new EmulatedTestDevice(4096).noop(), 0, KernelArg.read(r)));
            names(IndexOutOfBoundsException.class, "outside", () -> mem.launch(1,
                    new EmulatedTestDevice(4096).noop(), 1, KernelArg.of(r, MiB, 1, Access.READ)));
            names(IllegalArgumentException.class, "capacity 1000", () -> EmulatedDevice.builder().capacity(1000));
            names(IllegalArgumentException.class, "copy threads 0", () -> UnifiedMemory.builder().copyThreads(0));
            try (UnifiedMemory other = MemoryFixture.memory()) {
                Region foreign = other.allocate(MiB);
                names(IllegalArgumentException.class, "another memory", () -> mem.advise(foreign, 0, 1, Advice.dontNeed()));
            }
            r.free();
            names(IllegalStateException.class, "freed", () -> r.host(0, 1, Access.READ));
            names(IllegalStateException.class, "already freed", r::free);
            names(IllegalStateException.class, "freed", () -> r.advise(0, 1, Advice.prefetch(1)));
            names(IllegalStateException.class, "freed", () -> r.snapshot(0, 1));
        }
    }

    /** Found by a review of the API: bounds that truncated or overflowed, node numbers taken modulo 32. */
    @Test
    void durationsAndNodeNumbersOutsideTheirLimitsAreRefused() {
        names(IllegalArgumentException.class, "outside [1 ms, 1 h]",
                () -> UnifiedMemory.builder().closeTimeout(java.time.Duration.ofMinutes(90)));   // toHours() read 1
        names(IllegalArgumentException.class, "outside [1 ms, 1 h]",
                () -> UnifiedMemory.builder().closeTimeout(java.time.temporal.ChronoUnit.FOREVER.getDuration()));
        names(IllegalArgumentException.class, "outside [1 ms, 1 h]",
                () -> UnifiedMemory.builder().thrashHold(java.time.Duration.ofNanos(999_999)));
        UnifiedMemory.builder().closeTimeout(java.time.Duration.ofHours(1)).thrashHold(java.time.Duration.ofMillis(1));
        try (UnifiedMemory mem = MemoryFixture.memory(MemoryFixture.device(8 * MiB))) {
            Region r = mem.allocate(MiB);
            PageSnapshot s = r.snapshot(0, MiB);
            names(IllegalArgumentException.class, "node 32 outside [0, 30]", () -> s.countOn(32));
            names(IllegalArgumentException.class, "node -1 outside [0, 30]", () -> s.residentOn(0, -1));
            // the largest region's snapshot is more than one array holds: the refusal says how much one holds
            Region largest = mem.allocate(UnifiedMemory.MAX_REGION_BYTES);
            names(IllegalArgumentException.class, (Integer.MAX_VALUE - 8) + " pages", () -> largest.snapshot(0, largest.size()));
        }
    }

    /**
     * A global size that is not a multiple of the kernel's work-group is refused before any item
     * runs: a tiled launch kept its tiles to the multiple and only its last tile, after the others
     * had run and written, was refused by the device (OpenCL); the emulated device ran it whole.
     * From a review of tiled launches.
     */
    @Test
    void aGlobalSizeThatSplitsAWorkGroupIsRefusedBeforeAnyItemRuns() {
        try (UnifiedMemory mem = MemoryFixture.memory(MemoryFixture.device(8 * MiB))) {
            Region r = mem.allocate(MiB);
            java.util.concurrent.atomic.AtomicLong ran = new java.util.concurrent.atomic.AtomicLong();
            dev.hetmem.device.emulated.EmulatedKernel groupsOfFour = new dev.hetmem.device.emulated.EmulatedKernel() {
                @Override
                public void run(dev.hetmem.device.emulated.KernelArgs args, long item) {
                    ran.incrementAndGet();
                }

                @Override
                public long itemMultiple() {
                    return 4;
                }
            };
            names(IllegalArgumentException.class, "global size 10 is not a multiple of 4, the work items",
                    () -> mem.launch(1, groupsOfFour, 10, KernelArg.readWrite(r)));
            assertEquals(0, ran.get(), "no item ran");
            mem.launch(1, groupsOfFour, 12, KernelArg.readWrite(r));
            assertEquals(12, ran.get());
        }
    }

    /**
     * Two arguments over the same pages (a read and a write of one region) need them on the device
     * once: a launch whose region takes 5 MiB of an 8 MiB device fits, where counting each argument's
     * pages (10 MiB) refused it for its plain arguments (or ran it by faults or tiles). From a review
     * of tiled launches.
     */
    @Test
    void argumentsOverTheSamePagesCountThemOnceWhenTheLaunchIsFitted() {
        try (UnifiedMemory mem = MemoryFixture.memory(MemoryFixture.device(8 * MiB))) {
            long bytes = 5 * MiB;
            Region r = mem.allocate(bytes);
            MemoryFixture.fill(r, 0, bytes, 4);
            dev.hetmem.device.emulated.EmulatedKernel increment = dev.hetmem.device.emulated.EmulatedKernel.plain((a, i) ->
                    a.plain(1).set(java.lang.foreign.ValueLayout.JAVA_LONG, 8 * i,
                            a.plain(0).get(java.lang.foreign.ValueLayout.JAVA_LONG, 8 * i) + 1), 0, 1);
            mem.launch(1, increment, bytes / 8, KernelArg.read(r), KernelArg.readWrite(r));
            try (HostView v = r.host(0, bytes, Access.READ)) {
                for (long i = 0; i < bytes / 8; i += 4099) {
                    assertEquals(MemoryFixture.value(4, i) + 1, v.segment().getAtIndex(java.lang.foreign.ValueLayout.JAVA_LONG, i),
                            "word " + i);
                }
            }
            assertEquals(java.util.List.of(), mem.verify());
        }
    }

    /** A region whose size is not a whole number of pages: the attributes of ranges that reach its last page. */
    @Test
    void attributesOfTheLastPartialPage() {
        try (UnifiedMemory mem = MemoryFixture.memory(MemoryFixture.device(8 * MiB))) {
            Region r = mem.allocate(5000);
            assertTrue(r.attributes(0, r.size()).location() == RangeInfo.NONE, "untouched");
            MemoryFixture.fill(r, 0, 4096, 3);   // its granule comes home: both pages
            assertTrue(r.attributes(r.size() - 1, 1).location() == 0, "the last page is home");
            assertTrue(r.attributes(0, r.size()).location() == 0, "both pages are home");
        }
    }

    @Test
    void aClosedMemoryRefusesFurtherUse() {
        UnifiedMemory mem = MemoryFixture.memory(MemoryFixture.device(8 * MiB));
        Region r = mem.allocate(MiB);
        mem.close();
        mem.close();
        names(IllegalStateException.class, "memory is closed", () -> mem.allocate(10));
        names(IllegalStateException.class, "closed", () -> r.host(0, 1, Access.READ));
        Supplier<Object> launch = () -> mem.launch(1, new EmulatedTestDevice(4096).noop(), 1, KernelArg.read(r));
        names(IllegalStateException.class, "closed", launch::get);
        // settings and parts of a closed memory: refused, not changed or handed out (the driver's memory is
        // gone, and a closed fault service's counters read as zeros)
        names(IllegalStateException.class, "memory is closed", () -> mem.migrationMode(MigrationMode.VANILLA));
        names(IllegalStateException.class, "memory is closed", () -> mem.copyPath(CopyPath.THREADS));
        names(IllegalStateException.class, "memory is closed", () -> mem.driver(1));
        names(IllegalStateException.class, "memory is closed", mem::faultServiceCounters);
    }

    /**
     * Region ids are never reused: once the last is given out, a memory refuses more regions naming
     * the limit. The counter wrapped, so the 2^32nd allocation took a live region's id (and replaced
     * it in the memory's table: its close never freed it).
     */
    @Test
    void aMemoryThatHasGivenOutEveryRegionIdRefusesMore() throws Exception {
        try (UnifiedMemory mem = MemoryFixture.memory(MemoryFixture.device(8 * MiB))) {
            Region first = mem.allocate(MiB);
            var next = UnifiedMemory.class.getDeclaredField("nextRegionId");
            next.setAccessible(true);
            ((java.util.concurrent.atomic.AtomicInteger) next.get(mem)).set(Integer.MAX_VALUE - 1);
            Region last = mem.allocate(MiB);
            assertEquals(Integer.MAX_VALUE - 1, last.id());
            names(IllegalStateException.class, String.valueOf(Integer.MAX_VALUE - 1), () -> mem.allocate(MiB));
            names(IllegalStateException.class, "region ids", () -> mem.allocate(MiB));
            assertEquals(java.util.List.of(first, last), mem.regions(), "nothing allocated by the refusals");
        }
    }
}
