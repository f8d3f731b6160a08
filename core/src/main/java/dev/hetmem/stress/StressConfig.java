package dev.hetmem.stress;

import dev.hetmem.HostFaultMode;

import java.util.List;

/**
 * One configuration of the stress program: the devices (one kind per device node, 1 to 3),
 * how host code reaches regions, thrashing control, devices roomy or too small for the data, and
 * whether allocation and copy failures are injected. {@code workers} = 1 runs one seeded step
 * list (reproducible, and shrunk on failure); more run that many threads at once for
 * {@code millis}, each with its own regions, moving each other's pages.
 */
public record StressConfig(long seed, List<StressDevices> devices, HostFaultMode hostFaults, boolean thrashControl,
                           boolean smallDevices, boolean inject, int workers, int steps, long millis) {
    public StressConfig {
        if (devices.isEmpty() || devices.size() > 3) {
            throw new IllegalArgumentException("1 to 3 devices, not " + devices.size());
        }
        if (workers < 1 || workers > 16) {
            throw new IllegalArgumentException("workers " + workers + " outside [1, 16]");
        }
        devices = List.copyOf(devices);
    }

    /** Bytes of each device: too small (2 MiB, so data streams through it) or roomy (64 MiB). */
    public long deviceBytes() {
        return smallDevices ? 2L << 20 : 64L << 20;
    }

    /** The same configuration with another seed. */
    public StressConfig withSeed(long s) {
        return new StressConfig(s, devices, hostFaults, thrashControl, smallDevices, inject, workers, steps, millis);
    }

    /** One line that names everything needed to run this configuration again. */
    public String describe() {
        StringBuilder kinds = new StringBuilder();
        for (StressDevices d : devices) {
            kinds.append(kinds.isEmpty() ? "" : "+").append(d.kind());
        }
        return "seed " + seed + ", devices " + kinds + ", " + (hostFaults == HostFaultMode.USERFAULTFD ? "userfaultfd" : "host views")
                + ", thrashing control " + (thrashControl ? "on" : "off") + ", devices " + (smallDevices ? "too small" : "roomy")
                + ", failures " + (inject ? "injected" : "not injected") + ", "
                + (workers == 1 ? steps + " steps" : workers + " workers for " + millis + " ms");
    }
}
