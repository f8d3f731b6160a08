package dev.hetmem.migrate;

import dev.hetmem.Region;
import dev.hetmem.UnifiedMemory;
import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.internal.RegionState;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Which pages a batch's caller asked for, found by search, agrees with a look at every request. */
class NeededTest {
    @Test
    void neededAgreesWithEveryRequestOverRegionsWidenedOrNot() {
        try (UnifiedMemory mem = UnifiedMemory.builder().device(EmulatedDevice.builder().capacity(8L << 20).build()).build()) {
            List<RegionState> regions = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                Region r = mem.allocate(16L << 20);
                regions.add(stateOf(r));
            }
            long pages = regions.getFirst().pages();
            Random rnd = new Random(61206);
            for (int round = 0; round < 200; round++) {
                List<MigrationRequest> requests = new ArrayList<>();
                int n = 1 + rnd.nextInt(round % 2 == 0 ? 8 : 600);
                for (int i = 0; i < n; i++) {
                    RegionState s = regions.get(rnd.nextInt(regions.size()));
                    long from = rnd.nextLong(pages - 1);
                    long to = Math.min(pages, from + 1 + rnd.nextInt(rnd.nextBoolean() ? 3 : 700));
                    requests.add(new MigrationRequest(s, from, to, rnd.nextBoolean()));
                }
                boolean widen = rnd.nextBoolean();
                Needed needed = new Needed(Interval.normalize(requests, widen));
                for (int probe = 0; probe < 400; probe++) {
                    RegionState s = regions.get(rnd.nextInt(regions.size()));
                    long page = rnd.nextLong(pages);
                    boolean asked = false;
                    for (MigrationRequest r : requests) {
                        asked |= r.region() == s && r.from() <= page && page < r.to();
                    }
                    assertEquals(asked, needed.needed(s, page), "round " + round + ", region " + s.id() + ", page " + page
                            + ", widened " + widen);
                }
            }
        }
    }

    private static RegionState stateOf(Region r) {
        try {
            var m = Region.class.getDeclaredMethod("state");
            m.setAccessible(true);
            return (RegionState) m.invoke(r);
        } catch (ReflectiveOperationException e) {
            throw new AssertionError(e);
        }
    }
}
