package dev.hetmem.cli;

import java.io.PrintStream;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * The {@code hetmem} command. With {@code --json} a command prints exactly one JSON object on
 * stdout and nothing else there; progress and notes go to stderr.
 */
public final class Main {
    private static final String USAGE = """
            usage: hetmem <command> [options]
              info [--json]                    the nodes: host and devices
              demo [--size M] [--device emulated|opencl] [--host-faults views|userfaultfd] [--json] [--map FILE]
                                               HMM's example mulMat(r, a, b, m) on a device, no copy written by the user
              bench migrate [--quick] [--json] [--sizes 16M,256M,1G] [--pages 4K,64K,2M] [--device emulated|opencl|all] [--warmup 40] [--case-warmup-ms 4000] [--plot FILE]
                                               migration throughput against the plain-copy limit (batched page migration)
              load FILE [--to host|emulated|opencl|0|1|2] [--json] [--no-progress]
                        [--scheme overlapped|direct|buffered|mmap] [--threads N] [--ring BYTES]
                                               a file into the memory space at disk speed (direct-I/O loading, as dma-buf's)
              bench load [--quick] [--json] [--sizes 512K,8M,1G,3G] [--dir DIR] [--plot FILE]
                                               loading schemes against the disk's own speed (fio)
              bench oversub [--quick] [--json] [--capacity 64M] [--reps 5] [--warmup 3] [--runs-per-round 3]
                     [--modes M,...] [--jvm-per-round | --jvm-per-case | --same-jvm] [--plot FILE]
                                               a kernel sweeping data sets larger than the device
              bench decode [--quick] [--json] [--capacity 64M] [--tokens N] [--reps 3] [--warmup 3]
                     [--runs-per-round 3] [--device emulated|opencl|all]
                     [--jvm-per-round | --jvm-per-case | --same-jvm] [--factors 0.5,2,3] [--dtypes F32,BF16] [--plot FILE]
                                               a model's layers (GEMV per token) larger than the device
              bench fault [--quick] [--json] [--plot FILE]
                                               the cost of bringing one page home, by path, beside the kernel's own
              bench translate [--quick] [--size M] [--runs N] [--json] [--plot FILE]
                                               mulMat on regions (page table, or plain arguments) against plain buffers
                                               (--runs 0, the default: about a second of runs for each size and mode)
              bench kernels [--quick] [--json] [--device-mib 32] [--factor 3] [--reps 5] [--warmup 2]
                     [--kernels saxpy,sgemm,stencil,reduce] [--plot FILE]
                                               ordinary OpenCL kernels on data larger than the device: one launch
                                               against the hand-written double-buffered program
              map [--png FILE] [--load FILE [--to host|emulated-1|emulated-2|0|1|2]] [--width N]
                                               where a region's pages are: coloured strip, and a picture (PNG);
                                               a small scenario in every state, or the region a load made
              stress [--seconds N] [--seed S] [--device emulated|opencl|all] [--only S2 [--repeat N]] [--json]
                                               seeded random programs against a model of every byte
              (--plot FILE: the table as a chart, PNG or SVG by the name's ending, limits as dashed lines)
              jmh [JMH options]                JMH micro-benchmarks (./hetmem jmh)
              test                             the whole test suite (./hetmem test)
              build                            rebuilds the jars (other commands do when the sources changed)
              version                          the version (also --version, -V)
              help                             this text (also --help, -h; COMMAND --help for one command)
            """;

    /** The version of this build: the project's, written into version.properties by Maven. */
    static String version() {
        try (java.io.InputStream in = Main.class.getResourceAsStream("version.properties")) {
            java.util.Properties p = new java.util.Properties();
            if (in != null) {
                p.load(in);
            }
            return p.getProperty("version", "unknown");
        } catch (java.io.IOException e) {
            return "unknown";
        }
    }

    /** "bench NAME" for a benchmark, else the command itself. */
    private static String commandWords(String cmd, List<String> rest) {
        return cmd.equals("bench") && !rest.isEmpty() && !rest.getFirst().startsWith("-") ? "bench " + rest.getFirst() : cmd;
    }

    /** The usage lines of one command ("bench migrate", "load"), or all of them if it has none. */
    static String usageOf(String command) {
        StringBuilder b = new StringBuilder("usage: hetmem " + command + " [options]\n");
        boolean in = false;
        boolean any = false;
        for (String line : USAGE.split("\n")) {
            if (line.startsWith("  (") && command.startsWith("bench ")) {
                b.append(line).append('\n');   // the note on --plot, which every bench takes
                continue;
            }
            if (line.startsWith("  ") && !line.startsWith("   ")) {
                in = (line.substring(2) + " ").startsWith(command + " ");
            }
            if (in) {
                b.append(line).append('\n');
                any = true;
            }
        }
        return any ? b.toString() : USAGE;
    }

    private Main() {}

