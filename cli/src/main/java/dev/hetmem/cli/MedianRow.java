package dev.hetmem.cli;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** The row that stands for repeated runs of one benchmark case. */
final class MedianRow {
    private MedianRow() {}

    /**
     * The run of median {@code key} stands for the case (of an even number of runs, the lower of the
     * two middle ones: it used to be the upper, so that a case of two runs reported its faster one);
     * {@code correct} only if every run was right; the spread ({@code key_min}, {@code key_max}) and
     * the number of runs go beside it.
     */
    static Map<String, Object> of(List<Map<String, Object>> runs, String key) {
        List<Map<String, Object>> sorted = new ArrayList<>(runs);
        sorted.sort(Comparator.comparingDouble(r -> (Double) r.get(key)));
        Map<String, Object> row = new LinkedHashMap<>(sorted.get((sorted.size() - 1) / 2));
        row.put("correct", runs.stream().allMatch(r -> (Boolean) r.get("correct")));
        row.put("runs", runs.size());
        row.put(key + "_min", sorted.getFirst().get(key));
        row.put(key + "_max", sorted.getLast().get(key));
        return row;
    }

    /**
     * Puts {@code name} (the median of the per-round ratios of throughput, {@code baseline[i]}'s
     * {@code nanos} over {@code runs[i]}'s: the two runs of round i do the same work),
     * {@code name_min} and {@code name_max} into {@code row}. Each ratio compares two runs made
     * back to back in one round, so drift in the machine's speed between rounds (these machines are
     * shared: plain-copy bandwidth moves 2x within an hour) cancels out of it, as it does not out of
     * a ratio of two medians taken over different rounds. Durations, not the rounded rates, so that
     * slow rows (a few MB/s) keep their precision.
     *
     * @throws IllegalArgumentException unless both lists hold the same number (at least one) of runs
     */
    static void putPairedRatio(Map<String, Object> row, String name, List<Map<String, Object>> runs,
                               List<Map<String, Object>> baseline) {
        if (runs.isEmpty() || runs.size() != baseline.size()) {
            throw new IllegalArgumentException("paired ratios need as many runs as baseline runs, at least one: "
                    + runs.size() + " and " + baseline.size());
        }
        int n = runs.size();
        double[] ratios = new double[n];
        for (int i = 0; i < n; i++) {
            ratios[i] = (double) Math.max(1, (Long) baseline.get(i).get("nanos")) / Math.max(1, (Long) runs.get(i).get("nanos"));
        }
        Arrays.sort(ratios);
        double median = n % 2 == 1 ? ratios[n / 2] : (ratios[n / 2 - 1] + ratios[n / 2]) / 2;
        row.put(name, round3(median));
        row.put(name + "_min", round3(ratios[0]));
        row.put(name + "_max", round3(ratios[n - 1]));
    }

    private static double round3(double v) {
        return Math.round(v * 1000) / 1000.0;
    }
}
