package dev.hetmem.pagetable;

import java.util.concurrent.locks.ReentrantLock;

import static dev.hetmem.driver.PageGeometry.BLOCK_PAGES;
import static dev.hetmem.driver.PageGeometry.BLOCK_SHIFT;

/**
 * One 2 MiB block of a region's logical page table: the unit of locking and of device allocation
 * (NVIDIA UVM's va_block). For each node it keeps a residency bitmap and a write bitmap of its 512
 * pages, and on devices the frames that back them.
 *
 * <p>Invariant (checked by {@link PageTable#checkInvariants}): a page is writable on exactly one
 * node, or read-only on one or more nodes, or resident nowhere (never touched, or discarded). A
 * writable page is resident where it is writable. A page resident nowhere reads as zeros
 * everywhere: its host frame is zero or absent.
 *
 * <p>Every read or write of the bitmaps and frames happens with {@link #lock} held (lock L6; its
 * order and what may be waited on under it: docs/design.md, lock table).
 */
public final class Block {
    static final int WORDS = BLOCK_PAGES / 64;
    static final long BITMAP_BYTES = 16 + 8L * WORDS;

    /** Lock L6 (block): docs/design.md, lock table, L6. Taken in ascending (region id, block index) order by BlockLocks; tryLock otherwise. */
    public final ReentrantLock lock = new ReentrantLock();
    private final PageTable table;
    private final long index;
    private final long[][] resident;
    private final long[][] writable;
    private final DeviceFrames[] frames;
    /** Per device: pages it maps remotely from the host (ACCESSED_BY), and which of those writably. */
    private final long[][] remote;
    private final long[][] remoteWritable;
    /**
     * Pages that hold zeros because a read brought them into being on a device (a prefetch of
     * untouched memory) and that nobody has been able to write since: they are mapped read-only
     * everywhere, so eviction can drop them (they read as zeros again) instead of copying zeros
     * home. Null while no page is such. Cleared for a page as soon as any node may write it.
     */
    private long[] zero;
    /**
     * Per device: pages it holds exclusively for atomics (a launch argument with
     * {@code Access.EXCLUSIVE}; the kernel's make_device_exclusive). Set only where the device may
     * write the page, locally or remotely, with nobody else holding or mapping it. Cleared for a
     * device with its write access to the page: every change that takes the page or its write
     * permission from the device (a move, a duplicate, a steal by the host, a drop, protection)
     * goes through the methods below, and each ends the exclusivity as the host's touch ends it
     * in the kernel. Null while the block has none.
     */
    private long[][] exclusive;
    /** Last time (System.nanoTime) a fault or launch touched this block; eviction picks the oldest. */
    private volatile long lastAccessNanos;
    /** Thrashing detection (under {@link #lock}): where the block last moved to, when, and how often it bounced. */
    private int lastTarget = -1;
    private long lastMoveNanos;
    private int bounces;
    /**
     * The block stays home, devices reaching it remotely, for {@code holdForNanos} from
     * {@code holdSinceNanos} (System.nanoTime); 0 when not thrashing. Kept as a start and a length,
     * not an end, so that the test is a difference of two nanoTime values, as the clock's contract
     * asks (an end past Long.MAX_VALUE would wrap and never hold). Written under {@link #lock},
     * length last; read without it, length first.
     */
    private volatile long holdSinceNanos;
    private volatile long holdForNanos;

    Block(PageTable table, long index, int nodes) {
        this.table = table;
        this.index = index;
        this.resident = new long[nodes][];
        this.writable = new long[nodes][];
        this.frames = new DeviceFrames[nodes];
        this.remote = new long[nodes][];
        this.remoteWritable = new long[nodes][];
    }

    static long baseBytes(int nodes) {
        // object + lock (ReentrantLock and its sync) + five per-node reference arrays
        return 48 + 48 + 5 * (16 + 4L * nodes);
    }

    /** Whether {@code node} maps the page remotely (from the host), and with write permission. */
    public boolean isRemote(int node, int page) {
        return Bits.get(remote[node], page);
    }

    public boolean isRemoteWritable(int node, int page) {
        return Bits.get(remoteWritable[node], page);
    }

    /** Bit mask of the devices mapping the page remotely. */
    public int remoteMask(int page) {
        return mask(remote, page);
    }

