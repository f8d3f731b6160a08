package dev.hetmem;

import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.driver.PageGeometry;
import dev.hetmem.internal.RegionState;
import dev.hetmem.migrate.MigrationRequest;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static dev.hetmem.MemoryFixture.MiB;
import static dev.hetmem.MemoryFixture.PAGE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A prefetch list's batches, built lazily on the threads that run them, cover exactly the list's
 * pages in its order, keep within their limits, and are the same whichever thread builds them.
 */
class PrefetchBatchesTest {
    private static final long BLOCK = PageGeometry.BLOCK_PAGES;

    /** Sorted scattered pages, unsorted and overlapping ranges, long ranges, single-block lists. */
    @Test
    void batchesCoverTheListInOrderWithinTheirLimits() throws Exception {
        try (UnifiedMemory mem = UnifiedMemory.builder().device(EmulatedDevice.builder().capacity(16 * MiB).build()).build()) {
            Region region = mem.allocate(64 * MiB);
            RegionState s = region.state();
            long pages = s.pages();
            Random rnd = new Random(20261206);
            int lists = 0;
            for (int round = 0; round < 300; round++) {
                int kind = round % 4;
                long length = switch (kind) {
                    case 0 -> PAGE;
                    case 1 -> (1 + rnd.nextInt(3)) * PAGE - rnd.nextInt(100);   // partial pages
                    case 2 -> (1 + rnd.nextInt(3 * (int) BLOCK)) * PAGE;        // ranges across blocks
                    default -> (1 + rnd.nextInt(40)) * PAGE;
                };
                int n = 1 + rnd.nextInt(kind == 2 ? 20 : 3000);
                long[] offsets = new long[n];
                for (int i = 0; i < n; i++) {
                    offsets[i] = rnd.nextLong((pages * PAGE - length) / PAGE) * PAGE + (kind == 1 ? rnd.nextInt(50) : 0);
                }
                if (kind != 3) {
                    java.util.Arrays.sort(offsets);   // kind 3: unsorted, overlapping
                }
                long limit = BLOCK * (1 + rnd.nextInt(8)) + rnd.nextInt(100);
                long share = 1 + rnd.nextLong(limit);
                long maxPieces = rnd.nextBoolean() ? Long.MAX_VALUE : 1 + rnd.nextInt(600);
                check(s, offsets, length, limit, share, maxPieces);
                lists++;
            }
            assertEquals(300, lists);
        }
    }

