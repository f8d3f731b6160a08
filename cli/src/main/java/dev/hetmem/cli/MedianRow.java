package dev.hetmem.cli;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** The row that stands for repeated runs of one benchmark case. */
final class MedianRow {
    private MedianRow() {}

    /**
     * The run of median {@code key} stands for the case; {@code correct} only if every run was
     * right; the spread ({@code key_min}, {@code key_max}) and the number of runs go beside it.
     */
    static Map<String, Object> of(List<Map<String, Object>> runs, String key) {
        List<Map<String, Object>> sorted = new ArrayList<>(runs);
        sorted.sort(Comparator.comparingDouble(r -> (Double) r.get(key)));
        Map<String, Object> row = new LinkedHashMap<>(sorted.get(sorted.size() / 2));
        row.put("correct", runs.stream().allMatch(r -> (Boolean) r.get("correct")));
        row.put("runs", runs.size());
        row.put(key + "_min", sorted.getFirst().get(key));
        row.put(key + "_max", sorted.getLast().get(key));
        return row;
    }
}
