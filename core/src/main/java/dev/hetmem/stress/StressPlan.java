package dev.hetmem.stress;

import dev.hetmem.HostFaultMode;

import java.util.ArrayList;
import java.util.List;

/**
 * The order in which the stress command and test go through configurations: each round covers
 * every combination of host-fault mode, device count (1 to 3, kinds taken in turn from the
 * lists), thrashing control, device size and worker count, with failures injected so that every
 * pair of those choices meets both with and without injection; each configuration has its own
 * seed.
 */
public final class StressPlan {
    private StressPlan() {}

    private static List<StressDevices> withUserfaultfd(List<StressDevices> kinds) {
        return kinds.stream().filter(StressDevices::supportsUserfaultfd).toList();
    }

    /**
     * One round of configurations, seeds from {@code firstSeed} on. {@code primary} are the kinds
     * tried first; {@code mixed} the kinds the second and third devices cycle through.
     *
     * <p>A round has up to 48 configurations: for 1, 2 and 3 devices and each host-fault mode,
     * the eight combinations of thrashing control, device size and workers (one worker running 200
     * steps, or 4 workers running for 800 ms). Injection is the parity of those three choices and
     * the device count, so that, within each device count and mode, every pair of choices (thrashing
     * control and 4 workers, say) runs both with failures injected and without. The order takes
     * the variants in turn across device counts and modes, so a run cut short after a few
     * configurations has still seen every device count. Kinds that cannot run with userfaultfd are
     * left out of its configurations, and a mode with no kind left is skipped.
     *
     * @param primary the kinds of the first device, taken in turn; not empty
     * @param mixed the kinds of the second and third devices, taken in turn
     * @param firstSeed the seed of the first configuration; each next one gets the next seed
     * @param userfaultfd whether to include the userfaultfd host-fault mode besides host views
     * @return the round's configurations, in the order to run them
     */
    public static List<StressConfig> configurations(List<StressDevices> primary, List<StressDevices> mixed, long firstSeed,
                                                    boolean userfaultfd) {
        List<StressConfig> out = new ArrayList<>();
        long seed = firstSeed;
        int turn = 0;
        List<HostFaultMode> modes = userfaultfd ? List.of(HostFaultMode.HOST_VIEWS, HostFaultMode.USERFAULTFD)
                : List.of(HostFaultMode.HOST_VIEWS);
        for (int variant = 0; variant < 8; variant++) {
            boolean thrash = (variant & 1) == 0;
            boolean small = (variant & 2) != 0;
            boolean concurrent = (variant & 4) != 0;
            for (int devices = 1; devices <= 3; devices++) {
                boolean inject = (Integer.bitCount(variant) + devices) % 2 == 1;
                for (HostFaultMode mode : modes) {
                    List<StressDevices> first = mode == HostFaultMode.USERFAULTFD ? withUserfaultfd(primary) : primary;
                    List<StressDevices> others = mode == HostFaultMode.USERFAULTFD ? withUserfaultfd(mixed) : mixed;
                    if (first.isEmpty() || others.isEmpty()) {
                        continue;
                    }
                    List<StressDevices> kinds = new ArrayList<>();
                    kinds.add(first.get(turn % first.size()));
                    for (int d = 1; d < devices; d++) {
                        kinds.add(others.get((turn + d) % others.size()));
                    }
                    turn++;
                    out.add(new StressConfig(seed++, kinds, mode, thrash, small, inject, concurrent ? 4 : 1, 200,
                            concurrent ? 800 : 0));
                }
            }
        }
        return out;
    }
}