    /** Bit n set where {@code bitmaps[n]} has the page. */
    private static int mask(long[][] bitmaps, int page) {
        int mask = 0;
        for (int n = 0; n < bitmaps.length; n++) {
            if (Bits.get(bitmaps[n], page)) {
                mask |= 1 << n;
            }
        }
        return mask;
    }

    /**
     * Whether [from, to) is uniform in {@code bits} (all set or none) and, where set, in
     * {@code writeBits} too.
     */
    private static boolean uniform(long[] bits, long[] writeBits, int from, int to) {
        boolean on = Bits.get(bits, from);
        if (on ? !Bits.all(bits, from, to) : Bits.count(bits, from, to) != 0) {
            return false;
        }
        if (!on) {
            return true;
        }
        boolean w = Bits.get(writeBits, from);
        return w ? Bits.all(writeBits, from, to) : Bits.count(writeBits, from, to) == 0;
    }

    /** Marks pages [from, from+count) exclusive to {@code node}; the caller checked that they may be (see {@link #exclusive}). */
    public void setExclusiveRange(int node, int from, int count) {
        assert lock.isHeldByCurrentThread();
        if (exclusive == null) {
            exclusive = new long[resident.length][];
        }
        if (exclusive[node] == null) {
            exclusive[node] = new long[WORDS];
            table.addMetadata(BITMAP_BYTES);
        }
        Bits.setRange(exclusive[node], from, from + count);
    }

    /** Whether any page of this block is exclusive to any device. */
    public boolean hasExclusive() {
        long[][] e = exclusive;
        if (e != null) {
            for (long[] bits : e) {
                if (bits != null) {
                    return true;
                }
            }
        }
        return false;
    }

    /** Whether {@code node} holds the page exclusively (see {@link #exclusive}). */
    public boolean isExclusive(int node, int page) {
        long[][] e = exclusive;
        return e != null && Bits.get(e[node], page);
    }

    /** Whether a node other than {@code node} holds any page of [from, from+count) exclusively. */
    public boolean exclusiveToAnotherThan(int node, int from, int count) {
        long[][] e = exclusive;
        if (e == null) {
            return false;
        }
        for (int n = 0; n < e.length; n++) {
            if (n != node && e[n] != null && Bits.count(e[n], from, from + count) > 0) {
                return true;
            }
        }
        return false;
    }

    /** Ends {@code node}'s exclusivity over pages [from, from+count), if it had any. */
    public void endExclusive(int node, int from, int count) {
        if (exclusive == null || exclusive[node] == null) {
            return;
        }
        Bits.clearRange(exclusive[node], from, from + count);
        if (Bits.count(exclusive[node]) == 0) {
            exclusive[node] = null;
            table.addMetadata(-BITMAP_BYTES);
        }
    }

    /** Records that {@code node} maps pages [from, from+count) of the host remotely. */
    public void setRemoteRange(int node, int from, int count, boolean writableThere) {
        assert lock.isHeldByCurrentThread();
        if (remote[node] == null) {
            remote[node] = new long[WORDS];
            remoteWritable[node] = new long[WORDS];
            table.addMetadata(2 * BITMAP_BYTES);
        }
        Bits.setRange(remote[node], from, from + count);
        for (int other = 1; other < remote.length; other++) {
            if (other != node) {
                endExclusive(other, from, count);   // another device reaches the host's copy now
            }
        }
        if (writableThere) {
            Bits.setRange(remoteWritable[node], from, from + count);
        } else {
            Bits.clearRange(remoteWritable[node], from, from + count);
            endExclusive(node, from, count);   // no write there any more, so no exclusive write (as everywhere else)
        }
    }

    /** Forgets {@code node}'s remote mappings of pages [from, from+count); returns how many there were. */
    public int clearRemoteRange(int node, int from, int count) {
        assert lock.isHeldByCurrentThread();
        if (remote[node] == null) {
            return 0;
        }
        int n = Bits.clearRange(remote[node], from, from + count);
        Bits.clearRange(remoteWritable[node], from, from + count);
        endExclusive(node, from, count);
        if (Bits.count(remote[node]) == 0) {
            remote[node] = null;
            remoteWritable[node] = null;
            table.addMetadata(-2 * BITMAP_BYTES);
        }
        return n;
    }

    public void clearRemoteWritableRange(int node, int from, int count) {
        assert lock.isHeldByCurrentThread();
        Bits.clearRange(remoteWritable[node], from, from + count);
        endExclusive(node, from, count);
    }

