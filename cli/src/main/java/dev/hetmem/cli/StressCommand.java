package dev.hetmem.cli;

import dev.hetmem.HostFaultMode;
import dev.hetmem.device.opencl.OpenClPlatforms;
import dev.hetmem.device.opencl.OpenClStressDevices;
import dev.hetmem.limits.FaultLimits;
import dev.hetmem.stress.EmulatedStressDevices;
import dev.hetmem.stress.StressConfig;
import dev.hetmem.stress.StressDevices;
import dev.hetmem.stress.StressPlan;
import dev.hetmem.stress.StressRun;

import java.io.PrintStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * {@code hetmem stress}: the model-based stress program for as long as asked, configuration after
 * configuration (every host-fault mode, one to three devices, thrashing control on and off,
 * roomy and too small devices, failures injected or not), each with its own seed. Prints every
 * failure with its seed and shortest failing program, and operations per second by mode.
 */
final class StressCommand {
    static final String HELP = """
            usage: hetmem stress [--seconds N] [--seed S] [--device emulated|opencl|all] [--only S2 [--repeat N]] [--json]
              Runs seeded random programs over the whole API against a shadow model of every byte.
              --seconds N   how long to run (default 60; 1 to 604800)
              --seed S      the first configuration's seed (default 1)
              --device D    the devices: emulated, opencl (with emulated ones beside), or all (default: all
                            that are available here)
              --only S2     run only the configuration of seed S2 in the sequence that --seed and --device
                            start (a failure prints the command that reruns it)
              --repeat N    with --only: run that configuration N times (default 1; 1 to 100000), as long as
                            --seconds allows: a failure that depends on timing shows in some runs only
              --json        one JSON object on stdout at the end: runs, operations, operations per second by mode,
                            failures (each run's line still goes to stderr)
            exit status: 0 when every run agreed with the model, 1 when one did not, 2 for a usage error
            """;

    private StressCommand() {}

