package dev.hetmem.internal;

import dev.hetmem.pagetable.Block;
import dev.hetmem.pagetable.PageTable;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import static dev.hetmem.driver.PageGeometry.BLOCK_PAGE_SHIFT;

/**
 * For each device, the blocks that hold pages on it: where eviction looks for victims. Kept by
 * the page tables' residency callbacks (a block joins when its first page arrives on the device
 * and leaves with its last), so it costs nothing per page.
 */
public final class ResidencyRegistry {
    /** A block and the region it belongs to. */
    public record Resident(RegionState region, Block block) {}

    /** Concurrent maps: L10 in docs/design.md, lock table, L10. */
    private final List<Map<Block, RegionState>> byNode = new ArrayList<>();

    public ResidencyRegistry(int nodes) {
        for (int n = 0; n < nodes; n++) {
            byNode.add(n == 0 ? Map.of() : new ConcurrentHashMap<>());
        }
    }

    /** The listener a region's page table reports to. */
    public PageTable.ResidencyListener listenerFor(RegionState region) {
        return new PageTable.ResidencyListener() {
            @Override
            public void gained(Block block, int node) {
                if (node != 0) {
                    byNode.get(node).put(block, region);
                }
            }

            @Override
            public void lost(Block block, int node) {
                if (node != 0) {
                    byNode.get(node).remove(block);
                }
            }
        };
    }

    /**
     * Blocks on {@code node} in eviction order: those whose preferred location is another node or
     * none first, least recently touched first; blocks that prefer this node last.
     */
    public List<Resident> coldestFirst(int node) {
        // the keys are read once, before sorting: other threads touch blocks (and change their advice)
        // meanwhile, and a key that moves under TimSort breaks its contract ("Comparison method
        // violates its general contract!", thrown by a bench decode run with many blocks)
        List<Keyed> keyed = new ArrayList<>();
        for (Map.Entry<Block, RegionState> e : byNode.get(node).entrySet()) {
            Resident r = new Resident(e.getValue(), e.getKey());
            keyed.add(new Keyed(r, prefers(r, node) ? 1 : 0, r.block().lastAccessNanos()));
        }
        keyed.sort(Comparator.comparingInt(Keyed::prefers).thenComparingLong(Keyed::touched));
        List<Resident> out = new ArrayList<>(keyed.size());
        for (Keyed k : keyed) {
            out.add(k.resident());
        }
        return out;
    }

    /** A resident block with its sort keys as they were read once. */
    private record Keyed(Resident resident, int prefers, long touched) {}

    private static boolean prefers(Resident r, int node) {
        return r.region().attributes().at(r.block().index() << BLOCK_PAGE_SHIFT).preferred() == node;
    }

    /** The blocks with pages on {@code node} now, in no order: a snapshot. */
    public List<Resident> residents(int node) {
        List<Resident> out = new ArrayList<>(byNode.get(node).size());
        for (Map.Entry<Block, RegionState> e : byNode.get(node).entrySet()) {
            out.add(new Resident(e.getValue(), e.getKey()));
        }
        return out;
    }

    public int blocksOn(int node) {
        return byNode.get(node).size();
    }
}