    /**
     * A string from a file or the user, safe for a terminal: control characters (an ESC sequence
     * in a tensor name could clear the screen) become backslash-u escapes of their code, and a long one is cut.
     */
    static String printable(String s) {
        return printable(s, 2000);
    }

    /** As {@link #printable(String)}, cut after {@code max} characters. */
    static String printable(String s, int max) {
        StringBuilder b = new StringBuilder(Math.min(s.length(), max));
        for (int i = 0; i < s.length() && b.length() < max; i++) {
            char c = s.charAt(i);
            if (Character.isISOControl(c) && c != '\n' || Character.isSurrogate(c)
                    && !(Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1)))
                    && !(Character.isLowSurrogate(c) && i > 0 && Character.isHighSurrogate(s.charAt(i - 1)))) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        if (b.length() >= max) {
            b.append("...");
        }
        return b.toString();
    }

    public static void main(String[] argv) {
        // numbers in tables and messages read the same everywhere ("2.5 GB/s", never "2,5" beside ranges
        // written "2.1-2.9"): the command line is a tool's output, compared across machines and parsed
        Locale.setDefault(Locale.Category.FORMAT, Locale.ROOT);
        int status = run(Arrays.asList(argv), System.out, System.err);
        // a PrintStream keeps its write errors to itself: without this, output lost to a full disk or
        // a closed pipe (a bench's --json > results.json) ended with status 0
        if (System.out.checkError()) {
            System.err.println("hetmem: the output could not be written (standard output closed, or its disk full)");
            status = status == 0 ? 1 : status;
        }
        System.exit(status);
    }

    static int run(List<String> argv, PrintStream out, PrintStream err) {
        if (argv.isEmpty() || argv.getFirst().equals("--help") || argv.getFirst().equals("-h")
                || argv.getFirst().equals("help")) {
            if (argv.size() > 1) {
                // 'help load', 'help bench decode': that command's own help (an unknown one is a usage error)
                List<String> asked = new java.util.ArrayList<>(argv.subList(1, argv.size()));
                asked.add("--help");
                return run(asked, out, err);
            }
            (argv.isEmpty() ? err : out).print(USAGE);
            return argv.isEmpty() ? 2 : 0;
        }
        if (argv.getFirst().equals("--version") || argv.getFirst().equals("-V") || argv.getFirst().equals("version")) {
            if (argv.size() > 1) {
                err.println("hetmem version: unexpected argument '" + printable(argv.get(1)) + "'");
                return 2;
            }
            out.println("hetmem " + version());
            return 0;
        }
        String cmd = argv.getFirst();
        List<String> rest = argv.subList(1, argv.size());
        try {
            return switch (cmd) {
                case "info" -> InfoCommand.run(rest, out);
                case "demo" -> DemoCommand.run(rest, out, err);
                case "bench" -> BenchCommand.run(rest, out, err);
                case "load" -> LoadCommand.run(rest, out, err);
                case "stress" -> StressCommand.run(rest, out, err);
                case "map" -> MapCommand.run(rest, out, err);
                default -> {
                    err.println("hetmem: unknown command '" + cmd + "'");
                    err.print(USAGE);
                    yield 2;
                }
            };
        } catch (Args.HelpRequested e) {
            out.print(usageOf(commandWords(cmd, rest)));
            return 0;
        } catch (Args.UsageException e) {
            err.println("hetmem " + commandWords(cmd, rest) + ": " + printable(e.getMessage()));
            err.print(usageOf(commandWords(cmd, rest)));
            return jsonError(argv, out, commandWords(cmd, rest), e.getMessage(), 2);
        } catch (java.io.IOException | RuntimeException e) {
            // one line, no class name or stack trace: what went wrong, in the exception's own words
            // (a failure on another thread comes wrapped: its cause says what it was)
            String message = failureMessage(e);
            err.println("hetmem " + commandWords(cmd, rest) + ": " + printable(message));
            traceIfAsked(e, err);
            return jsonError(argv, out, commandWords(cmd, rest), message, 1);
        } catch (OutOfMemoryError e) {
            String message = "out of Java heap; " + lessToAskFor(commandWords(cmd, rest))
                    + ", or give the JVM more (HETMEM_JAVA_OPTS=-Xmx...)";
            err.println("hetmem " + commandWords(cmd, rest) + ": " + message);
            traceIfAsked(e, err);
            return jsonError(argv, out, commandWords(cmd, rest), message, 1);
        } catch (Error e) {
            // a stack overflow, a failed assertion, a class or native library that would not load:
            // hetmem's fault or its installation's, said in one line as every other failure is
            String message = INTERNAL_ERROR;
            err.println("hetmem " + commandWords(cmd, rest) + ": " + message);
            traceIfAsked(e, err);
            return jsonError(argv, out, commandWords(cmd, rest), message, 1);
        }
    }

    /** For an out-of-memory message: the option of {@code words}' command that asks for less, where it has one. */
    static String lessToAskFor(String words) {
        return switch (words) {
            case "bench migrate", "bench load" -> "ask for less (smaller --sizes)";
            case "bench oversub", "bench decode" -> "ask for less (a smaller --capacity)";
            case "bench kernels" -> "ask for less (a smaller --device-mib)";
            case "demo", "bench translate" -> "ask for less (a smaller --size)";
            default -> "ask for less";
        };
    }

    /**
     * What went wrong, in the exception's own words, for one line: a failure on another thread
     * comes wrapped, and its cause says what it was. One without words is a fault of hetmem's
     * (its own failures all say what went wrong): it says so, and how to see where, not the
     * exception's class name.
     */
    static String failureMessage(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null && (t instanceof java.util.concurrent.CompletionException
                || t instanceof java.util.concurrent.ExecutionException || wrapsOnly(t))) {
            t = t.getCause();
        }
        if (t.getMessage() == null || t.getMessage().isBlank() || isProgrammingError(t)) {
            return INTERNAL_ERROR;
        }
        if (t instanceof java.nio.file.FileSystemException f && f.getReason() == null) {
            // the JDK's AccessDeniedException and its kind say the path alone: what happened is in the class
            return f.getMessage() + ": " + fileProblem(f);
        }
        return t.getMessage();
    }

    /** What a file-system exception without a reason means, in words. */
    private static String fileProblem(java.nio.file.FileSystemException f) {
        return switch (f) {
            case java.nio.file.AccessDeniedException a -> "permission denied";
            case java.nio.file.NoSuchFileException n -> "no such file or folder";
            case java.nio.file.FileAlreadyExistsException x -> "already exists";
            case java.nio.file.NotDirectoryException n -> "not a folder";
            case java.nio.file.DirectoryNotEmptyException d -> "folder not empty";
            default -> "the file system refused";
        };
    }

    /** A wrapper that says nothing of its own: its message is its cause's class name and message. */
    private static boolean wrapsOnly(Throwable t) {
        return t.getMessage() == null || t.getMessage().equals(t.getCause().toString());
    }

    /**
     * Exceptions hetmem never throws on purpose (its own failures all say what went wrong in words):
     * their messages name classes, methods and indexes of its code, nothing the user can act on. An
     * {@code IndexOutOfBoundsException} is one only in the JDK's words ("Index 5 out of bounds for
     * length 3"): hetmem's own, for a range outside a region, names the range and the region.
     */
    private static boolean isProgrammingError(Throwable t) {
        return t instanceof NullPointerException || t instanceof ClassCastException
                || t instanceof ArrayIndexOutOfBoundsException || t instanceof StringIndexOutOfBoundsException
                || (t instanceof IndexOutOfBoundsException && JDK_INDEX_MESSAGE.matcher(String.valueOf(t.getMessage())).find())
                || t instanceof ArithmeticException || t instanceof ArrayStoreException
                || t instanceof NegativeArraySizeException || t instanceof IllegalMonitorStateException
                || t instanceof java.util.ConcurrentModificationException;
    }

    /** How the JDK's index checks ({@code Objects.checkIndex}, lists) word a failure. */
    private static final java.util.regex.Pattern JDK_INDEX_MESSAGE =
            java.util.regex.Pattern.compile("^(Index|Range \\[).* out of bounds for length -?\\d+$");

    /** What a failure says that is hetmem's own fault: that, and how to see where for a report. */
    static final String INTERNAL_ERROR = "failed: an internal error of hetmem; " + Main.TRACE_VARIABLE
            + "=1 prints where it happened, for a report";

    /** Prints the failure's stack trace after its line where {@link #TRACE_VARIABLE} asks for it. */
    private static void traceIfAsked(Throwable e, PrintStream err) {
        if ("1".equals(System.getenv(TRACE_VARIABLE))) {
            e.printStackTrace(err);
        }
    }

    /** Set to 1, a failure's stack trace follows its one-line message on stderr. */
    static final String TRACE_VARIABLE = "HETMEM_TRACE";

    /**
     * Where the command was asked for JSON, its failure is one JSON object on stdout too (the
     * message is on stderr either way), so that a program reading stdout always gets an object:
     * {@code {"error": ..., "command": ..., "exit": ...}}. Returns {@code code}.
     */
    private static int jsonError(List<String> argv, PrintStream out, String command, String message, int code) {
        // asked for among the options: after "--" it is a file's name (load -- --json), not the option
        int end = argv.indexOf("--");
        if ((end < 0 ? argv : argv.subList(0, end)).contains("--json")) {
            java.util.Map<String, Object> o = new java.util.LinkedHashMap<>();
            o.put("error", message);
            o.put("command", command);
            o.put("exit", code);
            out.println(Json.write(o));
        }
        return code;
    }
}
