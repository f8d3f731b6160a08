package dev.hetmem.observe;

import jdk.jfr.Category;
import jdk.jfr.DataAmount;
import jdk.jfr.Description;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.Name;

/** A host view or device launch that found pages elsewhere and had them brought over. */
@Name("dev.hetmem.Fault")
@Label("Fault")
@Category({"hetmem"})
@Description("Granules made resident for a host view or a device kernel")
public final class FaultEvent extends Event {
    @Label("Node") public int node;
    @Label("Region") public int region;
    @Label("Offset") public long offset;
    @Label("Length") @DataAmount public long length;
    @Label("Granules Faulted") public long faults;
    @Label("Pages Migrated") public long pagesMigrated;
}
