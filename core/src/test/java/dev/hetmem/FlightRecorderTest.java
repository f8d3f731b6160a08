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

    @Test
    void eachTileOfALaunchLargerThanTheDeviceIsRecorded() throws Exception {
        Path file = Files.createTempFile("hetmem", ".jfr");
        try (Recording rec = new Recording()) {
            rec.enable("dev.hetmem.Tile");
            rec.start();
            long bytes = 12 * MiB;
            TestDevice d = MemoryFixture.device(4 * MiB);
            try (UnifiedMemory mem = MemoryFixture.memory(d)) {
                Region r = mem.allocate(bytes);
                MemoryFixture.fill(r, 0, bytes, 5);
                mem.launch(1, d.addLongs(1), bytes / 8, KernelArg.readWrite(r).perItem(8));
                MemoryFixture.checkAdded(r, bytes, 5, 1);
            }
            rec.stop();
            rec.dump(file);
            List<RecordedEvent> tiles = RecordingFile.readAllEvents(file).stream()
                    .filter(e -> e.getEventType().getName().equals("dev.hetmem.Tile")).toList();
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
            assertEquals(bytes / 8, items, "the tiles cover every item once");
        } finally {
            Files.deleteIfExists(file);
        }
    }
}
