package dev.hetmem;

import jdk.jfr.Recording;
import jdk.jfr.consumer.RecordedEvent;
import jdk.jfr.consumer.RecordingFile;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static dev.hetmem.MemoryFixture.MiB;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Migrations and faults show up in JDK Flight Recorder with what they moved. */
class FlightRecorderTest {

    @Test
    void migrationsAndFaultsAreRecorded() throws Exception {
        Path file = Files.createTempFile("hetmem", ".jfr");
        try (Recording rec = new Recording()) {
            rec.enable("dev.hetmem.Migration");
            rec.enable("dev.hetmem.Fault");
            rec.start();
            long hostBatches;
            try (UnifiedMemory mem = MemoryFixture.memory(MemoryFixture.device(16 * MiB))) {
                Region r = mem.allocate(4 * MiB);
                MemoryFixture.fill(r, 0, 4 * MiB, 1);           // first touch on the host: a fault, no data moved
                r.advise(0, 4 * MiB, Advice.prefetch(1));        // one batch of 1024 pages to node 1
                MemoryFixture.check(r, 0, 2 * MiB, 1);           // a host fault brings one granule back
                hostBatches = mem.stats().node(0).faultBatches();
                assertEquals(2, hostBatches, "the first touch of two granules in one view, then one view's fault");
                assertEquals(3, mem.stats().node(0).faults(), "granules: two populated, one brought back");
            }
            rec.stop();
            rec.dump(file);
            List<RecordedEvent> events = RecordingFile.readAllEvents(file);
            List<RecordedEvent> migrations = events.stream()
                    .filter(e -> e.getEventType().getName().equals("dev.hetmem.Migration")).toList();
            List<RecordedEvent> faults = events.stream()
                    .filter(e -> e.getEventType().getName().equals("dev.hetmem.Fault")).toList();
            assertTrue(migrations.stream().anyMatch(e -> e.getInt("target") == 1 && e.getLong("pages") == 1024
                    && e.getString("trigger").equals("PREFETCH") && !e.getBoolean("undone")), migrations.toString());
            for (RecordedEvent e : migrations) {
                // each phase timed, and the phases within the batch's own time
                long phases = 0;
                for (String phase : List.of("revokeTime", "allocateTime", "copyTime", "commitTime")) {
                    long t = e.getDuration(phase).toNanos();
                    assertTrue(t >= 0, phase + " of " + e);
                    phases += t;
                }
                // JFR's clock and System.nanoTime may differ slightly: a millisecond of slack
                assertTrue(phases <= e.getDuration().toNanos() + 1_000_000, "phases " + phases + " ns longer than the batch: " + e);
                if (e.getLong("pages") > 0 && !e.getBoolean("undone")) {
                    assertTrue(e.getDuration("copyTime").toNanos() > 0 && e.getDuration("commitTime").toNanos() > 0, e.toString());
                }
            }
            assertTrue(migrations.stream().anyMatch(e -> e.getInt("target") == 0 && e.getLong("pages") == 512
                    && e.getString("trigger").equals("FAULT")), migrations.toString());
            assertEquals(1, faults.stream().filter(e -> e.getLong("pagesMigrated") == 512
                    && "host view".equals(e.getString("path"))).count(), faults.toString());
            assertEquals(hostBatches, faults.stream().filter(e -> e.getInt("node") == 0).count(),
                    "one Fault event per fault batch: " + faults);
        } finally {
            Files.deleteIfExists(file);
        }
    }

