package dev.hetmem.cli;

import picocli.CommandLine;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * One command's options, parsed by picocli from the command's declaration: "--flag", "--key
 * value" and "--key=value" after the command; unknown options, a missing value, and words where
 * the command takes none are usage errors with a one-line reason. "--help" and "-h" ask for the
 * command's usage (or, where the command declares a "help" flag of its own, set it).
 */
final class Args {
    private final Map<String, String> options = new LinkedHashMap<>();
    private final List<String> positional = new ArrayList<>();

    /** A command that takes options only. */
    Args(List<String> argv, Set<String> flags, Set<String> valued) {
        this(argv, flags, valued, 0);
    }

    /** A command that takes at most {@code maxPositional} words besides its options. */
    Args(List<String> argv, Set<String> flags, Set<String> valued, int maxPositional) {
        CommandLine.Model.CommandSpec spec = CommandLine.Model.CommandSpec.create();
        spec.parser().overwrittenOptionsAllowed(true);   // the last of a repeated option wins
        spec.parser().expandAtFiles(false);               // "@weights.bin" is a file name, not a list of arguments
        boolean ownHelp = flags.contains("help");
        spec.addOption(CommandLine.Model.OptionSpec.builder("-h", "--help").arity("0").type(boolean.class)
                .usageHelp(!ownHelp).build());
        for (String f : flags) {
            if (!f.equals("help")) {
                spec.addOption(CommandLine.Model.OptionSpec.builder("--" + f).arity("0").type(boolean.class).build());
            }
        }
        for (String v : valued) {
            spec.addOption(CommandLine.Model.OptionSpec.builder("--" + v).arity("1").type(String.class).build());
        }
        spec.addPositional(CommandLine.Model.PositionalParamSpec.builder().arity("0..*").type(String[].class).build());
        CommandLine.ParseResult parsed;
        try {
            parsed = new CommandLine(spec).parseArgs(argv.toArray(String[]::new));
        } catch (CommandLine.UnmatchedArgumentException e) {
            String first = e.getUnmatched().isEmpty() ? "?" : e.getUnmatched().getFirst();
            throw new UsageException(first.startsWith("-") ? "unknown option " + first : "unexpected argument '" + first + "'");
        } catch (CommandLine.MissingParameterException e) {
            String name = e.getMissing().isEmpty() || !(e.getMissing().getFirst() instanceof CommandLine.Model.OptionSpec o)
                    ? "an option" : "option " + o.longestName();
            throw new UsageException(name + " needs a value");
        } catch (CommandLine.ParameterException e) {
            throw new UsageException(e.getMessage());
        }
        if (parsed.isUsageHelpRequested()) {
            throw new HelpRequested();
        }
        for (CommandLine.Model.OptionSpec o : parsed.matchedOptions()) {
            String key = o.longestName().substring(2);
            options.put(key, o.arity().max() == 0 ? "true" : parsed.matchedOptionValue(o.longestName(), ""));
        }
        for (CommandLine.Model.PositionalParamSpec p : parsed.matchedPositionals()) {
            positional.addAll(p.originalStringValues());
        }
        if (positional.size() > maxPositional) {
            throw new UsageException("unexpected argument '" + positional.get(maxPositional) + "'");
        }
    }

    /** "--help" or "-h": the caller prints the command's usage and exits 0. */
    static final class HelpRequested extends RuntimeException {
        HelpRequested() {
            super("help", null, false, false);
        }
    }

    boolean flag(String name) {
        return options.containsKey(name);
    }

    String value(String name, String fallback) {
        return options.getOrDefault(name, fallback);
    }

    long longValue(String name, long fallback) {
        String v = options.get(name);
        if (v == null) {
            return fallback;
        }
        try {
            return Sizes.parse(v);
        } catch (IllegalArgumentException e) {
            throw new UsageException("--" + name + ": " + e.getMessage());
        }
    }

