package dev.hetmem.host;

import dev.hetmem.driver.CopyBatch;
import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.pagetable.Block;

import java.lang.foreign.MemorySegment;
import java.util.List;

import static dev.hetmem.driver.PageGeometry.PAGE_SHIFT;

/**
 * The host side of a region reached through host views only: one anonymous host mapping, touched
 * by host code only under an open view (which pins its pages home), so the engine's copies are
 * plain copies into it and nothing watches it between migrations.
 */
public final class HostViewSide implements HostSide {
    private final HostMapping mapping;
    private final RetainedFrames.Owner retained;

    /** {@code retained}: where frames of pages that leave are kept until released by the chunk. */
    public HostViewSide(HostMapping mapping, RetainedFrames retained) {
        this.mapping = mapping;
        this.retained = retained.register(mapping, Math.ceilDiv(mapping.length(), dev.hetmem.driver.PageGeometry.PAGE_BYTES));
    }

    @Override
    public HostMapping mapping() {
        return mapping;
    }

    @Override
    public long address() {
        return mapping.base();
    }

    @Override
    public MemorySegment segment(Object owner) {
        throw new IllegalStateException(owner + " is reached through host views (host(offset, length, access)); "
                + "a whole-region segment needs a memory built with hostFaults(HostFaultMode.USERFAULTFD)");
    }

    @Override
    public void leave(long page, long count) {
        // nothing: no host code touches the pages without a view, and a view pins them home
    }

    @Override
    public void writeProtect(long page, long count) {
        // nothing: a host view that writes conflicts with the duplicate and is waited for
    }

    @Override
    public void copyHome(long page, int count, DeviceDriver from, int[] frames, CopyBatch batch) {
        copyHomeAll(new long[] {page}, new int[] {count}, new int[][] {frames}, 1, from, batch);
    }

    @Override
    public void copyHomeAll(long[] firstPages, int[] counts, int[][] frames, int n, DeviceDriver from, CopyBatch batch) {
        retained.reuseAll(firstPages, counts, n);   // before any copy writes the frames: see RetainedFrames, invariant 2
        for (int r = 0; r < n; r++) {
            long va = mapping.base() + (firstPages[r] << PAGE_SHIFT);
            for (int i = 0; i < counts[r]; i++) {
                batch.add(CopyBatch.TO_HOST, va + ((long) i << PAGE_SHIFT), frames[r][i], 1);
            }
        }
    }

    @Override
    public void sync(Block b, int p0, int p1, DeviceDriver[] drivers, ReadOnly readOnly) {
        // host views read the page table when they open; but a page that became the host's with no
        // copy home (a fresh page: the host holds zeros) must not keep a frame queued for release,
        // whose old bytes it would read and whose release would later throw its new ones away.
        // Found by the stress program: a copy that failed part-way left its staged frames kept
        // (UndoPhase), the device's zero pages were then dropped and the host populated the pages.
        long first = b.index() * dev.hetmem.driver.PageGeometry.BLOCK_PAGES;
        int p = p0;
        while (p < p1) {
            if (!b.isResident(0, p)) {
                p++;
                continue;
            }
            int q = p + 1;
            while (q < p1 && b.isResident(0, q)) {
                q++;
            }
            long[] stale = retained.takeBackStale(first + p, q - p);
            for (int i = 0; i < stale.length; i += 2) {
                mapping.discard(stale[i] << PAGE_SHIFT, stale[i + 1] << PAGE_SHIFT);
            }
            p = q;
        }
    }

    /**
     * Nothing to do: the copy home took back the pages' kept frames before it wrote them
     * ({@link RetainedFrames.Owner#reuseAll}), and none can be kept again while their block stays
     * locked, so {@link #sync}'s search for stale frames would find none. Per scattered 4 KiB page
     * that search was a hold of the kept frames' lock (which the batches running side by side
     * contend for) and a chunk lookup: a quarter of a commit home's samples in a JFR profile.
     */
    @Override
    public void syncCopiedHome(Block b, int p0, int p1, DeviceDriver[] drivers, ReadOnly readOnly) {
        assert !retained.anyRetained(b.index() * dev.hetmem.driver.PageGeometry.BLOCK_PAGES + p0, p1 - p0)
                : "a page copied home still has a kept frame (block " + b.index() + ", pages " + p0 + ".." + p1 + ")";
    }

    @Override
    public void release(long[] ranges, int count) {
        retained.retain(ranges, count);
    }

    @Override
    public void release(long[] ranges, int count, long[] vacated, int vacatedCount) {
        retained.retain(ranges, count, vacated, vacatedCount);
    }

    @Override
    public long retainedBytes() {
        return retained.bytes();
    }

    @Override
    public boolean releasesFrames() {
        return true;
    }

    @Override
    public void discard(long offset, long bytes) {
        retained.forget(offset >>> PAGE_SHIFT, Math.ceilDiv(bytes, dev.hetmem.driver.PageGeometry.PAGE_BYTES));
        mapping.discard(offset, bytes);
    }

    @Override
    public long[] collect(long block, long[] busyTaken) {
        return null;
    }

    @Override
    public void uncollect(long block, long[] taken) {
        throw new IllegalStateException("host views report no pages taken home, so none can be given back");
    }

    @Override
    public void granularity(long from, long to, int pageShift) {
        // a view's pages move by the engine, which reads the attributes itself
    }

    @Override
    public boolean takesPagesOnItsOwn() {
        return false;
    }

    @Override
    public boolean takeAnySteals() {
        return false;
    }

    @Override
    public boolean stolenIn(long from, long to, boolean busyToo) {
        return false;
    }

    @Override
    public void busy(long from, long count, boolean on) {
        // nothing: only a fault service takes pages on its own
    }

    @Override
    public boolean namesNone(DeviceDriver driver, int[] frames, int count, long firstPage) {
        return true;
    }

    @Override
    public boolean populate(long offset, long bytes) {
        return Libc.tryMadvise(mapping.base() + offset, bytes, Libc.MADV_POPULATE_WRITE) == 0;
    }

    @Override
    public void check(Block b, int pages, DeviceDriver[] drivers, ReadOnly readOnly, Object owner,
                      List<String> problems) {
        // the host column of the page table is all there is, but for frames kept for release
        long first = b.index() * dev.hetmem.driver.PageGeometry.BLOCK_PAGES;
        for (int p = 0; p < pages; p++) {
            if (b.isResident(0, p) && retained.isRetained(first + p)) {
                problems.add(owner + ": page " + (first + p) + " is resident on the host but its frame is kept for release");
            }
        }
    }

    @Override
    public void kill() {
        // nothing reads device frames on the host's behalf
    }

    @Override
    public void close() {
        retained.close();   // waits for releases of its frames in progress: none may reach an unmapped range
        mapping.close();
    }
}
