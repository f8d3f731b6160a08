package dev.hetmem.device.opencl;

import dev.hetmem.fault.FaultService;
import dev.hetmem.stress.EmulatedStressDevices;
import dev.hetmem.stress.StressConfig;
import dev.hetmem.stress.StressDevices;
import dev.hetmem.stress.StressPlan;
import dev.hetmem.stress.StressRun;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The model-based stress program on OpenCL devices, alone and beside emulated ones, for a fixed
 * short time (the core module runs it on the emulated device). Needs an OpenCL platform: under
 * CI=true its absence fails the test.
 */
class OpenClModelStressTest {
    static final long BUDGET_MS = Long.getLong("hetmem.stress.millis", 20_000);

    @Test
    void randomProgramsAgreeWithTheModelOnOpenCl() {
        String why = OpenClPlatforms.unavailableReason();
        if (why != null) {
            if ("true".equals(System.getenv("CI"))) {
                throw new AssertionError("CI must run the stress test on OpenCL: " + why);
            }
            org.junit.jupiter.api.Assumptions.abort(why);
        }
        StressDevices cl = new OpenClStressDevices();
        List<StressConfig> plan = StressPlan.configurations(List.of(cl), List.of(new EmulatedStressDevices(), cl), 1001,
                FaultService.unavailableReason().isEmpty());
        List<String> failures = new ArrayList<>();
        long runs = 0;
        long end = System.nanoTime() + BUDGET_MS * 1_000_000L;
        for (StressConfig c : plan) {
            if (System.nanoTime() > end && runs >= 6) {
                break;
            }
            StressRun.Result r = new StressRun(c).run(Duration.ofSeconds(10));
            runs++;
            if (!r.passed()) {
                failures.add(c.describe() + ":\n  " + String.join("\n  ", r.failures()));
            }
        }
        assertTrue(failures.isEmpty(), String.join("\n", failures));
        assertTrue(runs >= 6, "ran " + runs + " configurations");
    }
}