    private static void check(RegionState s, long[] offsets, long length, long limit, long share, long maxPieces)
            throws Exception {
        String what = "limit " + limit + ", share " + share + ", pieces " + maxPieces + ", " + offsets.length
                + " ranges of " + length + " bytes";
        PrefetchBatches batches = new PrefetchBatches(s, offsets, length, limit, share, maxPieces);
        // the list's pages in its order, range by range
        List<long[]> expected = new ArrayList<>();
        for (long off : offsets) {
            expected.add(new long[] {off >>> PageGeometry.PAGE_SHIFT, Math.ceilDiv(off + length, PAGE)});
        }
        int range = 0;
        long next = expected.getFirst()[0];
        Map<Long, Integer> blockOwner = new HashMap<>();
        boolean sortedDisjoint = true;
        for (int i = 1; i < offsets.length; i++) {
            sortedDisjoint &= expected.get(i)[0] >= expected.get(i - 1)[1];
        }
        for (int b = 0; b < batches.size(); b++) {
            List<MigrationRequest> batch = batches.get(b);
            assertTrue(!batch.isEmpty(), "batch " + b + " is empty: " + what);
            long batchPages = 0;
            long stretches = 0;
            long lastEnd = -1;
            for (MigrationRequest r : batch) {
                assertTrue(r.from() < r.to(), what);
                if (next == expected.get(range)[1]) {
                    range++;
                    next = expected.get(range)[0];
                }
                assertEquals(next, r.from(), "a request out of the list's order: " + what);
                assertTrue(r.to() <= expected.get(range)[1], "a request past its range: " + what);
                assertTrue(!r.write(), what);
                next = r.to();
                batchPages += r.to() - r.from();
                stretches += r.from() != lastEnd ? 1 : 0;
                lastEnd = r.to();
                if (sortedDisjoint && limit % BLOCK == 0) {   // else a range is cut where the limit falls
                    for (long blk = PageGeometry.blockOf(r.from()); blk <= PageGeometry.blockOf(r.to() - 1); blk++) {
                        Integer owner = blockOwner.putIfAbsent(blk, b);
                        assertTrue(owner == null || owner == b,
                                "block " + blk + " in batches " + owner + " and " + b + ": " + what);
                    }
                }
            }
            assertTrue(batchPages <= limit, "a batch of " + batchPages + " pages: " + what);
            if (sortedDisjoint) {
                // past its share or its pieces a batch takes at most the rest of the block it ends in
                // (ranges that overlap may come back to that block again and again: only the limit holds)
                assertTrue(batchPages < share + BLOCK, "a batch of " + batchPages + " pages: " + what);
                if (maxPieces != Long.MAX_VALUE) {
                    assertTrue(stretches <= maxPieces + BLOCK, "a batch of " + stretches + " stretches: " + what);
                }
            }
            assertEquals(batch, batches.get(b), "built twice, batch " + b + " differs: " + what);
        }
        assertEquals(cutAtOnce(s, offsets, length, limit, share, maxPieces), new ArrayList<>(batches),
                "not the batches of the cut made all at once: " + what);
        assertEquals(expected.size() - 1, range, "ranges left out: " + what);
        assertEquals(expected.getLast()[1], next, "pages left out: " + what);
        // the same batches built on other threads, all at once
        try (ExecutorService pool = Executors.newFixedThreadPool(4)) {
            List<Future<List<MigrationRequest>>> built = new ArrayList<>();
            for (int b = 0; b < batches.size(); b++) {
                int i = b;
                built.add(pool.submit(() -> batches.get(i)));
            }
            for (int b = 0; b < batches.size(); b++) {
                assertEquals(batches.get(b), built.get(b).get(), "batch " + b + " built on another thread: " + what);
            }
        }
    }

    /**
     * The cut as it was made before batches were built lazily, every request at once (the oracle:
     * the lazy batches must be exactly these).
     */
    private static List<List<MigrationRequest>> cutAtOnce(RegionState s, long[] offsets, long length, long limit,
                                                          long share, long maxPieces) {
        List<List<MigrationRequest>> batches = new ArrayList<>();
        List<MigrationRequest> batch = new ArrayList<>();
        long batchPages = 0;
        long lastBlock = -1;
        long pieces = 0;
        long lastEnd = -1;
        for (long off : offsets) {
            long from = off >>> PageGeometry.PAGE_SHIFT;
            long to = Math.ceilDiv(off + length, PageGeometry.PAGE_BYTES);
            for (long p = from; p < to; ) {
                boolean full = batchPages >= share || pieces >= maxPieces;
                if (batchPages >= limit || (full && PageGeometry.blockOf(p) != lastBlock)) {
                    batches.add(batch);
                    batch = new ArrayList<>();
                    batchPages = 0;
                    pieces = 0;
                    lastEnd = -1;
                }
                long end;
                if (batchPages >= share) {
                    end = Math.min(to, Math.min(PageGeometry.firstPage(lastBlock + 1), p + (limit - batchPages)));
                } else {
                    end = Math.min(to, p + (share - batchPages));
                    long blockStart = PageGeometry.firstPage(PageGeometry.blockOf(end));
                    if (end < to && blockStart > p) {
                        end = blockStart;
                    }
                }
                batch.add(new MigrationRequest(s, p, end, false));
                if (p != lastEnd) {
                    pieces++;
                }
                lastEnd = end;
                batchPages += end - p;
                lastBlock = PageGeometry.blockOf(end - 1);
                p = end;
            }
        }
        if (!batch.isEmpty()) {
            batches.add(batch);
        }
        return batches;
    }
}
