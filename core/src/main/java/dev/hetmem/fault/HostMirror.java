package dev.hetmem.fault;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static dev.hetmem.driver.PageGeometry.BLOCK_PAGES;

/**
 * A userfaultfd region's host side: the view (one anonymous mapping that programs touch and
 * hetmem reads) and the per-page state words shared with the native fault service. The view
 * mirrors the logical page table's host column as a device page table mirrors its own: the
 * migration engine, holding the block locks, calls {@link #leave} before copying host pages out,
 * {@link #home} to copy device pages in, and {@link #sync} once the page table has changed. The
 * service, which takes no Java lock, may take a page home on its own in between; such pages are
 * marked STOLEN and left alone by every call here until the engine {@link #collect}s them and
 * updates the page table, except the two that overrule them: {@link Want#DISCARD} (DONT_NEED drops
 * them) and {@link Want#LOADED} (a load's bytes replace them).
 *
 * <p>Only the service and the calls here make a page of the view present (by userfaultfd
 * ioctls, under the page's lock): hetmem's Java code reads the view but never writes a page
 * it has not been handed writable by {@link #sync}.
 *
 * <p>Every method is one downcall that takes and releases its page locks before returning.
 */
/* Its monitor is lock L13 (mirror): docs/design.md, lock table, L13. */
public final class HostMirror implements AutoCloseable {
    /** What a range of pages should look like from the host: hm_sync's kinds, WANT_* in hetmem_uffd_layout.h. */
    public enum Want {
        HOST(0), HOST_READ_ONLY(1), AWAY(2), EMPTY(3),
        /** After an EMPTY of the same pages: those the service took home since become empty too (DONT_NEED drops their bytes). */
        DISCARD(4),
        /** As AWAY, and the pages the service took home since the engine looked too: a load's bytes win over its zeros. */
        LOADED(5),
        /** As HOST_READ_ONLY, for pages a copy is about to read (a read duplicate): those with nothing mapped get zeros to read. */
        HOST_READ_ONLY_COPIED(6);

        /** The code the C side knows it by. */
        final int code;

        Want(int code) {
            this.code = code;
        }
    }

    // The state word, drawn in hetmem_uffd_layout.h (the one definition; StateWordLayoutTest checks these).
    /** Held by the C side while it changes the word or the page's mapping. */
    public static final long LOCK = 1;
    public static final long KIND = 6;
    public static final long KIND_HOST = 0;
    public static final long KIND_AWAY = 2;
    public static final long KIND_LEAVING = 4;
    public static final long READ_ONLY = 8;
    public static final long STOLEN = 16;
    public static final long HELD = 32;
    /** The view maps the page (a hint the C side keeps). */
    public static final long MAPPED = 64;
    /** How many running kernels hold the page (bits 7-11). */
    public static final long BUSY = 0xF80L;
    public static final long SOURCE = ~0xFFFL;

    /** {@link #viewPages} bits: the view maps the page; the mapping is write-protected. */
    public static final int VIEW_MAPPED = 1;
    public static final int VIEW_WRITE_PROTECTED = 2;

    private static final VarHandle STATE = JAVA_LONG.varHandle();
    private static final VarHandle FLAG = JAVA_BYTE.varHandle();

    private final FaultLibrary lib;
    private final MemorySegment handle;
    private final long view;
    private final MemorySegment state;
    private final MemorySegment flags;
    private final Arena viewArena = Arena.ofShared();
    private final MemorySegment viewSegment;
    private final long blocks;
    private boolean destroyed;

    HostMirror(FaultLibrary lib, MemorySegment handle, long view, long stateAddress, long flagsAddress,
               long length, long pages) {
        this.lib = lib;
        this.handle = handle;
        this.view = view;
        this.state = MemorySegment.ofAddress(stateAddress).reinterpret(Math.max(1, pages) * 8);
        this.blocks = Math.ceilDiv(pages, BLOCK_PAGES);
        this.flags = MemorySegment.ofAddress(flagsAddress).reinterpret(blocks + 1);
        this.viewSegment = MemorySegment.ofAddress(view).reinterpret(length, viewArena, null);
    }

    /** Where programs touch the region, and hetmem reads its host pages. */
    public long viewAddress() {
        return view;
    }

    /** The whole view; invalid once the region is freed. */
    public MemorySegment viewSegment() {
        return viewSegment;
    }

    /**
     * Pages [first, first + count) have granules of 2^{@code pageShift} pages: a host fault there
     * brings that granule home (Advice.granularity). Called under the range's attribute lock.
     */
    public void granule(long first, long count, int pageShift) {
        int rc;
        try {
            rc = (int) lib.regionGranule.invokeExact(handle, first, count, pageShift);
        } catch (Throwable t) {
            throw FaultService.rethrow(t);
        }
        check("setting the granule", rc, first, count);
    }