    /**
     * A comma-separated list of sizes ({@code 512K,8M,1G}), or the fallback's; an item that is not a
     * size, an empty item or an empty list is a usage error naming the option.
     */
    List<Long> sizeList(String name, String fallback) {
        String v = options.getOrDefault(name, fallback);
        List<Long> out = new ArrayList<>();
        for (String part : v.split(",", -1)) {
            if (part.isBlank()) {
                throw new UsageException("--" + name + " " + v + ": an empty item (expected sizes separated by commas, like 8M,1G)");
            }
            try {
                out.add(Sizes.parse(part.strip()));
            } catch (IllegalArgumentException e) {
                throw new UsageException("--" + name + ": " + e.getMessage());
            }
        }
        return out;
    }

    /** A whole number option (no size suffix, any sign: a seed), or the fallback; anything else is a usage error. */
    long numberValue(String name, long fallback) {
        String v = options.get(name);
        if (v == null) {
            return fallback;
        }
        try {
            return Long.parseLong(v.trim());
        } catch (NumberFormatException e) {
            throw new UsageException("--" + name + " " + v + " is not a whole number in [" + Long.MIN_VALUE + ", " + Long.MAX_VALUE + "]");
        }
    }

    /** A whole number option within [min, max], or the fallback; out of range is a usage error naming both. */
    int intValue(String name, int fallback, int min, int max) {
        return (int) countValue(name, fallback, min, max);
    }

    /**
     * A count (a whole number, no size suffix) within [min, max], or the fallback; anything else is
     * a usage error that names the value and the range (counts were read as sizes: "size -1 out of
     * range", and "--reps 1K" was 1024 reps).
     */
    long countValue(String name, long fallback, long min, long max) {
        String v = options.get(name);
        if (v == null) {
            return fallback;
        }
        long n;
        try {
            n = Long.parseLong(v.trim());
        } catch (NumberFormatException e) {
            throw new UsageException("--" + name + " " + v + " is not a whole number in [" + min + ", " + max + "]");
        }
        if (n < min || n > max) {
            throw new UsageException("--" + name + " " + v + " is outside [" + min + ", " + max + "]");
        }
        return n;
    }

    /**
     * A plain decimal ({@code 3}, {@code 0.5}, {@code 1e2}): {@code Double.parseDouble} also takes
     * "NaN", "Infinity", hex floats and "2d", which are no values of an option.
     *
     * @throws NumberFormatException for anything else
     */
    static double plainDecimal(String v) {
        // no digit shared between two groups: the pattern stays linear on a long run of digits
        if (!v.trim().matches("[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)?")) {
            throw new NumberFormatException(v);
        }
        return Double.parseDouble(v.trim());
    }

    /** A decimal number option within [min, max] (not NaN), or the fallback; anything else is a usage error. */
    double decimalValue(String name, double fallback, double min, double max) {
        String v = options.get(name);
        if (v == null) {
            return fallback;
        }
        double d;
        try {
            d = plainDecimal(v);
        } catch (NumberFormatException e) {
            throw new UsageException("--" + name + " " + v + " is not a number in [" + min + ", " + max + "]");
        }
        if (!(d >= min && d <= max)) {
            throw new UsageException("--" + name + " " + v + " is outside [" + min + ", " + max + "]");
        }
        return d;
    }

    List<String> positional() {
        return positional;
    }

    static final class UsageException extends RuntimeException {
        UsageException(String message) {
            super(message);
        }
    }

    /**
     * A file the user named: a usage error for an empty name (which would read as the current folder)
     * or one that is no path here (a NUL byte), naming {@code what} (the option, or FILE).
     */
    static java.nio.file.Path filePath(String what, String name) {
        if (name.isEmpty()) {
            throw new UsageException(what + " is empty: name a file");
        }
        try {
            return java.nio.file.Path.of(name);
        } catch (java.nio.file.InvalidPathException e) {
            throw new UsageException(what + " " + Main.printable(name) + ": not a file name (" + e.getReason() + ")");
        }
    }
}
