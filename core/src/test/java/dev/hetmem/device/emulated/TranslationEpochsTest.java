package dev.hetmem.device.emulated;

import dev.hetmem.driver.VaRanges;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The emulated device's TLB shootdown: an invalidation waits exactly for the items that may use its ranges. */
@Tag("emulated")
class TranslationEpochsTest {
    private static VaRanges ranges(long va, long length) {
        VaRanges r = new VaRanges();
        r.add(va, length);
        return r;
    }

    @Test
    void anInvalidationWaitsForAnItemInsideItsRangesUntilTheItemEnds() throws Exception {
        TranslationEpochs epochs = new TranslationEpochs();
        CountDownLatch inside = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        CompletableFuture<Void> item = CompletableFuture.runAsync(() -> {
            TranslationEpochs.Slot s = epochs.register(new long[] {0x10000}, new long[] {0x20000});
            s.enter();
            inside.countDown();
            try {
                release.await();
            } catch (InterruptedException e) {
                throw new IllegalStateException(e);
            }
            s.leave();
            epochs.unregister(s);
        });
        assertTrue(inside.await(10, TimeUnit.SECONDS));
        CompletableFuture<Void> invalidation = CompletableFuture.runAsync(() -> epochs.awaitQuiescent(ranges(0x18000, 0x1000)));
        assertThrows(TimeoutException.class, () -> invalidation.get(200, TimeUnit.MILLISECONDS),
                "the invalidation returned while an item that may hold its translations was still running");
        // ranges the item's launch does not cover, and an item between work items, are not waited for
        epochs.awaitQuiescent(ranges(0x40000, 0x1000));
        release.countDown();
        invalidation.get(10, TimeUnit.SECONDS);
        item.get(10, TimeUnit.SECONDS);
    }

    @Test
    void aThreadInsideAFaultOrBetweenItemsIsNotWaitedFor() throws Exception {
        TranslationEpochs epochs = new TranslationEpochs();
        TranslationEpochs.Slot s = epochs.register(new long[] {0}, new long[] {1L << 30});
        // not in an item: the counter is even
        CompletableFuture.runAsync(() -> epochs.awaitQuiescent(ranges(0, 4096))).get(10, TimeUnit.SECONDS);
        s.enter();
        // the thread itself (a fault that evicts, a kernel launching another) never waits for its own slot
        epochs.awaitQuiescent(ranges(0, 4096));
        s.leave();   // as on entering a device fault
        CompletableFuture.runAsync(() -> epochs.awaitQuiescent(ranges(0, 4096))).get(10, TimeUnit.SECONDS);
        s.enter();
        CompletableFuture<Void> waiting = CompletableFuture.runAsync(() -> epochs.awaitQuiescent(ranges(0, 4096)));
        Thread.sleep(50);
        assertFalse(waiting.isDone(), "an item in progress is waited for");
        s.leave();
        waiting.get(10, TimeUnit.SECONDS);
        epochs.unregister(s);
    }
}