    /**
     * A trim's release of kept host frames is one HostRelease event with what it released and what
     * stayed kept after it (the event is committed outside the kept frames' lock now).
     */
    @Test
    void aTrimsReleaseOfKeptHostFramesIsRecorded() throws Exception {
        List<RecordedEvent> releases = recorded("dev.hetmem.HostRelease", () -> {
            try (UnifiedMemory mem = UnifiedMemory.builder().copyThreads(2).hostRetainBudget(256 * MiB)
                    .device(MemoryFixture.device(16 * MiB).driver()).build()) {
                Region r = mem.allocate(4 * MiB, MemoryFixture.PAGE);   // 4 KiB granules: only the pages asked for move
                MemoryFixture.fill(r, 0, 4 * MiB, 1);
                long[] everyOtherPage = new long[512];
                for (int i = 0; i < everyOtherPage.length; i++) {
                    everyOtherPage[i] = 2L * i * MemoryFixture.PAGE;
                }
                mem.prefetch(r, everyOtherPage, MemoryFixture.PAGE, 1);   // half of each chunk leaves: kept
                assertEquals(512 * MemoryFixture.PAGE, mem.stats().node(0).retainedBytes());
                mem.trimHost();
            }
        });
        assertTrue(releases.stream().anyMatch(e -> e.getString("reason").contains("trim") && e.getInt("chunks") == 2
                && e.getLong("bytes") == 512 * MemoryFixture.PAGE && e.getLong("retainedAfter") == 0
                && e.getInt("ranges") > 0), releases.toString());
    }

    /** A load's batches count the pages they placed (they read 0: only copied pages were counted). */
    @Test
    void aLoadsBatchesCountThePagesTheyPlaced() throws Exception {
        Path data = Files.createTempFile("hetmem-jfr-load", ".bin");
        try {
            Files.write(data, new byte[3 * (int) MiB]);
            List<RecordedEvent> loads = recorded("dev.hetmem.Migration", () -> {
                try (UnifiedMemory mem = MemoryFixture.memory(MemoryFixture.device(16 * MiB))) {
                    mem.load(data, 1).region().free();
                }
            }).stream().filter(e -> e.getString("trigger").equals("LOAD")).toList();
            assertEquals(3 * MiB / 4096, loads.stream().mapToLong(e -> e.getLong("pages")).sum(), loads.toString());
            assertEquals(3 * MiB, loads.stream().mapToLong(e -> e.getLong("bytes")).sum(), loads.toString());
            assertTrue(loads.stream().noneMatch(e -> e.getBoolean("failed") || e.getBoolean("undone")), loads.toString());
        } finally {
            Files.deleteIfExists(data);
        }
    }

    /** A device fault's event names the page that faulted (it named the whole argument, the same for every fault). */
    @Test
    @org.junit.jupiter.api.Tag("emulated") // device faults are the emulated device's
    void eachDeviceFaultNamesItsPage() throws Exception {
        List<RecordedEvent> faults = recorded("dev.hetmem.Fault", () -> launchOverThreeTimesTheDevice(false)).stream()
                .filter(e -> "device fault".equals(e.getString("path"))).toList();
        assertTrue(faults.size() >= 2, "a launch over three times the device faults: " + faults);
        for (RecordedEvent e : faults) {
            assertEquals(4096, e.getLong("length"), e.toString());
            long offset = e.getLong("offset");
            assertTrue(offset % 4096 == 0 && offset >= 0 && offset < LAUNCHED, e.toString());
        }
        assertTrue(faults.stream().mapToLong(e -> e.getLong("offset")).distinct().count() > 1,
                "the faults are at different pages: " + faults);
    }

    @Test
    void eachTileOfALaunchLargerThanTheDeviceIsRecorded() throws Exception {
        List<RecordedEvent> tiles = recorded("dev.hetmem.Tile", () -> launchOverThreeTimesTheDevice(true));
        assertTrue(tiles.size() >= 3, "a launch over three times the device runs in tiles: " + tiles);
        long items = 0;
        for (int i = 0; i < tiles.size(); i++) {
            RecordedEvent t = tiles.get(i);
            assertEquals(i, t.getLong("tile"), "tiles in order");
            assertEquals(items, t.getLong("firstItem"), "each tile starts where the previous one ended");
            assertEquals(1, t.getInt("node"));
            assertTrue(t.getDuration("kernel").toNanos() > 0 && t.getDuration("prefetchWait").toNanos() >= 0);
            items += t.getLong("items");
        }
        assertEquals(LAUNCHED / 8, items, "the tiles cover every item once");
    }

