package dev.hetmem.host;

import dev.hetmem.driver.CopyBatch;
import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.pagetable.Block;

import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * How one region's host copy is reached by host code and kept in line with the logical page
 * table: the host side of the migration engine, chosen once when the memory is built
 * ({@link HostSides}), so that no core class asks which mode it runs in.
 *
 * <p>Two implementations:
 * <ul>
 *   <li>{@link HostViewSide}, host views: host code touches pages only under an open view, which
 *       pins them home, so the host copy needs no protection of its own; host frames of pages that
 *       left are handed back to the kernel.</li>
 *   <li>{@code fault.UserfaultfdSide}, HMM's CPU-fault side done with userfaultfd: every load or
 *       store of the region works; pages not on the host are missing from the view, and a native
 *       service brings them home on a fault, on its own, marking them STOLEN until the engine
 *       {@link #collect}s them.</li>
 * </ul>
 *
 * <p>Caller's contract: every call that names pages is made by the migration engine with the
 * block locks of those pages held (so the page table does not change underneath), except
 * {@link #busy} (with a pin, L3, taken or released, with or without block locks held),
 * {@link #populate} (by the loader's threads under its write view, without block locks) and the
 * lifecycle calls {@link #kill} and {@link #close}, made once the region's lifecycle has drained.
 * Locks: docs/design.md, lock table (L3, L6, L16).
 * Page numbers are region pages ({@link dev.hetmem.driver.PageGeometry}); a range passed with a
 * {@code Block} stays inside that block.
 */
public interface HostSide extends AutoCloseable {

    /** Whether pages [from, to) of the region are read-only by its range attributes. */
    @FunctionalInterface
    interface ReadOnly {
        boolean any(long fromPage, long toPage);
    }

    /** The host mapping that holds the region's host copy (its base is every node's address of page 0). */
    HostMapping mapping();

    /** What native code is given: where loads and stores of the region go. */
    long address();

    /**
     * The whole region as one segment for plain loads and stores; throws naming {@code owner}
     * where host code must use host views instead.
     */
    MemorySegment segment(Object owner);

    /** Pages [page, page+count) are about to be copied off the host: a host write from now on must not be lost. */
    void leave(long page, long count);

    /**
     * Returns once every host fault this side has read but not yet served is served (the
     * userfaultfd side: SERVED_BEFORE_LEAVE in hetmem_uffd.c). Called before pages a device mapped
     * in place leave the host or lose write, after that device's entries are gone: a work item's
     * access through such an entry faults like host code, and its fault, read before the access
     * completed and served after the page left, would take the page back for the host. Host views
     * take no faults: nothing to wait for.
     */
    default void awaitFaultsRead() {
    }

    /** The host copy of [page, page+count) stays but loses write (a read-only duplicate is being made). */
    void writeProtect(long page, long count);

    /**
     * Adds the copy home of [page, page+count) from {@code from}'s {@code frames} (one per page):
     * either into {@code batch} (host-address destinations, run by the engine with its copy
     * threads) or at once into the host copy by the side's own means.
     */
    void copyHome(long page, int count, DeviceDriver from, int[] frames, CopyBatch batch);

    /**
     * {@link #copyHome} of {@code n} runs of one batch from one device at once: run i is pages
     * [firstPages[i], firstPages[i]+counts[i]) in {@code frames[i]}. A side with per-call work
     * (a lock, a lookup) does it once for all of them: a batch of scattered 4 KiB pages has
     * thousands of runs.
     */
    default void copyHomeAll(long[] firstPages, int[] counts, int[][] frames, int n, DeviceDriver from, CopyBatch batch) {
        for (int i = 0; i < n; i++) {
            copyHome(firstPages[i], counts[i], from, frames[i], batch);
        }
    }

    /**
     * The page table changed for pages [p0, p1) of locked block {@code b}: make what host code
     * sees agree with it (mapped, read-only, away on a device, or empty).
     */
    void sync(Block b, int p0, int p1, DeviceDriver[] drivers, ReadOnly readOnly);

    /**
     * {@link #sync} for pages [p0, p1) of locked block {@code b} that the caller's batch copied home
     * ({@link #copyHomeAll} ran for them in its copy phase, and their block has stayed locked since,
     * so no other batch moved them meanwhile) and that are now the host's alone: a side may skip
     * what that copy home already did. By default the same as {@link #sync}.
     */
    default void syncCopiedHome(Block b, int p0, int p1, DeviceDriver[] drivers, ReadOnly readOnly) {
        sync(b, p0, p1, drivers, readOnly);
    }

    /**
     * {@link #sync} at the commit of a load that filled pages [p0, p1) of locked block {@code b} on a
     * device: pages host code took since the engine looked (untouched then: taken as zeros) are the
     * device's too, their host copies dropped, in the same step that makes the others the device's,
     * so that a page taken after it is a copy of the loaded bytes. Where host code takes no page on
     * its own, the same as {@link #sync}.
     */
    default void syncLoaded(Block b, int p0, int p1, DeviceDriver[] drivers, ReadOnly readOnly) {
        sync(b, p0, p1, drivers, readOnly);
    }

    /**
     * Host frames of pages that are no longer the host's (moved off, or a copy that did not
     * finish), as {@code count} (offset, length) byte pairs: handed back to the kernel where the
     * side does not already drop them in {@link #sync}.
     */
    void release(long[] ranges, int count);

    /**
     * {@link #release}, where the chunks (2 MiB blocks, by index within the region) listed in
     * {@code vacated[0..vacatedCount)} hold no page of the host any more once the batch that left
     * them (or dropped their last host pages): a chunk of them that keeps frames goes back at once,
     * its whole range, though its pages did not all leave through a kept frame (some never were the
     * host's, or were dropped). The caller holds those blocks' locks until this returns, so no page
     * of them becomes the host's meanwhile. {@code ranges} may be empty ({@code count} 0).
     */
    default void release(long[] ranges, int count, long[] vacated, int vacatedCount) {
        release(ranges, count);
    }

    /** Bytes of host frames of pages that left, kept mapped until released by the chunk ({@link RetainedFrames}); 0 where none are kept. */
    long retainedBytes();

    /** Whether {@link #release} hands frames back (false: {@link #sync} already did, and gathering them is waste). */
    boolean releasesFrames();

    /**
     * Pages discarded (DONT_NEED), after the engine synced them empty under their block locks:
     * their host frames read as zeros again, also where the host took a page since the engine
     * looked (userfaultfd: a fault's neighbour copied home).
     */
    void discard(long offset, long bytes);

    /**
     * Pages of block {@code block} that host code took home on its own since the last call, as a
     * 512-bit mask, or null if none. Pages a running kernel holds ({@link #busy}) are left for
     * later, except those whose bit is set in {@code busyTaken} (a 512-bit mask, or null for
     * none): for those the caller (holding the block's lock) has made sure no kernel that holds
     * them can reach their device copies except through translations the engine's invalidation
     * waits for (a faulting launch's; never a pinned kernel's).
     */
    long[] collect(long block, long[] busyTaken);

    /**
     * Pages of block {@code block} that {@link #collect} reported (a 512-bit mask) and the caller
     * could not take into its page table: reported again by the next collect.
     */
    void uncollect(long block, long[] taken);

    /**
     * Pages [from, to) have granules of 2^{@code pageShift} pages (Advice.granularity): a fault
     * service brings that granule home around a host fault there. Called under the attribute
     * lock (L7) right before the attributes change, so both change in the same order, and a
     * failure here changes neither.
     */
    void granularity(long from, long to, int pageShift);

    /**
     * Whether host code can take pages home without the engine (a fault service): false means
     * {@link #collect} and {@link #takeAnySteals} never report anything, so callers may skip them.
     */
    boolean takesPagesOnItsOwn();

    /** Whether host code may have taken pages anywhere in the region since the last call (the answer clears). */
    boolean takeAnySteals();

    /** Whether pages of [from, to) were taken by host code and not yet collected; {@code busyToo}: only those a kernel holds. */
    boolean stolenIn(long from, long to, boolean busyToo);

    /** A running kernel holds (or no longer holds) pages [from, from+count). */
    void busy(long from, long count, boolean on);

    /** For an assertion before device frames are freed: no host-side state still names any of them. */
    boolean namesNone(DeviceDriver driver, int[] frames, int count, long firstPage);

    /** Makes host pages of [offset, offset+bytes) present and writable in bulk (the loader); false if it could not. */
    boolean populate(long offset, long bytes);

    /** verify(): checks the host side of locked block {@code b} against the page table, adding what is wrong. */
    void check(Block b, int pages, DeviceDriver[] drivers, ReadOnly readOnly, Object owner, List<String> problems);

    /** The region is being freed and nothing runs on it: from now on no host access may read a device frame. */
    void kill();

    /** Unmaps the host copy (after {@link #kill} and after every device frame is gone). */
    @Override
    void close();
}
