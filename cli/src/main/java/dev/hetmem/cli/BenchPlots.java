package dev.hetmem.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * Every benchmark's table as a chart ({@code --plot FILE}): from the same JSON object {@code --json}
 * prints, so the picture and the numbers cannot disagree. Each case is a group of bars, each
 * mode a bar; the machine's limits measured in the same run are the dashed lines.
 */
final class BenchPlots {
    private BenchPlots() {}

    /**
     * Draws {@code root}'s rows into {@code file} if one was asked for; says where on {@code err}.
     * A chart that cannot be written (the disk full, no fonts) loses nothing of the run: the
     * failure is said on {@code err} and kept in {@code root} as {@code "plot_error"}, and the
     * bench prints its rows as usual, then ends with status 1 ({@link #failed}). It threw, and a
     * run of many minutes ended with its numbers nowhere.
     */
    static void write(String file, Map<String, Object> root, PrintStream err) {
        if (file == null) {
            return;
        }
        try {
            Chart chart = chart(root);
            if (chart.isEmpty()) {
                err.println("bench " + root.get("bench") + ": no rows, so no chart written to " + Main.printable(file));
                return;
            }
            chart.write(Path.of(file));
        } catch (IOException | RuntimeException | Error e) {
            // fonts missing are Errors too: the font manager's class initialisation, or the JDK's plain
            // "Probable fatal error: No fonts found."; out of memory and its like are not ours to keep
            if (e instanceof VirtualMachineError vme) {
                throw vme;
            }
            String why = "cannot write the chart to " + Main.printable(file) + ": " + Main.failureMessage(e);
            root.put("plot_error", why);
            err.println("bench " + root.get("bench") + ": " + why + " (the results follow)");
            return;
        }
        err.println("bench " + root.get("bench") + ": chart written to " + Main.printable(file));
    }

    /** Whether {@link #write} failed for {@code root}: the bench then ends with status 1. */
    static boolean failed(Map<String, Object> root) {
        return root.containsKey("plot_error");
    }

    @SuppressWarnings("unchecked")
    static Chart chart(Map<String, Object> root) {
        String bench = (String) root.get("bench");
        List<Map<String, Object>> rows = root.containsKey("rows") ? (List<Map<String, Object>>) root.get("rows") : List.of(root);
        Map<String, Object> limits = (Map<String, Object>) root.getOrDefault("limits", Map.of());
        Chart c;
        switch (bench) {
            case "migrate" -> {
                c = new Chart("hetmem bench migrate: batched page migration", "GB/s");
                for (Map<String, Object> r : rows) {
                    c.bar(Sizes.format(lng(r, "page_bytes")) + " pages, " + Sizes.format(lng(r, "total_bytes")) + " "
                            + r.get("direction"), r.get("device") + " " + r.get("mode"), num(r, "gbps"));
                }
                // the faster of memcpy and the streaming copy (older results name memcpy's alone)
                limit(c, "plain copy", limits.getOrDefault("plain_copy_gbps", limits.get("memcpy_gbps")));
            }
            case "load" -> {
                c = new Chart("hetmem bench load: files into regions", "GB/s");
                for (Map<String, Object> r : rows) {
                    c.bar(Sizes.format(lng(r, "file_bytes")) + " to " + r.get("target"),
                            r.get("scheme") + (Boolean.TRUE.equals(r.get("direct")) ? "" : " (buffered)"), num(r, "gbps"));
                }
                limit(c, "fio (the disk)", limits.get("fio_gbps"));
            }
            case "oversub" -> {
                c = new Chart("hetmem bench oversub: data larger than the device", "GB/s");
                for (Map<String, Object> r : rows) {
                    c.bar(r.get("pattern") + ", " + num(r, "ws_factor") + "x the device", (String) r.get("mode"), num(r, "gbps"));
                }
                limit(c, "plain copy", fasterCopy(limits));
            }
            case "decode" -> {
                c = new Chart("hetmem bench decode: model weights larger than the device", "tokens/s");
                for (Map<String, Object> r : rows) {
                    c.bar(r.get("device") + ", " + num(r, "weights_factor") + "x, " + r.get("dtype"), (String) r.get("mode"),
                            num(r, "tokens_per_s"));
                }
            }
            case "fault" -> {
                c = new Chart("hetmem bench fault: one host fault, median", "ns");
                for (Map<String, Object> r : rows) {
                    c.bar(Sizes.format(lng(r, "granule_bytes")) + " granule", (String) r.get("path"), num(r, "median_ns"));
                }
                limit(c, "bare userfaultfd round trip", limits.get("uffd_raw_ns"));
                limit(c, "kernel minor fault", limits.get("minor_fault_ns"));
            }
            case "translate" -> {
                c = new Chart("hetmem bench translate: mulMat on regions against plain buffers", "GFLOP/s (median)");
                for (Map<String, Object> r : rows) {
                    c.bar("m = " + r.get("m") + " on " + root.get("device"), (String) r.get("mode"), num(r, "gflops"));
                }
            }
            case "kernels" -> {
                c = new Chart("hetmem bench kernels: ordinary OpenCL kernels on data larger than the device", "GB/s");
                for (Map<String, Object> r : rows) {
                    c.bar(r.get("kernel") + ", " + num(r, "data_factor") + "x the device", (String) r.get("mode"), num(r, "gbps"));
                }
                limit(c, "plain copy", fasterCopy(limits));
            }
            default -> throw new IllegalArgumentException("no chart for bench " + bench);
        }
        return c;
    }

    /** The faster of the plain copies a bench measured: memcpy's, or the streaming copy's where there is one. */
    private static Object fasterCopy(Map<String, Object> limits) {
        Object m = limits.get("memcpy_gbps");
        Object s = limits.get("streaming_copy_gbps");
        return m instanceof Number a && s instanceof Number b ? Math.max(a.doubleValue(), b.doubleValue()) : m;
    }

    private static void limit(Chart c, String name, Object value) {
        if (value instanceof Number n && n.doubleValue() > 0) {
            c.limit(name, n.doubleValue());
        }
    }

    private static double num(Map<String, Object> r, String key) {
        return ((Number) r.get(key)).doubleValue();
    }

    private static long lng(Map<String, Object> r, String key) {
        return ((Number) r.get(key)).longValue();
    }
}
