package dev.hetmem.cli;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Parses "--flag", "--key value" and "--key=value" options after a command; rejects unknown ones,
 * and words where the command takes none. "--help" and "-h" ask for the command's usage (unless the
 * command declares a "help" flag of its own).
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
        for (int i = 0; i < argv.size(); i++) {
            String a = argv.get(i);
            if ((a.equals("--help") || a.equals("-h")) && !flags.contains("help")) {
                throw new HelpRequested();
            }
            if (a.equals("-h")) {
                options.put("help", "true");
                continue;
            }
            if (a.startsWith("-") && !a.startsWith("--") && a.length() > 1) {
                throw new UsageException("unknown option " + a);
            }
            if (a.startsWith("--")) {
                String key = a.substring(2);
                String value = null;
                int eq = key.indexOf('=');
                if (eq >= 0) {
                    value = key.substring(eq + 1);
                    key = key.substring(0, eq);
                }
                if (flags.contains(key) && value == null) {
                    options.put(key, "true");
                } else if (valued.contains(key)) {
                    if (value == null) {
                        if (i + 1 >= argv.size()) {
                            throw new UsageException("option --" + key + " needs a value");
                        }
                        value = argv.get(++i);
                    }
                    options.put(key, value);
                } else {
                    throw new UsageException("unknown option --" + key);
                }
            } else {
                positional.add(a);
            }
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

    /** A whole number option within [min, max], or the fallback; out of range is a usage error naming both. */
    int intValue(String name, int fallback, int min, int max) {
        long v = longValue(name, fallback);
        if (v < min || v > max) {
            throw new UsageException("--" + name + " " + options.get(name) + " is outside [" + min + ", " + max + "]");
        }
        return (int) v;
    }

    List<String> positional() {
        return positional;
    }

    static final class UsageException extends RuntimeException {
        UsageException(String message) {
            super(message);
        }
    }
}
