package dev.hetmem.observe;

import jdk.jfr.Category;
import jdk.jfr.DataAmount;
import jdk.jfr.Description;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.Name;
import jdk.jfr.Timespan;

/**
 * One migration batch, from revoke to commit (or undo), with the time each phase took: where a
 * migration's time goes (the copy, or the per-page work around it) without a profiler. A phase
 * the batch did not reach (it was undone) reads 0; the allocate phase includes the evictions that
 * made room, each of which is a Migration event of its own too.
 */
@Name("dev.hetmem.Migration")
@Label("Page Migration")
@Category({"hetmem"})
@Description("A batch of pages moved between nodes by the migration engine")
public final class MigrationEvent extends Event {
    @Label("Region") public int region;
    @Label("Target Node") public int target;
    @Label("Trigger") public String trigger;
    @Label("Mode") public String mode;
    @Label("Pages") @Description("the batch's pages: copied, loaded from a file, zero-filled, relocated within the device or mapped in place")
    public long pages;
    @Label("Bytes") @DataAmount public long bytes;
    @Label("Undone") @Description("allocation or copying failed and the undo phase ran") public boolean undone;
    @Label("Failed") @Description("the batch did not commit (undone, or its revoke or commit threw)") public boolean failed;
    @Label("Revoke") @Description("taking the moving pages' mappings away") @Timespan public long revokeTime;
    @Label("Allocate") @Description("destination frames, with the evictions that made room for them") @Timespan
    public long allocateTime;
    @Label("Copy") @Timespan public long copyTime;
    @Label("Commit") @Description("the page table, the new mappings, the source frames released") @Timespan
    public long commitTime;
}
