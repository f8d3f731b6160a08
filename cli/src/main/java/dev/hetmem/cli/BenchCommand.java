package dev.hetmem.cli;

import java.io.PrintStream;
import java.util.List;

/** {@code hetmem bench <name>}: the benchmarks that check the project's speed goals. */
final class BenchCommand {
    private BenchCommand() {}

    static int run(List<String> argv, PrintStream out, PrintStream err) throws java.io.IOException {
        if (argv.isEmpty()) {
            throw new Args.UsageException("bench needs a name: migrate, load, oversub, decode, fault, translate, kernels");
        }
        if (argv.getFirst().equals("--help") || argv.getFirst().equals("-h")) {
            throw new Args.HelpRequested();
        }
        List<String> rest = argv.subList(1, argv.size());
        return switch (argv.getFirst()) {
            case "migrate" -> MigrateBench.run(rest, out, err);
            case "load" -> LoadBench.run(rest, out, err);
            case "oversub" -> OversubBench.run(rest, out, err);
            case "decode" -> DecodeBench.run(rest, out, err);
            case "fault" -> FaultBench.run(rest, out, err);
            case "translate" -> TranslateBench.run(rest, out, err);
            case "kernels" -> KernelsBench.run(rest, out, err);
            default -> throw new Args.UsageException("unknown benchmark '" + argv.getFirst() + "' (have: migrate, load, oversub, decode, fault, translate, kernels)");
        };
    }
}
