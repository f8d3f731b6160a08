package dev.hetmem.stress;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The core's refusal of a call that reached bytes freed by {@code Region.free(offset, length)},
 * read back from its message ({@code RegionState.refuseFreed} writes it), so that the stress
 * program can check the bytes it names against its own model.
 *
 * @param region the region's id
 * @param from   the first freed byte named
 * @param to     the end of the freed bytes named
 */
record FreedRefusal(int region, long from, long to) {
    private static final Pattern MESSAGE = Pattern.compile(
            "region (\\d+) \\(.*reaches bytes \\[(\\d+), (\\d+)\\), which were freed by free\\(offset, length\\)");

    /** The refusal {@code e} is, or null when it is not one. */
    static FreedRefusal of(Throwable e) {
        if (!(e instanceof IllegalStateException) || e.getMessage() == null) {
            return null;
        }
        Matcher m = MESSAGE.matcher(e.getMessage());
        return m.find() ? new FreedRefusal(Integer.parseInt(m.group(1)), Long.parseLong(m.group(2)), Long.parseLong(m.group(3)))
                : null;
    }
}
