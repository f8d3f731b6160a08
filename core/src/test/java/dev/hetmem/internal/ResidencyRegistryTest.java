package dev.hetmem.internal;

import dev.hetmem.pagetable.Block;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicBoolean;

import static dev.hetmem.driver.PageGeometry.BLOCK_BYTES;
import static dev.hetmem.driver.PageGeometry.BLOCK_SHIFT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The eviction order: what {@link ResidencyRegistry#coldestFirst} returns while blocks are touched. */
class ResidencyRegistryTest {
    private static final int BLOCKS = 4096;

    /** A region of {@link #BLOCKS} blocks, each with one page on device node 1, reported to {@code registry}. */
    private static List<Block> residentBlocks(ResidencyRegistry registry) {
        RegionState region = new RegionState(1, BLOCKS * BLOCK_BYTES, null, 2, BLOCK_SHIFT, new Lifecycle("test region"));
        region.table().listener(registry.listenerFor(region));
        List<Block> blocks = new ArrayList<>();
        for (long b = 0; b < BLOCKS; b++) {
            Block block = region.table().blockOrCreate(b);
            block.lock.lock();
            try {
                block.addResidentRange(1, 0, 1);
            } finally {
                block.lock.unlock();
            }
            blocks.add(block);
        }
        return blocks;
    }

    @Test
    void blocksComeLeastRecentlyTouchedFirst() {
        ResidencyRegistry registry = new ResidencyRegistry(2);
        List<Block> blocks = residentBlocks(registry);
        SplittableRandom rnd = new SplittableRandom(7);
        for (Block b : blocks) {
            b.touch(rnd.nextLong(1_000_000));
        }
        List<ResidencyRegistry.Resident> order = registry.coldestFirst(1);
        assertEquals(BLOCKS, order.size());
        for (int i = 1; i < order.size(); i++) {
            assertTrue(order.get(i - 1).block().lastAccessNanos() <= order.get(i).block().lastAccessNanos(),
                    "position " + i + " is touched before the one ahead of it");
        }
    }

    /**
     * Other threads touch blocks while eviction sorts them (faults and launches on other devices,
     * other regions): the sort must read each block's keys once. Sorting on keys read live broke
     * TimSort's contract ("Comparison method violates its general contract!"), which a bench decode
     * run hit; this test fails that way within its rounds when the keys are read during the sort.
     */
    @Test
    void theOrderHoldsWhileOtherThreadsTouchBlocks() throws InterruptedException {
        ResidencyRegistry registry = new ResidencyRegistry(2);
        List<Block> blocks = residentBlocks(registry);
        AtomicBoolean stop = new AtomicBoolean();
        Runnable touching = () -> {
            SplittableRandom rnd = new SplittableRandom(Thread.currentThread().threadId());
            while (!stop.get()) {
                blocks.get(rnd.nextInt(BLOCKS)).touch(rnd.nextLong());
            }
        };
        Thread a = Thread.ofPlatform().start(touching);
        Thread b = Thread.ofPlatform().start(touching);
        try {
            for (int round = 0; round < 300; round++) {
                assertEquals(BLOCKS, registry.coldestFirst(1).size());
            }
        } finally {
            stop.set(true);
            a.join();
            b.join();
        }
    }
}