    public long index() {
        return index;
    }

    /** Region offset of this block's first byte. */
    public long offset() {
        return index << BLOCK_SHIFT;
    }

    public PageTable table() {
        return table;
    }

    /**
     * Records that pages of this block moved to {@code target}; returns true when that makes it
     * thrash: the third move between different nodes, each within {@code windowNanos} of the last.
     * A thrashing block stays home for {@code holdNanos} from {@code now}.
     */
    public boolean recordMove(int target, long now, long windowNanos, long holdNanos) {
        assert lock.isHeldByCurrentThread();
        if (target == lastTarget) {
            return false;   // another run of the same move (a batch records each of its runs)
        }
        boolean bounce = lastTarget >= 0 && now - lastMoveNanos < windowNanos;
        bounces = bounce ? bounces + 1 : 0;
        lastTarget = target;
        lastMoveNanos = now;
        if (bounces >= 3) {
            bounces = 0;
            holdForNanos = 0;
            holdSinceNanos = now;
            holdForNanos = holdNanos;
            return true;
        }
        return false;
    }

    /** Whether the block is held home because it thrashed. */
    public boolean heldHome(long now) {
        long hold = holdForNanos;
        return hold != 0 && now - holdSinceNanos < hold;
    }

    public void touch(long nanos) {
        lastAccessNanos = nanos;
    }

    public long lastAccessNanos() {
        return lastAccessNanos;
    }

    public boolean isResident(int node, int page) {
        return Bits.get(resident[node], page);
    }

    public boolean isWritable(int node, int page) {
        return Bits.get(writable[node], page);
    }

    /** Bit mask of the nodes holding the page (bit n for node n); 0 when resident nowhere. */
    public int residentMask(int page) {
        return mask(resident, page);
    }

    /** The node where the page is writable, or -1. */
    public int writer(int page) {
        for (int n = 0; n < writable.length; n++) {
            if (Bits.get(writable[n], page)) {
                return n;
            }
        }
        return -1;
    }

    /** True when every page in [from, to) is resident on node (and writable there, if asked). */
    public boolean allAt(int node, int from, int to, boolean writableThere) {
        return Bits.all(writableThere ? writable[node] : resident[node], from, to);
    }

    public int residentCount(int node) {
        return Bits.count(resident[node]);
    }

    public int residentCount(int node, int from, int to) {
        return Bits.count(resident[node], from, to);
    }

    /** Marks the page resident on node (and writable there if asked); keeps counts and metadata. */
    public void addResident(int node, int page, boolean writableThere) {
        assert lock.isHeldByCurrentThread();
        if (resident[node] == null) {
            resident[node] = new long[WORDS];
            writable[node] = new long[WORDS];
            table.addMetadata(2 * BITMAP_BYTES);
            table.gained(this, node);
        }
        if (Bits.set(resident[node], page)) {
            table.residentChanged(node, 1);
        }
        if (writableThere) {
            Bits.set(writable[node], page);
        } else {
            Bits.clear(writable[node], page);
            endExclusive(node, page, 1);
        }
    }

    /** Removes the page from node; returns whether it was there. Drops empty per-node state. */
    public boolean removeResident(int node, int page) {
        assert lock.isHeldByCurrentThread();
        if (!Bits.clear(resident[node], page)) {
            return false;
        }
        Bits.clear(writable[node], page);
        endExclusive(node, page, 1);
        table.residentChanged(node, -1);
        dropIfEmpty(node);
        return true;
    }

    /**
     * If every page of [from, to) is in the same state (the same holders, the same writer),
     * returns its holders mask, else -1. Word-level: a whole block in one state costs a few
     * bitmap checks per node, not a look at each page.
     */
    public int uniformHolders(int from, int to) {
        for (int n = 0; n < resident.length; n++) {
            if (!uniform(resident[n], writable[n], from, to)) {
                return -1;
            }
        }
        return residentMask(from);
    }

    /** True if every page of [from, to) has the same remote mappings (the same devices, the same permission). */
    public boolean uniformRemote(int from, int to) {
        for (int n = 1; n < remote.length; n++) {
            if (remote[n] != null && !uniform(remote[n], remoteWritable[n], from, to)) {
                return false;
            }
        }
        return true;
    }

