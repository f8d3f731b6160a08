package dev.hetmem.stress;

import dev.hetmem.HostFaultMode;
import org.junit.jupiter.api.Test;

import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.function.Predicate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The plan's round covers the choices independently: for each device count and host-fault mode,
 * every pair of (thrashing control, small devices, four workers, injection) meets in all four ways.
 * The round it replaced tied thrashing control to one worker, so thrashing control never ran with
 * workers moving each other's pages.
 */
class StressPlanTest {
    @Test
    void everyPairOfChoicesMeetsBothWaysForEachDeviceCountAndMode() {
        StressDevices kind = new EmulatedStressDevices();
        List<StressConfig> round = StressPlan.configurations(List.of(kind), List.of(kind), 100, true);
        assertEquals(48, round.size());
        List<Predicate<StressConfig>> choices = List.of(StressConfig::thrashControl, StressConfig::smallDevices,
                c -> c.workers() > 1, StressConfig::inject);
        for (int devices = 1; devices <= 3; devices++) {
            for (HostFaultMode mode : HostFaultMode.values()) {
                int d = devices;
                List<StressConfig> these = round.stream().filter(c -> c.devices().size() == d && c.hostFaults() == mode).toList();
                assertEquals(8, these.size(), devices + " devices, " + mode);
                for (int a = 0; a < choices.size(); a++) {
                    for (int b = a + 1; b < choices.size(); b++) {
                        Set<String> seen = new HashSet<>();
                        for (StressConfig c : these) {
                            seen.add(choices.get(a).test(c) + "/" + choices.get(b).test(c));
                        }
                        assertEquals(4, seen.size(), devices + " devices, " + mode + ", choices " + a + " and " + b + ": " + seen);
                    }
                }
            }
        }
        // seeds in order, and the first six configurations already reach every device count
        for (int i = 0; i < round.size(); i++) {
            assertEquals(100 + i, round.get(i).seed());
        }
        assertTrue(round.subList(0, 6).stream().map(c -> c.devices().size()).distinct().count() == 3);
    }
}
