package dev.hetmem;

import dev.hetmem.driver.PageGeometry;
import dev.hetmem.internal.RegionState;
import dev.hetmem.migrate.MigrationRequest;

import java.util.AbstractList;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.RandomAccess;

/**
 * A prefetch list cut into batches of requests, each batch built when it is asked for, on the thread
 * that runs it. The cut itself is found at construction, in one pass over the offsets that builds
 * nothing: where each batch starts (an offset and a page of its range). Building every request before
 * the first batch began was 0.5-0.7 ms of one thread, with the other idle, in a list of 65,536
 * scattered 4 KiB pages (a 26 ms move), and kept every batch's requests till the call returned.
 *
 * <p>How a list is cut: a batch holds about {@code share} pages; it closes once it holds that many
 * and the next range starts in another block, and pieces of a long range are cut at block
 * boundaries, so that the batches of a sorted list share no block; a batch never passes
 * {@code limit} pages (a range larger than that is cut), nor {@code share} by more than the rest of
 * the block it ends in. A batch also closes, where a block ends, once it holds {@code maxPieces}
 * stretches of pages that do not adjoin (each a run of its own to plan, copy and commit).
 *
 * <p>Immutable once built: {@link #get} may run on several threads at once. The offsets are the
 * caller's checked copy, not an array the caller could change between the checks and a batch.
 */
final class PrefetchBatches extends AbstractList<List<MigrationRequest>> implements RandomAccess {
    private final RegionState region;
    private final long[] offsets;
    private final long length;
    private final long limit;
    private final long share;
    private final long maxPieces;
    /** The capacity a batch's list is created with: about what it will hold, never grown by copies. */
    private final int sized;
    /** Batch i starts at page {@code startPage[i]} of the range at {@code offsets[startIndex[i]]}. */
    private final int[] startIndex;
    private final long[] startPage;

    PrefetchBatches(RegionState region, long[] offsets, long length, long limit, long share, long maxPieces) {
        this.region = region;
        this.offsets = offsets;
        this.length = length;
        this.limit = limit;
        this.share = share;
        this.maxPieces = maxPieces;
        long bound = Math.min(offsets.length,
                Math.ceilDiv(Math.min(limit, share), Math.ceilDiv(length, PageGeometry.PAGE_BYTES)) + 1);
        this.sized = (int) (maxPieces < bound ? Math.min(bound, maxPieces + PageGeometry.BLOCK_PAGES) : bound);
        Starts starts = new Starts();
        walk(0, offsets.length == 0 ? 0 : offsets[0] >>> PageGeometry.PAGE_SHIFT, null, starts);
        this.startIndex = Arrays.copyOf(starts.index, starts.count);
        this.startPage = Arrays.copyOf(starts.page, starts.count);
    }

    @Override
    public int size() {
        return startIndex.length;
    }

    /** Batch {@code i}'s requests, built now. */
    @Override
    public List<MigrationRequest> get(int i) {
        Objects.checkIndex(i, startIndex.length);
        List<MigrationRequest> batch = new ArrayList<>(sized);
        walk(startIndex[i], startPage[i], batch, null);
        return batch;
    }

    /** Where batches start, as the first pass finds them. */
    private static final class Starts {
        int[] index = new int[16];
        long[] page = new long[16];
        int count;

        void add(int k, long p) {
            if (count == index.length) {
                index = Arrays.copyOf(index, 2 * count);
                page = Arrays.copyOf(page, 2 * count);
            }
            index[count] = k;
            page[count] = p;
            count++;
        }
    }

    /**
     * The cut, from page {@code p0} of range {@code k0} (a batch's start): into {@code out}, one
     * batch, ending where the next begins; or with {@code out} null, every batch's start into
     * {@code starts}, building nothing. The two passes run the same steps, so a batch built later
     * holds exactly the pieces the first pass counted.
     */
    private void walk(int k0, long p0, List<MigrationRequest> out, Starts starts) {
        long batchPages = 0;
        long lastBlock = -1;   // read only once the batch holds share pages, so set by then
        long pieces = 0;
        long lastEnd = -1;   // the batch's first stretch counts, adjoining or not
        boolean empty = true;
        for (int k = k0; k < offsets.length; k++) {
            long off = offsets[k];
            long from = k == k0 ? p0 : off >>> PageGeometry.PAGE_SHIFT;
            long to = Math.ceilDiv(off + length, PageGeometry.PAGE_BYTES);
            for (long p = from; p < to; ) {
                boolean full = batchPages >= share || pieces >= maxPieces;
                if (batchPages >= limit || (full && PageGeometry.blockOf(p) != lastBlock)) {
                    if (out != null) {
                        return;   // the next batch starts here
                    }
                    starts.add(k, p);
                    batchPages = 0;
                    pieces = 0;
                    lastEnd = -1;
                }
                if (empty && out == null) {
                    starts.add(k, p);   // the first batch
                }
                empty = false;
                long end;
                if (batchPages >= share) {
                    // the rest of the block the batch ends in, which no other batch may take
                    end = Math.min(to, Math.min(PageGeometry.firstPage(lastBlock + 1), p + (limit - batchPages)));
                } else {
                    end = Math.min(to, p + (share - batchPages));
                    long blockStart = PageGeometry.firstPage(PageGeometry.blockOf(end));
                    if (end < to && blockStart > p) {
                        end = blockStart;   // batches meet at block boundaries
                    }
                }
                if (out != null) {
                    out.add(new MigrationRequest(region, p, end, false));
                }
                if (p != lastEnd) {
                    pieces++;
                }
                lastEnd = end;
                batchPages += end - p;
                lastBlock = PageGeometry.blockOf(end - 1);
                p = end;
            }
        }
    }
}
