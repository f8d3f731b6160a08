package dev.hetmem.observe;

import jdk.jfr.Category;
import jdk.jfr.DataAmount;
import jdk.jfr.Description;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.Name;

/** Host frames of pages that left the host, handed back to the kernel by the chunk. */
@Name("dev.hetmem.HostRelease")
@Label("Host Frame Release")
@Category({"hetmem"})
@Description("Kept host frames of pages that moved to a device, released by the 2 MiB chunk")
public final class HostReleaseEvent extends Event {
    @Label("Reason") @Description("whole chunk, over budget, or trim") public String reason;
    @Label("Chunks") public int chunks;
    @Label("Ranges") @Description("address ranges handed to the kernel: adjacent chunks of one region go as one")
    public int ranges;
    @Label("Bytes") @DataAmount public long bytes;
    @Label("Retained After") @DataAmount public long retainedAfter;
}
