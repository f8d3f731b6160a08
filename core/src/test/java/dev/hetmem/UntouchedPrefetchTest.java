package dev.hetmem;

import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.device.emulated.EmulatedKernel;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.lang.foreign.ValueLayout;
import java.util.List;

import static dev.hetmem.MemoryFixture.MiB;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Prefetching untouched memory larger than the device streams zeros through it without ever
 * materialising host pages: zero pages evicted from the device are dropped, not copied home.
 * (Before, a 1 GiB region prefetched to a 64 MiB device grew the process by 1 GiB of zeros.)
 */
@Tag("emulated") // kernels here are Java code
class UntouchedPrefetchTest {
    @Test
    void zerosStreamThroughTheDeviceAndNeverComeHome() {
        try (UnifiedMemory mem = UnifiedMemory.builder().copyThreads(2)
                .device(EmulatedDevice.builder().capacity(8 * MiB).build()).build()) {
            Region r = mem.allocate(64 * MiB);
            r.advise(0, r.size(), Advice.prefetch(1));
            assertEquals(0, mem.stats().nodes().get(0).residentBytes(), "no host page for zeros");
            assertEquals(List.of(), mem.verify());
            // a kernel writes a page: from then on it is data, and eviction takes it home
            mem.launch(1, (EmulatedKernel) (a, i) -> a.arg(0).putLong(0, 42), 1, KernelArg.of(r, 60 * MiB, 4096, Access.READ_WRITE));
            r.advise(0, 32 * MiB, Advice.prefetch(1));   // evicts the written page's block
            assertEquals(4096, mem.stats().nodes().get(0).residentBytes(), "only the written page came home");
            try (HostView v = r.host(60 * MiB, 4096, Access.READ)) {
                assertEquals(42, v.segment().get(ValueLayout.JAVA_LONG, 0));
            }
            try (HostView v = r.host(0, 4096, Access.READ)) {
                assertEquals(0, v.segment().get(ValueLayout.JAVA_LONG, 0));
            }
            assertEquals(List.of(), mem.verify());
        }
    }
}