    public boolean hasRemoteOn(int node) {
        return remote[node] != null;
    }

    /** Records frames[0..count) as the frames of pages [first, first+count) on a device node. */
    public void setFrames(int node, int first, int[] frames, int count) {
        for (int i = 0; i < count; i++) {
            setFrame(node, first + i, frames[i]);
        }
    }

    /** Marks pages [from, from+count) resident and writable on node: one call per run, word-level. */
    public void addResidentRange(int node, int from, int count) {
        addResidentRange(node, from, count, true);
    }

    /** Takes write permission for pages [from, from+count) away from node; they stay resident. */
    public void clearWritableRange(int node, int from, int count) {
        assert lock.isHeldByCurrentThread();
        Bits.clearRange(writable[node], from, from + count);
        endExclusive(node, from, count);
    }

    /** Marks pages [from, from+count) resident on node, writable there or read-only. */
    public void addResidentRange(int node, int from, int count, boolean writableThere) {
        assert lock.isHeldByCurrentThread();
        if (resident[node] == null) {
            resident[node] = new long[WORDS];
            writable[node] = new long[WORDS];
            table.addMetadata(2 * BITMAP_BYTES);
            table.gained(this, node);
        }
        int added = Bits.setRange(resident[node], from, from + count);
        if (writableThere) {
            Bits.setRange(writable[node], from, from + count);
            clearZero(from, count);
        } else {
            Bits.clearRange(writable[node], from, from + count);
            endExclusive(node, from, count);
        }
        if (added != 0) {
            table.residentChanged(node, added);
        }
    }

    /** Removes pages [from, from+count) from node, word-level; drops empty per-node state. */
    public void removeResidentRange(int node, int from, int count) {
        assert lock.isHeldByCurrentThread();
        int removed = Bits.clearRange(resident[node], from, from + count);
        if (removed == 0) {
            return;
        }
        Bits.clearRange(writable[node], from, from + count);
        endExclusive(node, from, count);
        table.residentChanged(node, -removed);
        dropIfEmpty(node);
    }

    /** Frees the node's bitmaps and frame map once it holds no page of this block. */
    private void dropIfEmpty(int node) {
        if (!Bits.isEmpty(resident[node])) {
            return;
        }
        resident[node] = null;
        writable[node] = null;
        long freed = 2 * BITMAP_BYTES;
        if (frames[node] != null) {
            freed += frames[node].inflated() ? DeviceFrames.INFLATED_BYTES : DeviceFrames.COMPACT_BYTES;
            frames[node] = null;
        }
        table.addMetadata(-freed);
        table.lost(this, node);
    }

    /** Marks pages [from, from+count) as zeros nobody has written (see {@link #zero}). */
    public void setZeroRange(int from, int count) {
        assert lock.isHeldByCurrentThread();
        if (zero == null) {
            zero = new long[WORDS];
        }
        Bits.setRange(zero, from, from + count);
    }

    public void clearZero(int from, int count) {
        assert lock.isHeldByCurrentThread();
        if (zero != null) {
            Bits.clearRange(zero, from, from + count);
        }
    }

    /** Whether the page holds zeros nobody has written since a read created it. */
    public boolean isZero(int page) {
        return zero != null && Bits.get(zero, page);
    }

    public void setWritable(int node, int page, boolean value) {
        assert lock.isHeldByCurrentThread();
        if (value) {
            clearZero(page, 1);
            Bits.set(writable[node], page);
        } else {
            Bits.clear(writable[node], page);
            endExclusive(node, page, 1);
        }
    }

    /** The device frame backing the page on a device node; only meaningful when resident there. */
    public int frame(int node, int page) {
        DeviceFrames f = frames[node];
        if (f == null) {
            throw new IllegalStateException("block " + index + " has no frames on node " + node);
        }
        return f.get(page);
    }

    public void setFrame(int node, int page, int frame) {
        assert lock.isHeldByCurrentThread();
        DeviceFrames f = frames[node];
        if (f == null) {
            f = frames[node] = new DeviceFrames();
            table.addMetadata(DeviceFrames.COMPACT_BYTES);
        }
        table.addMetadata(f.set(page, frame));
    }

    /** True if any node other than host has pages here. */
    public boolean hasPagesOn(int node) {
        return resident[node] != null;
    }

    public int nodes() {
        return resident.length;
    }
}
