package dev.hetmem.fault;

import dev.hetmem.driver.CopyBatch;
import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.host.HostMapping;
import dev.hetmem.host.HostSide;
import dev.hetmem.pagetable.Block;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

import static dev.hetmem.driver.PageGeometry.BLOCK_PAGES;
import static dev.hetmem.driver.PageGeometry.PAGE_SHIFT;
import static dev.hetmem.driver.PageGeometry.blockOf;
import static dev.hetmem.driver.PageGeometry.firstPage;
import static dev.hetmem.driver.PageGeometry.pagesFor;

/**
 * The host side of a region in userfaultfd mode (HMM's CPU fault, in user space): the view is a
 * mirror of the page table's host column that the native fault service keeps. Pages the host holds
 * are mapped (write-protected where the host may not write); pages only a device holds are missing
 * and their state word names the device frame the service copies from on a fault; pages nobody
 * holds are missing and fault in as zeros. The service may take a page home on its own at any
 * time; the engine hears of it through {@link #collect}.
 */
public final class UserfaultfdSide implements HostSide {
    private final HostMirror mirror;
    private final HostMapping mapping;
    private final long pages;
    /**
     * The view as programs get it: the region's own bytes. The mapping under it is at least a page
     * (a region of 100 bytes has one), and a segment of the whole page let stores past the region's
     * end through where {@code Region.segment()} promises a segment of its size (from a review).
     */
    private final MemorySegment segment;

    public UserfaultfdSide(HostMirror mirror, long bytes) {
        this.mirror = mirror;
        this.mapping = HostMapping.adopt(mirror.viewAddress(), bytes);
        this.pages = pagesFor(bytes);
        this.segment = mirror.viewSegment().asSlice(0, bytes);
    }

    /** The mirror itself, for tests that check the state words. */
    public HostMirror mirror() {
        return mirror;
    }

    @Override
    public HostMapping mapping() {
        return mapping;
    }

    @Override
    public long address() {
        return mirror.viewAddress();
    }

    @Override
    public MemorySegment segment(Object owner) {
        return segment;
    }

    @Override
    public void leave(long page, long count) {
        mirror.leave(page, count);
    }

    @Override
    public void awaitFaultsRead() {
        mirror.awaitServed();
    }

    @Override
    public void writeProtect(long page, long count) {
        mirror.sync(page, (int) count, HostMirror.Want.HOST_READ_ONLY_COPIED, null);
    }

    @Override
    public void copyHome(long page, int count, DeviceDriver from, int[] frames, CopyBatch batch) {
        // into the view by the fault service's own ioctl, under its page locks, so that a page the
        // service takes home meanwhile is not overwritten with older data
        long[] sources = new long[count];
        for (int i = 0; i < count; i++) {
            sources[i] = from.hostAddress(frames[i]);
        }
        mirror.home(page, count, sources);
    }

    @Override
    public void sync(Block b, int p0, int p1, DeviceDriver[] drivers, ReadOnly readOnly) {
        sync(b, p0, p1, drivers, readOnly, HostMirror.Want.AWAY);
    }

    @Override
    public void syncLoaded(Block b, int p0, int p1, DeviceDriver[] drivers, ReadOnly readOnly) {
        sync(b, p0, p1, drivers, readOnly, HostMirror.Want.LOADED);
    }

    /** {@code away}: what pages only devices hold become, AWAY or (a load's commit) LOADED. */
    private void sync(Block b, int p0, int p1, DeviceDriver[] drivers, ReadOnly readOnly, HostMirror.Want away) {
        long base = firstPage(b.index());
        int p = p0;
        while (p < p1) {
            int holders = b.residentMask(p);
            boolean hostWrites = (holders & 1) != 0 && b.isWritable(0, p);
            int q = p + 1;
            while (q < p1 && b.residentMask(q) == holders && ((holders & 1) == 0 || b.isWritable(0, q) == hostWrites)) {
                q++;
            }
            if ((holders & 1) != 0) {
                boolean ro = !hostWrites || readOnly.any(base + p, base + q);
                mirror.sync(base + p, q - p, ro ? HostMirror.Want.HOST_READ_ONLY : HostMirror.Want.HOST, null);
            } else if (holders != 0) {
                int n = Integer.numberOfTrailingZeros(holders);
                long[] sources = new long[q - p];
                for (int i = 0; i < q - p; i++) {
                    sources[i] = drivers[n].hostAddress(b.frame(n, p + i));
                }
                mirror.sync(base + p, q - p, away, sources);
            } else {
                mirror.sync(base + p, q - p, HostMirror.Want.EMPTY, null);
            }
            p = q;
        }
    }

    @Override
    public void release(long[] ranges, int count) {
        // nothing: sync drops the host frames of pages that left (the service must see them go)
    }

    @Override
    public long retainedBytes() {
        return 0;   // a page that left must fault on its next touch: its frame goes at once, in sync
    }

    @Override
    public boolean releasesFrames() {
        return false;
    }

    @Override
    public void discard(long offset, long bytes) {
        // the engine's sync emptied the pages, but not those the service took home as a fault's
        // neighbours since the discard looked (a sync leaves pages the host took alone): their old
        // bytes would be taken as the pages' truth later. The block locks are held
        long first = offset >>> PAGE_SHIFT;
        long end = first + pagesFor(bytes);
        for (long p = first; p < end; ) {
            long stop = Math.min(end, (p / BLOCK_PAGES + 1) * BLOCK_PAGES);
            mirror.sync(p, (int) (stop - p), HostMirror.Want.DISCARD, null);
            p = stop;
        }
    }