    /**
     * The first tiles of a tiled launch ramp up (an eighth, a quarter, a half, then whole tiles), so
     * that the first bring-in, the one no kernel hides, is small (it was a whole tile's).
     */
    @Test
    void theFirstTilesRampUpToFullTiles() throws Exception {
        List<RecordedEvent> tiles = recorded("dev.hetmem.Tile", () -> launchOverThreeTimesTheDevice(true));
        assertTrue(tiles.size() >= 6, "a launch over three times the device in tiles of a quarter of it, ramped: " + tiles);
        long full = tiles.get(3).getLong("items");
        assertEquals(full / 8, tiles.get(0).getLong("items"), tiles.toString());
        assertEquals(full / 4, tiles.get(1).getLong("items"), tiles.toString());
        assertEquals(full / 2, tiles.get(2).getLong("items"), tiles.toString());
        for (int i = 3; i < tiles.size() - 1; i++) {
            assertEquals(full, tiles.get(i).getLong("items"), "every tile after the ramp but the last is whole: " + tiles);
        }
        assertTrue(tiles.getLast().getLong("items") <= full, tiles.toString());
    }

    /**
     * A tiled launch whose kernel reaches past its declared windows takes device faults; each tile's
     * event counts the pages its faults brought in, so the tiles add up to the launch (they left them out).
     */
    @Test
    @org.junit.jupiter.api.Tag("emulated") // device faults are the emulated device's
    void theTilesPagesAddUpToTheLaunchsWithThoseItsFaultsBroughtIn() throws Exception {
        long[] launched = new long[1];
        List<RecordedEvent> tiles = recorded("dev.hetmem.Tile", () -> {
            TestDevice d = MemoryFixture.device(4 * MiB);
            try (UnifiedMemory mem = MemoryFixture.memory(d)) {
                Region r = mem.allocate(LAUNCHED);
                MemoryFixture.fill(r, 0, LAUNCHED, 5);
                // item i adds to bytes [8i, 8i + 8) but declares [4i, 4i + 4): the rest comes by faults
                LaunchResult res = mem.launch(1, d.addLongs(1), LAUNCHED / 8, KernelArg.readWrite(r).perItem(4));
                MemoryFixture.checkAdded(r, LAUNCHED, 5, 1);
                assertTrue(res.faults() > 0, "the kernel reached past its windows: " + res);
                launched[0] = res.pagesMigrated();
            }
        });
        assertTrue(tiles.size() >= 2, tiles.toString());
        assertEquals(launched[0], tiles.stream().mapToLong(t -> t.getLong("pagesMigrated")).sum(), tiles.toString());
    }

    /** The bytes {@link #launchOverThreeTimesTheDevice} launches over. */
    private static final long LAUNCHED = 12 * MiB;

    /** One launch adding 1 to each long of 12 MiB on a 4 MiB device, checked: in tiles (a window per item) or by faults. */
    private static void launchOverThreeTimesTheDevice(boolean windows) {
        TestDevice d = MemoryFixture.device(4 * MiB);
        try (UnifiedMemory mem = MemoryFixture.memory(d)) {
            Region r = mem.allocate(LAUNCHED);
            MemoryFixture.fill(r, 0, LAUNCHED, 5);
            mem.launch(1, d.addLongs(1), LAUNCHED / 8, windows ? KernelArg.readWrite(r).perItem(8) : KernelArg.readWrite(r));
            MemoryFixture.checkAdded(r, LAUNCHED, 5, 1);
        }
    }

    /** What may throw inside a recording. */
    private interface Scenario {
        void run() throws Exception;
    }

    /** The events named {@code name} that {@code scenario} produced while a recording of them ran. */
    private static List<RecordedEvent> recorded(String name, Scenario scenario) throws Exception {
        Path file = Files.createTempFile("hetmem", ".jfr");
        try (Recording rec = new Recording()) {
            rec.enable(name);
            rec.start();
            scenario.run();
            rec.stop();
            rec.dump(file);
            return RecordingFile.readAllEvents(file).stream().filter(e -> e.getEventType().getName().equals(name)).toList();
        } finally {
            Files.deleteIfExists(file);
        }
    }
}
