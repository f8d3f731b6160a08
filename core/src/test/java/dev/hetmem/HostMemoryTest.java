package dev.hetmem;

import dev.hetmem.HostReleasePolicy;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static dev.hetmem.MemoryFixture.MiB;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Host frames of pages that moved to a device go back to the kernel; huge regions cost nothing. */
class HostMemoryTest {

    /** Reads one field (kB) of /proc/self/smaps_rollup, in bytes. */
    static long rollup(String field) throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/smaps_rollup"))) {
            if (line.startsWith(field + ":")) {
                return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        }
        throw new IllegalStateException("no " + field + " in smaps_rollup");
    }

    @Test
    void dontNeedReturnsTheFramesToTheKernel() throws IOException {
        try (UnifiedMemory mem = UnifiedMemory.builder().device(MemoryFixture.device(512 * MiB).driver())
                .hostReleasePolicy(HostReleasePolicy.DONTNEED).copyThreads(2).build()) {
            Region r = mem.allocate(256 * MiB);
            MemoryFixture.fill(r, 0, 256 * MiB, 1);
            long before = rollup("Rss");
            r.advise(0, 256 * MiB, Advice.prefetch(1));
            long after = rollup("Rss");
            // the device pool is host memory too (emulated), so what left the region came back
            // as device frames: the region's own 256 MiB is what must have gone
            long regionRss = residentOf(r);
            assertEquals(0, regionRss, "no page of the region is resident on the host");
            assertTrue(after - before < 64 * MiB, "Rss grew by " + (after - before) + " bytes while 256 MiB moved out and in");
            MemoryFixture.check(r, 0, 256 * MiB, 1);
        }
    }

    @Test
    void freeLeavesTheFramesReclaimableAsLazyFree() throws IOException {
        try (UnifiedMemory mem = UnifiedMemory.builder().device(MemoryFixture.device(512 * MiB).driver())
                .hostReleasePolicy(HostReleasePolicy.FREE).copyThreads(2).build()) {
            Region r = mem.allocate(256 * MiB);
            MemoryFixture.fill(r, 0, 256 * MiB, 2);
            long lazyBefore = rollup("LazyFree");
            r.advise(0, 256 * MiB, Advice.prefetch(1));
            long lazyAfter = rollup("LazyFree");
            assertTrue(lazyAfter - lazyBefore >= 250 * MiB,
                    "LazyFree grew by " + (lazyAfter - lazyBefore) + " bytes; expected the region's 256 MiB");
            MemoryFixture.check(r, 0, 256 * MiB, 2);
            assertTrue(rollup("LazyFree") < lazyAfter - 200 * MiB, "pages coming home leave LazyFree");
        }
    }

    /** Resident bytes of the region's mapping, from /proc/self/smaps. */
    static long residentOf(Region r) throws IOException {
        String start = Long.toHexString(r.address());
        boolean in = false;
        long rss = 0;
        for (String line : Files.readAllLines(Path.of("/proc/self/smaps"))) {
            if (line.matches("^[0-9a-f]+-[0-9a-f]+ .*")) {
                in = line.startsWith(start + "-");
            } else if (in && line.startsWith("Rss:")) {
                rss += Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        }
        return rss;
    }

    @Test
    void aTerabyteRegionCostsNoMemoryUntilTouched() throws IOException {
        try (UnifiedMemory mem = MemoryFixture.memory(MemoryFixture.device(64 * MiB))) {
            long rssBefore = rollup("Rss");
            Region r = mem.allocate(1L << 40);
            assertEquals(1L << 40, r.size());
            assertEquals(0, r.address() & ((2 * MiB) - 1), "2 MiB aligned");
            Stats empty = r.stats();
            assertTrue(empty.metadataBytes() < 64 * 1024, "untouched 1 TiB region keeps " + empty.metadataBytes() + " bytes");
            // touch the last byte and one in the middle: two blocks come into being
            try (HostView v = r.host((1L << 40) - 1, 1, Access.READ_WRITE)) {
                v.segment().set(java.lang.foreign.ValueLayout.JAVA_BYTE, 0, (byte) 7);
            }
            MemoryFixture.fill(r, 1L << 39, 2 * MiB, 3);
            MemoryFixture.check(r, 1L << 39, 2 * MiB, 3);
            PageSnapshot s = r.snapshot((1L << 40) - 4096, 4096);
            assertEquals("node 0 rw", s.describe(0));
            // the whole region's attributes: where its pages are, found without a per-page snapshot
            // (one of a terabyte took 1.3 GB of arrays, or the heap's end)
            assertEquals(RangeInfo.MIXED, r.attributes(0, r.size()).location());
            assertEquals(RangeInfo.NONE, r.attributes(0, 1L << 39).location());
            assertEquals(0, r.attributes(1L << 39, 2 * MiB).location());
            assertEquals(RangeInfo.MIXED, r.attributes((1L << 39) - 4096, 8192).location());
            long grown = rollup("Rss") - rssBefore;
            assertTrue(grown < 64 * MiB, "resident memory grew by " + grown + " bytes");
            mem.release(1);
        }
    }

    @Test
    void metadataStaysFarBelowFiveHundredthsOfAPercent() {
        try (UnifiedMemory mem = MemoryFixture.memory(MemoryFixture.device(256 * MiB))) {
            Region r = mem.allocate(512 * MiB);
            MemoryFixture.fill(r, 0, 512 * MiB, 4);
            r.advise(0, 128 * MiB, Advice.prefetch(1));
            Stats st = r.stats();
            double fraction = st.metadataBytes() / (double) st.touchedBytes();
            assertTrue(fraction < 0.0005 / 2, "metadata " + st.metadataBytes() + " bytes for " + st.touchedBytes()
                    + " touched = " + fraction * 100 + "%");
        }
    }
}
