package dev.hetmem;

import dev.hetmem.internal.RegionState;
import dev.hetmem.loader.HostPopulator;
import dev.hetmem.loader.LoadTarget;

import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;
import static dev.hetmem.driver.PageGeometry.PAGE_SHIFT;

/** The loader's narrow view of a memory: what {@link dev.hetmem.loader.FileLoader} may ask of it, no more. */
final class LoaderBridge implements LoadTarget {
    private final UnifiedMemory memory;

    LoaderBridge(UnifiedMemory memory) {
        this.memory = memory;
    }

    @Override
    public Region allocateForLoad(long bytes) {
        return memory.allocateRegion(bytes, memory.defaultGranularity);
    }

    @Override
    public void fillDevice(Region region, long offset, long length, int node, long buffer) {
        RegionState s = region.state();
        try {
            s.lifecycle().enter();
        } catch (IllegalStateException refused) {
            if (!s.lifecycle().isClosed()) {
                throw refused;   // the memory is closing: its refusal says so
            }
            // another thread's free of the region being loaded (it waits for the load to stop): said as such,
            // not as the free's own advice to its caller
            throw new IllegalStateException(region + " was freed (by another thread, or by the memory's close) while the "
                    + "file loaded into it; the load stopped", refused);
        }
        try {
            memory.engine().fill(s, offset >>> PAGE_SHIFT, Math.ceilDiv(offset + length, PAGE_BYTES), node, buffer);
        } finally {
            s.lifecycle().exit();
        }
    }

    @Override
    public void prefetch(Region region, int node) {
        if (region.size() > 0) {
            memory.advise(region, 0, region.size(), Advice.prefetch(node));
        }
    }

    @Override
    public boolean isDevice(int node) {
        return node > 0;
    }

    @Override
    public long nodeBytes(int node) {
        return memory.node(node).capacityBytes();
    }

    @Override
    public Operation operateOn(Region region) {
        RegionState s = region.state();
        s.lifecycle().enter();
        return () -> s.lifecycle().exit();
    }

    @Override
    public void freeFailed(Region region) {
        RegionState s = region.state();
        if (memory.isClosing() || s.isReleased()) {
            return;   // the memory's close frees the region itself once the load has ended; or it is freed
        }
        if (s.lifecycle().isClosed()) {
            // another thread's free stopped the load: it frees the region once the load has ended (a free
            // here would race it, and tell it "already freed"), unless it gave up waiting for the load (the
            // close timeout; a load waiting for room on the device waits longer): then nobody would, and it
            // is freed here as Region.close() frees. A close that gives up just after this look, for another
            // operation on the region still running, leaves the region to a later free (as it says)
            if (s.lifecycle().closeAbandoned()) {
                region.close();
            }
            return;
        }
        s.lifecycle().closeViewsOfCurrentThread();   // a progress callback's own views, as free() closes them
        long deadline = System.nanoTime() + memory.closeTimeoutNanos();
        int refusedWithoutViews = 0;
        while (true) {
            try {
                // other threads' views refuse a free: waited for, and the free tried again, until the deadline
                // (a view may open between the wait and the free)
                s.lifecycle().awaitNoLiveViews(Math.max(0, deadline - System.nanoTime()));
                region.free();
                return;
            } catch (IllegalStateException refused) {
                // tried again only where another thread's view refused the free, which changes nothing (the
                // region's lifecycle stays open); a free that went ahead and failed, or a close begun, is final
                // and only while a view is there to wait for: a refusal for another reason (a free from inside a
                // kernel) came straight back from the wait, and the loop spun a core until the deadline; one
                // more try, for a view that came and went between the free and this look
                refusedWithoutViews = s.lifecycle().hasOpenViews() ? 0 : refusedWithoutViews + 1;
                if (s.lifecycle().isClosed() || memory.isClosing() || System.nanoTime() - deadline >= 0
                        || refusedWithoutViews > 1) {
                    throw new IllegalStateException(region + " of the failed load could not be freed (free it once "
                            + "nothing uses it): " + refused.getMessage(), refused);
                }
            }
        }
    }

    @Override
    public HostPopulator hostPopulator(Region region) {
        return region.state().host()::populate;
    }
}