    /**
     * Pages [first, first+count) (at most 512) are about to be copied off the host: they stay
     * readable, and a write from now on faults (the service then gives the page back to the host).
     */
    public void leave(long first, long count) {
        onRange("leave", lib.leave, first, count);
    }

    /**
     * Copies AWAY pages (at most 512) home into the view from {@code sources[i]} (host-readable
     * device frames), write-protected until {@link #sync} says what the host may do with them.
     */
    public void home(long first, int count, long[] sources) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocateFrom(JAVA_LONG, sources);
            int rc = (int) lib.home.invokeExact(handle, first, (long) count, s);
            check("home", rc, first, count);
        } catch (Throwable t) {
            throw FaultService.rethrow(t);
        }
    }

    /**
     * Gives the host-held pages of [first, first+count) that read as zeros and are not mapped a
     * zeroed writable page each, in bulk: for a writer about to fill them all (the loader), which
     * would otherwise take one fault per granule.
     */
    public void populate(long first, long count) {
        onRange("populate", lib.populate, first, count);
    }

    /** One downcall {@code int f(region, first, count)}, its failure thrown with what it was. */
    private void onRange(String what, MethodHandle f, long first, long count) {
        int rc;
        try {
            rc = (int) f.invokeExact(handle, first, count);
        } catch (Throwable t) {
            throw FaultService.rethrow(t);
        }
        check(what, rc, first, count);
    }

    /** Makes pages [first, first+count) (at most 512) look as {@code want} says from the host. */
    public void sync(long first, int count, Want want, long[] sources) {
        if (sources == null) {
            // the common case on every commit: no off-heap copy of anything to make
            sync(first, count, want, MemorySegment.NULL);
            return;
        }
        try (Arena a = Arena.ofConfined()) {
            sync(first, count, want, a.allocateFrom(JAVA_LONG, sources));
        }
    }

    private void sync(long first, int count, Want want, MemorySegment sources) {
        int rc;
        try {
            rc = (int) lib.sync.invokeExact(handle, first, (long) count, want.code, sources);
        } catch (Throwable t) {
            throw FaultService.rethrow(t);
        }
        check("sync", rc, first, count);
    }

    /**
     * Whether the service may have taken pages anywhere in the region since the last call; the
     * answer clears, so a caller that gets true must then collect every block.
     */
    public boolean takeAnySteals() {
        if ((byte) FLAG.getAcquire(flags, blocks) == 0) {
            return false;
        }
        FLAG.setRelease(flags, blocks, (byte) 0);
        return true;
    }

    /** Whether the service may have taken pages of this 2 MiB block since the last {@link #collect}. */
    public boolean hasSteals(long block) {
        return (byte) FLAG.getAcquire(flags, block) != 0;
    }

    /**
     * The pages of a block the service took home (or let the host write) since the last call,
     * as a 512-bit mask, or null if none; pages a running kernel holds (BUSY) are reported after it
     * ends, except those whose bit in {@code busyTaken} (a 512-bit mask, or null for none) is set:
     * the caller knows no kernel can still reach their device copies without the engine's
     * invalidation (only faulting launches hold them; see StealReconciler).
     */
    public long[] collect(long block, long[] busyTaken) {
        if (!hasSteals(block)) {
            return null;
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(JAVA_LONG, 8);
            MemorySegment busy = busyTaken == null ? MemorySegment.NULL : a.allocateFrom(JAVA_LONG, busyTaken);
            int n = (int) lib.collect.invokeExact(handle, block, out, busy);
            return n == 0 ? null : out.toArray(JAVA_LONG);
        } catch (Throwable t) {
            throw FaultService.rethrow(t);
        }
    }

    /**
     * Pages of a block that {@link #collect} reported and the engine could not take into its page
     * table (a 512-bit mask): marked STOLEN again, so that the next collect reports them again.
     */
    public void uncollect(long block, long[] taken) {
        try (Arena a = Arena.ofConfined()) {
            lib.uncollect.invokeExact(handle, block, a.allocateFrom(JAVA_LONG, taken));
        } catch (Throwable t) {
            throw FaultService.rethrow(t);
        }
    }

    /**
     * Tests only: the fault service sleeps {@code nanos} after each read that got fault messages,
     * before serving them (0: never), so a test can act while messages are read and not yet served.
     * Returns how many messages the service has read while holding.
     */
    public long holdServiceAfterReadForTesting(long nanos) {
        if (nanos < 0) {
            throw new IllegalArgumentException("hold of " + nanos + " ns: must be at least 0");
        }
        return testHold(nanos);
    }

    /** Tests only: how many fault messages the service has read while holding them. */
    public long messagesHeldForTesting() {
        return testHold(-1L);   // UINT64_MAX: leave the hold as it is
    }

    private long testHold(long nanos) {
        try {
            return (long) lib.testHold.invokeExact(handle, nanos);
        } catch (Throwable t) {
            throw FaultService.rethrow(t);
        }
    }

    /**
     * Tests only: the fault service's fills of pages into the view (a fault's, and unless
     * {@code faultsOnly} those of {@link #home} and {@link #populate}) fail with {@code errno} once
     * {@code afterPages} more pages have been filled, {@code times} fills in a row; {@code afterPages}
     * -1 disarms. The setting is the service's, for every region. Returns the fills still to fail
     * (0 once the last armed one has failed).
     */
    public long failFillsForTesting(long afterPages, long times, int errno, boolean faultsOnly) {
        return testFailFill(afterPages, times, errno, faultsOnly ? 1 : 0);
    }

    /** Tests only: the fills still to fail ({@link #failFillsForTesting}). */
    public long fillsLeftToFailForTesting() {
        return testFailFill(Long.MIN_VALUE, 0, 0, 0);
    }

    private long testFailFill(long afterPages, long times, int errno, int faultsOnly) {
        try {
            return (long) lib.testFailFill.invokeExact(handle, afterPages, times, errno, faultsOnly);
        } catch (Throwable t) {
            throw FaultService.rethrow(t);
        }
    }

    /**
     * Returns once every fault message the service read before this call has been served
     * (SERVED_BEFORE_LEAVE in hetmem_uffd.c): called before pages a device mapped in place leave
     * the host, once that device's entries are gone.
     */
    public void awaitServed() {
        try {
            lib.awaitServed.invokeExact(handle);
        } catch (Throwable t) {
            throw FaultService.rethrow(t);
        }
    }

    /** A running kernel holds (or no longer holds) pages [first, first+count). */
    public void busy(long first, long count, boolean on) {
        try {
            lib.busy.invokeExact(handle, first, count, on ? 1 : 0);
        } catch (Throwable t) {
            throw FaultService.rethrow(t);
        }
    }

    /**
     * What the view really maps for pages [first, first+count) (at most 512), from the kernel's
     * page map: {@link #VIEW_MAPPED} and {@link #VIEW_WRITE_PROTECTED} bits per page. For
     * verification and tests.
     */
    public byte[] viewPages(long first, int count) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(count);
            int rc = (int) lib.viewPages.invokeExact(handle, first, (long) count, out);
            check("view page read", rc, first, count);
            return out.toArray(JAVA_BYTE);
        } catch (Throwable t) {
            throw FaultService.rethrow(t);
        }
    }

    /** The state word of a page (for verification and tests). */
    public long state(long page) {
        return (long) STATE.getAcquire(state, page * 8);
    }

    /** The region is being freed: faults from now on read no device frame. */
    public void kill() {
        try {
            lib.regionKill.invokeExact(handle);
        } catch (Throwable t) {
            throw FaultService.rethrow(t);
        }
    }

    /** How long {@link #close} waits for native calls that still use the view segment. */
    private static final long VIEW_IN_USE_WAIT_NANOS = 60_000_000_000L;

    /**
     * Invalidates the view segment (waiting for Java accesses in progress, which {@link #kill} lets
     * finish), then unregisters and unmaps everything. A native call that was handed a slice of the
     * view keeps the segment's arena acquired until it returns, and the arena refuses to close
     * meanwhile: that is waited for (up to a minute, an interrupt kept for the caller rather than
     * ending the wait); if it lasts longer the close fails with nothing
     * unmapped under that call (the memory then stays mapped: a leak, not a crash). It was marked
     * closed before the arena's close, so a close failing so at once never unregistered the region.
     */
    @Override
    public synchronized void close() {
        if (destroyed) {
            return;
        }
        long deadline = System.nanoTime() + VIEW_IN_USE_WAIT_NANOS;
        // an interrupt does not cut the wait short (it is kept for the caller): a close of the memory on an
        // interrupted thread failed here at once whenever a native call held the view, and left it mapped
        boolean interrupted = false;
        try {
            for (long sleep = 1; ; sleep = Math.min(50, sleep * 2)) {
                try {
                    viewArena.close();
                    break;
                } catch (IllegalStateException inUse) {
                    if (System.nanoTime() - deadline > 0) {
                        throw new IllegalStateException("the host view of this region is still in use by a native call after "
                                + VIEW_IN_USE_WAIT_NANOS / 1_000_000_000L + " s; its memory stays mapped", inUse);
                    }
                    try {
                        Thread.sleep(sleep);
                    } catch (InterruptedException e) {
                        interrupted = true;
                    }
                }
            }
        } finally {
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
        destroyed = true;
        try {
            lib.regionDestroy.invokeExact(handle);
        } catch (Throwable t) {
            throw FaultService.rethrow(t);
        }
    }

    private static void check(String what, int rc, long first, long count) {
        if (rc != 0) {
            throw new IllegalStateException("userfaultfd host mirror: " + what + " of pages [" + first + ", "
                    + (first + count) + ") failed: " + (rc == -71 ? "a page asked to be on the host has no host copy"
                    : FaultService.errnoName(-rc)));
        }
    }

}
