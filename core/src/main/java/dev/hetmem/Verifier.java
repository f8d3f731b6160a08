package dev.hetmem;

import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.internal.DeviceNode;
import dev.hetmem.internal.RegionState;
import dev.hetmem.migrate.MigrationEngine;
import dev.hetmem.pagetable.Block;
import dev.hetmem.phys.BuddyAllocator;

import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;

import static dev.hetmem.driver.PageGeometry.firstPage;

/**
 * {@link UnifiedMemory#verify()}: every region's page table against its invariant, every device
 * page table against the logical one, every host side against it, and every device frame held by
 * at most one page with held plus free frames adding up to the device, and nothing counted in
 * flight but the frames kept for running kernels. A frame held twice, or one
 * a host side names for a page that does not hold it, is how a lost store shows once it has happened.
 *
 * <p>Caller's contract: the memory's lifecycle is entered; each region is read under its own
 * lifecycle (a region being freed is skipped) and each block under its lock.
 */
final class Verifier {
    private final DeviceNode[] devices;
    private final DeviceDriver[] drivers;
    private final MigrationEngine engine;

    Verifier(DeviceNode[] devices, MigrationEngine engine) {
        this.devices = devices;
        this.engine = engine;
        this.drivers = new DeviceDriver[devices.length];
        for (int n = 1; n < devices.length; n++) {
            drivers[n] = devices[n].driver();
        }
    }

    List<String> verify(List<Region> regions) {
        List<String> problems = new ArrayList<>();
        BitSet[] owned = new BitSet[devices.length];
        for (int n = 1; n < owned.length; n++) {
            owned[n] = new BitSet();
        }
        for (Region r : regions) {
            RegionState s = r.state();
            try {
                s.lifecycle().enter();   // a region being freed is not read while its host side goes
            } catch (IllegalStateException freed) {
                continue;
            }
            try {
                verifyRegion(r, s, owned, problems);
            } finally {
                s.lifecycle().exit();
            }
        }
        for (int n = 1; n < owned.length; n++) {
            BuddyAllocator alloc = devices[n].allocator();
            // frames running kernels still read after their pages were placed anew: held, by no page
            BitSet kept = engine.keptFrames(n);
            BitSet both = (BitSet) kept.clone();
            both.and(owned[n]);
            if (!both.isEmpty()) {
                problems.add("node " + n + ": frame " + both.nextSetBit(0) + " is kept for a running kernel and also held by a page");
            }
            // on a quiet memory nothing is in flight but the frames kept for running kernels: a count
            // left over would make every later batch short of room wait for frames that never come
            long inFlight = engine.framesInFlight(n);
            if (inFlight != kept.cardinality()) {
                problems.add("node " + n + ": " + inFlight + " frames counted in flight on a quiet memory, "
                        + kept.cardinality() + " kept for running kernels");
            }
            owned[n].or(kept);
            long held = owned[n].cardinality();
            if (held + alloc.freeFrames() != alloc.totalFrames()) {
                problems.add("node " + n + ": " + held + " frames held by pages and " + alloc.freeFrames() + " free of "
                        + alloc.totalFrames() + ": " + (alloc.totalFrames() - held - alloc.freeFrames())
                        + " frames lost (or freed twice)");
            }
        }
        return problems;
    }

    private void verifyRegion(Region r, RegionState s, BitSet[] owned, List<String> problems) {
        engine.reconcileAll(s);
        String p = s.table().checkInvariants();
        if (p != null) {
            problems.add(r + ": " + p);
        }
        s.table().forEachBlock(b -> {
            b.lock.lock();
            try {
                int pages = s.table().pagesIn(b.index());
                for (int n = 1; n < devices.length; n++) {
                    for (int i = 0; i < pages; i++) {
                        checkDeviceEntry(r, s, b, n, i, owned[n], problems);
                    }
                }
                checkFreedPages(r, s, b, pages, problems);
                s.host().check(b, pages, drivers, s.attributes()::anyReadOnly, r, problems);
            } finally {
                b.lock.unlock();
            }
        });
    }

    /**
     * Pages freed by {@code free(offset, length)} are held by no device. (In userfaultfd mode a
     * plain store there can give the host a page again: the host column is not checked.)
     */
    private static void checkFreedPages(Region r, RegionState s, Block b, int pages, List<String> problems) {
        long base = firstPage(b.index());
        for (int i = 0; i < pages; i++) {
            if (s.attributes().at(base + i).freed() && (b.residentMask(i) >>> 1 != 0 || b.remoteMask(i) != 0)) {
                problems.add(r + ": page " + (base + i) + " was freed but node mask " + b.residentMask(i)
                        + " (remote " + b.remoteMask(i) + ") still holds it");
                return;
            }
        }
    }

    /** Device {@code n}'s entry for page {@code i} of locked block {@code b} against the page table. */
    private void checkDeviceEntry(Region r, RegionState s, Block b, int n, int i, BitSet owned, List<String> problems) {
        DeviceDriver d = drivers[n];
        long page = firstPage(b.index()) + i;
        long va = s.pageAddress(page);
        int pte = d.probe(va);
        boolean resident = b.isResident(n, i);
        if (b.isRemote(n, i)) {
            boolean w = b.isRemoteWritable(n, i) && !s.attributes().at(page).readOnly();
            if ((pte & DeviceDriver.PTE_REMOTE) == 0 || ((pte & DeviceDriver.PTE_WRITABLE) != 0) != w) {
                problems.add(r + " page " + page + ": node " + n + " should map the host's copy "
                        + (w ? "writable" : "read-only") + "; its entry is " + pte);
            }
            return;
        }
        if ((pte & DeviceDriver.PTE_REMOTE) != 0) {
            problems.add(r + " page " + page + ": node " + n + " maps host memory it was not given");
            return;
        }
        if (resident != ((pte & DeviceDriver.PTE_PRESENT) != 0)) {
            problems.add(r + " page " + page + ": resident on node " + n + " = " + resident
                    + " but device entry present = " + !resident);
            return;
        }
        if (!resident) {
            return;
        }
        int frame = b.frame(n, i);
        if (owned.get(frame)) {
            problems.add(r + " page " + page + " on node " + n + ": frame " + frame + " is held by another page too");
        }
        owned.set(frame);
        boolean w = b.isWritable(n, i) && !s.attributes().at(page).readOnly();
        if (w != ((pte & DeviceDriver.PTE_WRITABLE) != 0)) {
            problems.add(r + " page " + page + " on node " + n + ": should be "
                    + (w ? "writable" : "read-only") + " in the device page table");
        }
        if (d.probeFrame(va) != frame) {
            problems.add(r + " page " + page + " on node " + n + ": device entry maps frame "
                    + d.probeFrame(va) + ", page table says " + frame);
        }
    }
}