    @Override
    public long[] collect(long block, long[] busyTaken) {
        return mirror.collect(block, busyTaken);
    }

    @Override
    public void uncollect(long block, long[] taken) {
        mirror.uncollect(block, taken);
    }

    @Override
    public void granularity(long from, long to, int pageShift) {
        mirror.granule(from, to - from, pageShift);
    }

    @Override
    public boolean takesPagesOnItsOwn() {
        return true;
    }

    @Override
    public boolean takeAnySteals() {
        return mirror.takeAnySteals();
    }

    @Override
    public boolean stolenIn(long from, long to, boolean busyToo) {
        for (long bi = blockOf(from); bi <= blockOf(to - 1); bi++) {
            if (!mirror.hasSteals(bi)) {
                continue;
            }
            long end = Math.min(to, firstPage(bi + 1));
            for (long p = Math.max(from, firstPage(bi)); p < end; p++) {
                long st = mirror.state(p);
                if ((st & HostMirror.STOLEN) != 0 && (!busyToo || (st & HostMirror.BUSY) != 0)) {
                    return true;
                }
            }
        }
        return false;
    }

    @Override
    public void busy(long from, long count, boolean on) {
        mirror.busy(from, count, on);
    }

    @Override
    public boolean namesNone(DeviceDriver d, int[] frames, int count, long firstPage) {
        for (int i = 0; i < count; i++) {
            long st = mirror.state(firstPage + i);
            if ((st & HostMirror.KIND) == HostMirror.KIND_AWAY && (st & HostMirror.STOLEN) == 0
                    && (st & HostMirror.SOURCE) == d.hostAddress(frames[i])) {
                return false;
            }
        }
        return true;
    }

    @Override
    public boolean populate(long offset, long bytes) {
        // the service installs zeroed pages in bulk, not one fault each
        long first = offset >>> PAGE_SHIFT;
        mirror.populate(first, Math.min(pages, pagesFor(offset + bytes)) - first);
        return true;
    }

    /**
     * The view of a locked block against the page table: each page's state word, and what the
     * kernel really maps (STOLEN pages wait for reconciliation).
     */
    @Override
    public void check(Block b, int count, DeviceDriver[] drivers, ReadOnly readOnly, Object owner,
                      List<String> all) {
        long base = firstPage(b.index());
        byte[] mapped = mirror.viewPages(base, count);
        List<String> problems = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            long page = base + i;
            long st = mirror.state(page);
            if ((st & (HostMirror.STOLEN | HostMirror.LOCK)) != 0) {
                // taken by the service since Java looked, or being taken now: a locked word under the
                // block lock this thread holds is the service's (between its install and its unlock the
                // view maps the page while the word still shows the old kind)
                continue;
            }
            boolean present = (mapped[i] & HostMirror.VIEW_MAPPED) != 0;
            boolean writeProtected = (mapped[i] & HostMirror.VIEW_WRITE_PROTECTED) != 0;
            long kind = st & HostMirror.KIND;
            if (present && (kind == HostMirror.KIND_AWAY || (kind == HostMirror.KIND_HOST && (st & HostMirror.HELD) == 0))) {
                problems.add(owner + " page " + page + ": the userfaultfd view maps a page the host does not hold"
                        + " (a read would not fault); its state word is 0x" + Long.toHexString(st));
                continue;
            }
            if (present && !writeProtected && (st & HostMirror.READ_ONLY) != 0) {
                problems.add(owner + " page " + page + ": the userfaultfd view maps a read-only host copy writable"
                        + "; its state word is 0x" + Long.toHexString(st));
                continue;
            }
            int holders = b.residentMask(i);
            String expected = null;
            if ((holders & 1) != 0) {
                if (kind != HostMirror.KIND_HOST || (st & HostMirror.HELD) == 0) {
                    expected = "on the host";
                } else if ((!b.isWritable(0, i) || readOnly.any(page, page + 1)) && (st & HostMirror.READ_ONLY) == 0) {
                    expected = "write-protected";
                }
            } else if (holders != 0) {
                boolean found = false;
                for (int n = 1; n < drivers.length && !found; n++) {
                    found = b.isResident(n, i) && drivers[n].hostAddress(b.frame(n, i)) == (st & HostMirror.SOURCE);
                }
                if (kind != HostMirror.KIND_AWAY || !found) {
                    expected = "pointing at a device frame that holds it";
                }
            } else if (kind != HostMirror.KIND_HOST || (st & HostMirror.HELD) != 0) {
                expected = "empty (zeros)";
            }
            if (expected != null) {
                problems.add(owner + " page " + page + ": the userfaultfd view should be " + expected
                        + "; its state word is 0x" + Long.toHexString(st));
            }
        }
        // one broken transition shows on every page it touched: a few lines say what it is
        all.addAll(problems.subList(0, Math.min(problems.size(), 8)));
        if (problems.size() > 8) {
            all.add(owner + " block " + b.index() + ": " + (problems.size() - 8) + " more pages like these");
        }
    }

    @Override
    public void kill() {
        mirror.kill();
    }

    @Override
    public void close() {
        try {
            mapping.close();
        } finally {
            mirror.close();
        }
    }
}
