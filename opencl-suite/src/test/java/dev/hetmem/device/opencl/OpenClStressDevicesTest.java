package dev.hetmem.device.opencl;

import dev.hetmem.driver.RunTooLargeException;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The OpenCL kind of the stress program makes devices the stress run can fail as it fails emulated
 * ones, and of every pool layout. From a review of the kind: it did not pass on the refusal of long
 * runs (the run's "fragmented device" injection did nothing on OpenCL), and every device it made had
 * one pool (PoCL allows an allocation as large as the device), so no stress run crossed a pool.
 */
class OpenClStressDevicesTest {
    private static final long MiB = 1L << 20;

    @Test
    void devicesOfARunHaveOneFourOrUnevenPoolsAndRefuseLongRunsWhenAsked() {
        OpenClFixture.needsOpenCl();
        OpenClStressDevices kind = new OpenClStressDevices();
        int[] expected = {3, 1, 4};   // 64 MiB: pools of 22, 22 and 20 MiB; one pool; four of 16 MiB
        for (int i = 1; i <= 3; i++) {
            OpenClDevice d = (OpenClDevice) kind.create("stress-d" + i, 64 * MiB);
            try {
                assertEquals(expected[i - 1], d.poolCount(), "stress-d" + i);
                assertEquals(64 * MiB, d.memoryBytes(), "stress-d" + i);
                kind.refuseRunsOfAtLeast(d, 2);
                assertThrows(RunTooLargeException.class, () -> d.prepareFrames(0, 2), "stress-d" + i);
                d.prepareFrames(0, 1);
                kind.refuseRunsOfAtLeast(d, 0);
                d.prepareFrames(0, 2);
            } finally {
                kind.forget(d);
                d.close();
            }
        }
        // sizes whose chunks do not divide by four, and above 88 MiB: still at most four pools (five were refused)
        for (long mib : new long[] {2, 18, 20, 62, 96, 130}) {
            for (int i = 1; i <= 3; i++) {
                OpenClDevice d = (OpenClDevice) kind.create("stress-d" + i, mib * MiB);
                try {
                    assertEquals(mib * MiB, d.memoryBytes(), "stress-d" + i + ", " + mib + " MiB");
                    assertTrue(d.poolCount() <= 4, "stress-d" + i + ", " + mib + " MiB: " + d.poolCount() + " pools");
                } finally {
                    kind.forget(d);
                    d.close();
                }
            }
        }
    }
}
