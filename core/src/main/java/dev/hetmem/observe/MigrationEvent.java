package dev.hetmem.observe;

import jdk.jfr.Category;
import jdk.jfr.DataAmount;
import jdk.jfr.Description;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.Name;

/** One migration batch, from plan to commit (or undo). */
@Name("dev.hetmem.Migration")
@Label("Page Migration")
@Category({"hetmem"})
@Description("A batch of pages moved between nodes by the migration engine")
public final class MigrationEvent extends Event {
    @Label("Region") public int region;
    @Label("Target Node") public int target;
    @Label("Trigger") public String trigger;
    @Label("Mode") public String mode;
    @Label("Pages") public long pages;
    @Label("Bytes") @DataAmount public long bytes;
    @Label("Undone") public boolean undone;
}
