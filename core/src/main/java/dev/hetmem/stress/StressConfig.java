package dev.hetmem.stress;

import dev.hetmem.HostFaultMode;

import java.util.List;

/**
 * One configuration of the stress program: the devices (one kind per device node, 1 to 3),
 * how host code reaches regions, thrashing control, devices roomy or too small for the data, and
 * whether allocation and copy failures are injected. {@code workers} = 1 runs one seeded step
 * list (reproducible, and shrunk on failure); more run that many threads at once for
 * {@code millis}, each with its own regions, moving each other's pages.
 *
 * @param seed the seed of the random program (and of the data it writes)
 * @param devices the kind of each device node, node 1 first; 1 to 3 entries (copied)
 * @param hostFaults how host code reaches regions: host views, or plain loads and stores served by
 *        userfaultfd
 * @param thrashControl whether the memory's thrashing control is on
 * @param smallDevices whether each device has 2 MiB, too small for the data, rather than 64 MiB
 * @param inject whether device allocation and copy failures are injected
 * @param workers how many threads run steps at once, 1 to 16
 * @param steps the length of a one-worker program, in steps (unused with more workers)
 * @param millis how long several workers run, in milliseconds (unused with one worker)
 */
public record StressConfig(long seed, List<StressDevices> devices, HostFaultMode hostFaults, boolean thrashControl,
                           boolean smallDevices, boolean inject, int workers, int steps, long millis) {
    /**
     * Checks the configuration and copies the device list.
     *
     * @param seed the seed of the random program
     * @param devices the kind of each device node; 1 to 3 entries
     * @param hostFaults how host code reaches regions
     * @param thrashControl whether thrashing control is on
     * @param smallDevices whether devices are 2 MiB rather than 64 MiB
     * @param inject whether failures are injected
     * @param workers how many threads run steps at once, 1 to 16
     * @param steps the length of a one-worker program
     * @param millis how long several workers run, in milliseconds
     * @throws IllegalArgumentException if there are not 1 to 3 devices or {@code workers} is outside [1, 16]
     * @throws NullPointerException if {@code devices} is or holds null
     */
    public StressConfig {
        if (devices.isEmpty() || devices.size() > 3) {
            throw new IllegalArgumentException("1 to 3 devices, not " + devices.size());
        }
        if (workers < 1 || workers > 16) {
            throw new IllegalArgumentException("workers " + workers + " outside [1, 16]");
        }
        devices = List.copyOf(devices);
    }

    /**
     * Bytes of each device: too small (2 MiB, so data streams through it) or roomy (64 MiB).
     *
     * @return 2 MiB if {@link #smallDevices()}, else 64 MiB, in bytes
     */
    public long deviceBytes() {
        return smallDevices ? 2L << 20 : 64L << 20;
    }

    /**
     * The host frames kept for release by the chunk, chosen by the seed so that every budget is
     * run: none kept, a budget far below the data (the background release runs all the time), one
     * about the data's size, and the default.
     *
     * @return 0, 64 KiB, 1 MiB or 256 MiB, drawn from {@code seed} (not its low bits, which choose the
     *         plan's other variants: every budget meets small devices, one worker and several)
     */
    public long hostRetainBudget() {
        return new long[] {0, 64L << 10, 1L << 20, 256L << 20}[new java.util.SplittableRandom(seed).nextInt(4)];
    }

    /**
     * The memory's engine settings, chosen by the seed so that each setting other than the
     * default runs in part of the configurations: the devices' copy engines instead of the copy
     * threads (a quarter), one copy thread instead of two (a quarter), host frames released with
     * {@code MADV_DONTNEED} instead of {@code MADV_FREE} (a quarter), the page-by-page migration
     * kept for comparison (an eighth, with host views only: with userfaultfd every page's every
     * phase is a system call or several, and such a run took 100 s, 2 operations a second against
     * 300-500 batched).
     *
     * @return {copy path is the engine, one copy thread, DONTNEED, page-by-page migration}
     */
    public boolean[] engineSettings() {
        java.util.SplittableRandom r = new java.util.SplittableRandom(seed ^ 0x5DEECE66DL);
        return new boolean[] {r.nextInt(4) == 0, r.nextInt(4) == 0, r.nextInt(4) == 0,
                r.nextInt(8) == 0 && hostFaults != HostFaultMode.USERFAULTFD};
    }

    /**
     * Whether the run interrupts its workers (half of the runs, by the seed): with one worker, a
     * step now and then starts with this thread's interrupt set; with several, the run interrupts
     * a worker while its steps run. An operation an interrupt reaches either completes as the
     * model says or fails with the interrupt named ({@code InterruptedIOException} for a load, an
     * interrupted wait otherwise) and changes nothing (a launch over a region larger than the
     * device: what its earlier tiles or faults wrote, checked item by item); the interrupt is
     * kept set for the caller.
     *
     * @return true if the run sends interrupts
     */
    public boolean interrupts() {
        return new java.util.SplittableRandom(seed ^ 0x6A09E667F3BCC909L).nextBoolean();
    }

    /**
     * Whether a run of several workers ends with the memory closed while they still work (half of
     * them, by the seed): after the end checks, the workers start again on new regions (allocating,
     * freeing, moving, launching, viewing) and the memory is closed from another thread in the
     * middle of it. Every operation then either completes as the model says or is refused as
     * closed or freed; {@code close()} returns within its timeout, no worker hangs, nothing leaks.
     *
     * @return true if the run ends by closing the memory under its workers
     */
    public boolean closeRace() {
        return workers > 1 && new java.util.SplittableRandom(seed ^ 0x2545F4914F6CDD1DL).nextBoolean();
    }

    /**
     * The same configuration with another seed.
     *
     * @param s the new seed
     * @return a copy of this configuration with seed {@code s}
     */
    public StressConfig withSeed(long s) {
        return new StressConfig(s, devices, hostFaults, thrashControl, smallDevices, inject, workers, steps, millis);
    }

    /**
     * One line that names everything needed to run this configuration again.
     *
     * @return the seed, device kinds, host-fault mode, thrashing control, device size, injection,
     *         and the step count or workers and duration, in words
     */
    public String describe() {
        StringBuilder kinds = new StringBuilder();
        for (StressDevices d : devices) {
            kinds.append(kinds.isEmpty() ? "" : "+").append(d.kind());
        }
        return "seed " + seed + ", devices " + kinds + ", " + (hostFaults == HostFaultMode.USERFAULTFD ? "userfaultfd" : "host views")
                + (hostFaults == HostFaultMode.USERFAULTFD ? "" : ", host frames kept up to " + (hostRetainBudget() >> 10) + " KiB")
                + ", thrashing control " + (thrashControl ? "on" : "off") + ", devices " + (smallDevices ? "too small" : "roomy")
                + ", failures " + (inject ? "injected" : "not injected") + ", "
                + (workers == 1 ? steps + " steps" : workers + " workers for " + millis + " ms") + engineDescription()
                + (interrupts() ? ", interrupted" : "") + (closeRace() ? ", closed under its workers" : "");
    }

    private String engineDescription() {
        boolean[] e = engineSettings();
        return (e[0] ? ", copy engines" : "") + (e[1] ? ", one copy thread" : "") + (e[2] ? ", host frames released with DONTNEED" : "")
                + (e[3] ? ", page-by-page migration" : "");
    }
}