    static int run(List<String> argv, PrintStream out, PrintStream err) {
        Args args = new Args(argv, Set.of("json", "help"), Set.of("seconds", "seed", "device", "only", "repeat"));
        if (args.flag("help")) {
            out.print(HELP);
            return 0;
        }
        if (!args.positional().isEmpty()) {
            throw new Args.UsageException("unexpected argument '" + args.positional().getFirst() + "'");
        }
        long seconds = args.countValue("seconds", 60, 1, 604_800);
        long seed = args.numberValue("seed", 1);
        String device = args.value("device", "all");
        long only = args.numberValue("only", -1);
        boolean onlyGiven = args.value("only", null) != null;
        if (!onlyGiven && args.value("repeat", null) != null) {
            throw new Args.UsageException("--repeat needs --only: the seed of the configuration to repeat");
        }
        long repeat = args.countValue("repeat", 1, 1, 100_000);
        // the distance read unsigned: only >= seed, and only - seed overflows a long between extreme seeds
        if (onlyGiven && (only < seed || Long.compareUnsigned(only - seed, MAX_ONLY_DISTANCE) > 0)) {
            long last = seed > Long.MAX_VALUE - MAX_ONLY_DISTANCE ? Long.MAX_VALUE : seed + MAX_ONLY_DISTANCE;
            throw new Args.UsageException("--only " + only + " is outside [" + seed + ", " + last
                    + "]: the seeds the sequence from --seed " + seed + " reaches");
        }
        if (repeat < 1 || repeat > 100_000) {
            throw new Args.UsageException("--repeat " + repeat + " is outside [1, 100000]");
        }
        boolean json = args.flag("json");
        List<List<StressDevices>> sets = new ArrayList<>();   // {primary, mixed} pairs
        StressDevices emulated = new EmulatedStressDevices();
        String noOpenCl = OpenClPlatforms.unavailableReason();
        switch (device) {
            case "emulated" -> sets.add(List.of(emulated));
            case "opencl" -> {
                if (noOpenCl != null) {
                    throw new IllegalStateException("no OpenCL device: " + noOpenCl);   // Main reports it (as JSON under --json)
                }
                sets.add(List.of(new OpenClStressDevices()));
            }
            case "all" -> {
                sets.add(List.of(emulated));
                if (noOpenCl == null) {
                    sets.add(List.of(new OpenClStressDevices()));
                } else {
                    err.println("hetmem stress: OpenCL left out: " + noOpenCl);   // stderr: --json's stdout stays one object
                }
            }
            default -> throw new Args.UsageException("--device " + device + " is not one of emulated, opencl, all");
        }
        boolean uffd = FaultLimits.userfaultfdUnavailableReason().isEmpty();
        long end = System.nanoTime() + seconds * 1_000_000_000L;
        Map<String, long[]> byMode = new LinkedHashMap<>();   // mode -> {operations, nanos, runs}
        List<String> failures = new ArrayList<>();
        long runs = 0;
        long next = seed;
        long lastSeed = seed;
        StressConfig chosen = onlyGiven ? find(sets, emulated, seed, only, uffd) : null;
        outer:
        while (true) {
            for (List<StressDevices> set : sets) {
                List<StressConfig> round = chosen != null ? Collections.nCopies((int) repeat, chosen)
                        : StressPlan.configurations(set, mixedFor(set, emulated), next, uffd);
                next += round.size();
                for (StressConfig c : round) {
                    if (System.nanoTime() > end) {
                        break outer;
                    }
                    StressRun.Result r = new StressRun(c).run(Duration.ofSeconds(30));
                    runs++;
                    lastSeed = c.seed();
                    String mode = c.devices().getFirst().kind() + ", "
                            + (c.hostFaults() == HostFaultMode.USERFAULTFD ? "userfaultfd" : "host views")
                            + (c.workers() == 1 ? ", one worker" : ", " + c.workers() + " workers");
                    long[] m = byMode.computeIfAbsent(mode, k -> new long[3]);
                    m[0] += r.operations();
                    m[1] += r.nanos();
                    m[2]++;
                    if (!r.passed()) {
                        // the device set as resolved here ('all' without OpenCL is 'emulated'), and time for the repeats
                        String devices = sets.size() == 2 ? "all" : set.getFirst() == emulated ? "emulated" : "opencl";
                        failures.add(c.describe() + ":\n  " + String.join("\n  ", r.failures()) + "\n  rerun: hetmem stress --seed "
                                + seed + " --device " + devices + " --only " + c.seed() + " --repeat 20 --seconds 1200");
                        // long: a concurrent run's report carries the last steps of every worker on its region
                        err.println("FAILED: " + Main.printable(failures.getLast(), 20_000));
                    } else {
                        // progress on stderr with --json too (its object goes to stdout at the end, after up to a week)
                        err.printf("ok  %-110s %8.0f ops/s%n", c.describe(), r.operationsPerSecond());
                    }
                }
                if (chosen != null) {
                    break outer;   // its repeats are done
                }
            }
        }
        long ops = 0;
        for (long[] m : byMode.values()) {
            ops += m[0];
        }
        if (json) {
            Map<String, Object> root = new LinkedHashMap<>();
            root.put("command", "stress");
            root.put("first_seed", seed);
            root.put("last_seed", lastSeed);
            root.put("runs", runs);
            root.put("operations", ops);
            List<Object> modes = new ArrayList<>();
            for (Map.Entry<String, long[]> e : byMode.entrySet()) {
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("mode", e.getKey());
                m.put("runs", e.getValue()[2]);
                m.put("operations", e.getValue()[0]);
                m.put("operations_per_s", e.getValue()[1] == 0 ? 0.0 : e.getValue()[0] * 1e9 / e.getValue()[1]);
                modes.add(m);
            }
            root.put("modes", modes);
            if (device.equals("all") && noOpenCl != null) {
                root.put("opencl_left_out", noOpenCl);
            }
            root.put("failures", failures);
            out.println(Json.write(root));
        } else {
            if (chosen != null) {
                out.printf("%d runs of the configuration of seed %d, %d operations%n", runs, only, ops);
            } else {
                out.printf("%d runs, %d operations, seeds %d..%d%n", runs, ops, seed, lastSeed);
            }
            for (Map.Entry<String, long[]> e : byMode.entrySet()) {
                long[] m = e.getValue();
                out.printf("  %-40s %4d runs %9d operations %8.0f ops/s%n", e.getKey(), m[2], m[0],
                        m[1] == 0 ? 0.0 : m[0] * 1e9 / m[1]);
            }
            out.println(failures.isEmpty() ? "every run agreed with the model" : failures.size() + " run(s) failed (above)");
        }
        return failures.isEmpty() ? 0 : 1;
    }

    /** The devices beside a set's own in its mixed configurations: emulated ones, and the set's kind. */
    private static List<StressDevices> mixedFor(List<StressDevices> set, StressDevices emulated) {
        return set.getFirst() == emulated ? List.of(emulated) : List.of(emulated, set.getFirst());
    }

    /** How far past --seed an --only seed may be: about twenty thousand rounds of configurations. */
    private static final long MAX_ONLY_DISTANCE = 1_000_000;

    /** The configuration of seed {@code only} in the sequence the main loop walks from {@code seed}. */
    private static StressConfig find(List<List<StressDevices>> sets, StressDevices emulated, long seed, long only, boolean uffd) {
        long next = seed;
        while (true) {
            for (List<StressDevices> set : sets) {
                List<StressConfig> round = StressPlan.configurations(set, mixedFor(set, emulated), next, uffd);
                if (only - next < round.size()) {   // not only < next + size: that may overflow
                    return round.get((int) (only - next));
                }
                next += round.size();
            }
        }
    }
}
