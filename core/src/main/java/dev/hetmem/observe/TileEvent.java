package dev.hetmem.observe;

import jdk.jfr.Category;
import jdk.jfr.Description;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.Name;
import jdk.jfr.Timespan;

/**
 * One tile of a launch larger than the device, from the wait for its prefetch to the end of its
 * kernel: where a streamed launch spends its time (waiting for the migration started while the
 * previous tile ran, bringing in and pinning what that left, running the kernel).
 */
@Name("dev.hetmem.Tile")
@Label("Tile")
@Category({"hetmem"})
@Description("One tile of a tiled launch: the wait for its prefetch, the rest of its migration and pinning, its kernel")
public final class TileEvent extends Event {
    @Label("Node") public int node;
    @Label("Region") @Description("the region of the launch's first argument") public int region;
    @Label("Tile") @Description("0 for the launch's first tile") public long tile;
    @Label("First Item") public long firstItem;
    @Label("Items") public long items;
    @Label("Prefetch Wait") @Description("waiting for this tile's prefetch, started while an earlier tile ran")
    @Timespan public long prefetchWait;
    @Label("Pin") @Description("bringing in what the prefetch left and pinning the tile's pages") @Timespan public long pin;
    @Label("Kernel") @Timespan public long kernel;
    @Label("Pages Migrated") @Description("for the tile: by its prefetch beside the tile before it, its own migration and its kernel's device faults") public long pagesMigrated;
    @Label("Pages Dropped") @Description("the device's copies of the tile's read windows dropped once it ran (drop-behind, on a device whose tiles keep to the caches)")
    public long pagesDropped;
}
