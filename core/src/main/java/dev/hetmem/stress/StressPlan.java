package dev.hetmem.stress;

import dev.hetmem.HostFaultMode;

import java.util.ArrayList;
import java.util.List;

/**
 * The order in which the stress command and test go through configurations: each round covers
 * every combination of host-fault mode, device count (1 to 3, kinds taken in turn from the
 * lists), thrashing control, device size and injection, alternating one-worker programs and
 * several workers, each with its own seed.
 */
public final class StressPlan {
    private StressPlan() {}

    private static List<StressDevices> withUserfaultfd(List<StressDevices> kinds) {
        return kinds.stream().filter(StressDevices::supportsUserfaultfd).toList();
    }

    /**
     * One round of configurations, seeds from {@code firstSeed} on. {@code primary} are the kinds
     * tried first; {@code mixed} the kinds the second and third devices cycle through.
     */
    public static List<StressConfig> configurations(List<StressDevices> primary, List<StressDevices> mixed, long firstSeed,
                                                    boolean userfaultfd) {
        List<StressConfig> out = new ArrayList<>();
        long seed = firstSeed;
        int turn = 0;
        for (int devices = 1; devices <= 3; devices++) {
            for (HostFaultMode mode : userfaultfd ? List.of(HostFaultMode.HOST_VIEWS, HostFaultMode.USERFAULTFD)
                    : List.of(HostFaultMode.HOST_VIEWS)) {
                List<StressDevices> first = mode == HostFaultMode.USERFAULTFD ? withUserfaultfd(primary) : primary;
                List<StressDevices> others = mode == HostFaultMode.USERFAULTFD ? withUserfaultfd(mixed) : mixed;
                if (first.isEmpty() || others.isEmpty()) {
                    continue;
                }
                for (int variant = 0; variant < 4; variant++) {
                    boolean thrash = (variant & 1) == 0;
                    boolean small = (variant & 2) != 0;
                    boolean inject = ((variant + devices) & 1) == 0 || devices == 3;
                    List<StressDevices> kinds = new ArrayList<>();
                    kinds.add(first.get(turn % first.size()));
                    for (int d = 1; d < devices; d++) {
                        kinds.add(others.get((turn + d) % others.size()));
                    }
                    turn++;
                    boolean concurrent = (turn & 1) == 0;
                    out.add(new StressConfig(seed++, kinds, mode, thrash, small, inject, concurrent ? 4 : 1, 200,
                            concurrent ? 800 : 0));
                }
            }
        }
        return out;
    }
}
