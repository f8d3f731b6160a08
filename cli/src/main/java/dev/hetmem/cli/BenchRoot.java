package dev.hetmem.cli;

import java.io.PrintStream;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The one JSON object a streaming-data bench prints ({@code oversub}, {@code kernels}): its name,
 * the plain-copy limits measured in the same run, the device's capacity and the rows.
 */
final class BenchRoot {
    private BenchRoot() {}

    static Map<String, Object> of(String bench, CopyLimits limits, long capacity, List<Map<String, Object>> rows) {
        Map<String, Object> root = new LinkedHashMap<>();
        root.put("bench", bench);
        root.put("limits", limits.json());
        root.put("device_capacity_bytes", capacity);
        root.put("rows", rows);
        return root;
    }

    /**
     * Draws the chart ({@code --plot}) first (a chart that fails is said and kept in the object as
     * {@code "plot_error"}, and the bench ends with status 1: {@link BenchPlots#write}); then prints
     * the object with {@code --json}. Returns whether it printed it (else the caller prints its table).
     */
    static boolean emit(Map<String, Object> root, String plot, Args args, PrintStream out, PrintStream err) {
        BenchPlots.write(plot, root, err);
        if (args.flag("json")) {
            out.println(Json.write(root));
            return true;
        }
        return false;
    }
}
