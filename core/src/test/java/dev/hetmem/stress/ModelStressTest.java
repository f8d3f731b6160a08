package dev.hetmem.stress;

import dev.hetmem.HostFaultMode;
import dev.hetmem.fault.FaultService;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The model-based stress program for a fixed short time on every commit, over every mode on the
 * emulated device (the opencl module runs it on OpenCL devices and on both kinds together):
 * one to three devices, both host-fault modes, thrashing control on and off, roomy and too small
 * devices, failures injected or not; one-worker programs (shrunk on failure) and several workers
 * at once. {@code ./hetmem stress --seconds N} runs the same for as long as asked.
 */
@Tag("emulated")
class ModelStressTest {
    static final long BUDGET_MS = Long.getLong("hetmem.stress.millis", 20_000);

    @Test
    void randomProgramsAgreeWithTheModel() {
        List<StressDevices> kinds = List.of(new EmulatedStressDevices());
        boolean uffd = FaultService.unavailableReason().isEmpty();
        if ("true".equals(System.getenv("CI"))) {
            assertTrue(uffd, "CI must run the stress test in userfaultfd mode too: " + FaultService.unavailableReason());
        }
        List<String> failures = new ArrayList<>();
        long runs = 0;
        long ops = 0;
        long end = System.nanoTime() + BUDGET_MS * 1_000_000L;
        for (StressConfig c : StressPlan.configurations(kinds, kinds, 1, uffd)) {
            if (System.nanoTime() > end && runs >= 8) {
                break;
            }
            StressRun.Result r = new StressRun(c).run(Duration.ofSeconds(10));
            runs++;
            ops += r.operations();
            if (!r.passed()) {
                failures.add(c.describe() + ":\n  " + String.join("\n  ", r.failures()));
            }
        }
        System.out.println("model stress: " + runs + " runs, " + ops + " operations");
        assertTrue(failures.isEmpty(), String.join("\n", failures));
        assertTrue(runs >= 8, "ran " + runs + " configurations");
    }
}
