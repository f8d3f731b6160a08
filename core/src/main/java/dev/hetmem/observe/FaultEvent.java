package dev.hetmem.observe;

import jdk.jfr.Category;
import jdk.jfr.DataAmount;
import jdk.jfr.Description;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.Name;

/**
 * A host view or device launch that found pages elsewhere and had them brought over, or pages the
 * userfaultfd fault service took home on its own (recorded when the engine next looks, under its
 * locks: the service runs no Java code, so it cannot record anything itself).
 */
@Name("dev.hetmem.Fault")
@Label("Fault")
@Category({"hetmem"})
@Description("One fault batch: granules made resident together for a host view, a kernel launch (or tile) or a device fault, or taken home by the userfaultfd service")
public final class FaultEvent extends Event {
    public static final String HOST_VIEW = "host view";
    public static final String KERNEL = "kernel launch";
    public static final String USERFAULTFD = "userfaultfd";
    /** A kernel touched a page not on its device while it ran (a faulting launch). */
    public static final String DEVICE = "device fault";

    @Label("Path") @Description("host view, kernel launch, device fault, or userfaultfd") public String path;
    @Label("Node") public int node;
    @Label("Region") public int region;
    @Label("Offset") @Description("in the region: the faulting page for a device fault, the first argument's window for a launch")
    public long offset;
    @Label("Length") @DataAmount public long length;
    @Label("Granules Faulted") @Description("for userfaultfd: runs of contiguous pages taken") public long faults;
    @Label("Pages Migrated") public long pagesMigrated;
}
