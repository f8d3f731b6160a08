package dev.hetmem.device.opencl;

import static org.junit.jupiter.api.Assertions.assertNull;

/** OpenCL tests need a platform: under CI=true (CI installs PoCL) its absence fails them; elsewhere they skip. */
final class OpenClFixture {
    private OpenClFixture() {}

    static void needsOpenCl() {
        String why = OpenClPlatforms.unavailableReason();
        if ("true".equals(System.getenv("CI"))) {
            assertNull(why, "CI must run the OpenCL tests");
        } else {
            org.junit.jupiter.api.Assumptions.assumeTrue(why == null, why);
        }
    }

    static OpenClDevice device(long capacity) {
        needsOpenCl();
        return OpenClDevice.builder().capacity(capacity).build();
    }
}
