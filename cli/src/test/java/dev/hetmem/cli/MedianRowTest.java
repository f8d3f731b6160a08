package dev.hetmem.cli;

import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The row that stands for a case's runs, and the paired ratios beside it. */
class MedianRowTest {
    private static Map<String, Object> run(double gbps, long nanos, boolean correct) {
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("gbps", gbps);
        r.put("nanos", nanos);
        r.put("correct", correct);
        return r;
    }

    /** Of an even number of runs the lower middle one stands for the case (it was the upper: a case of two reported its faster). */
    @Test
    void anEvenNumberOfRunsReportsTheLowerMiddleOne() {
        Map<String, Object> two = MedianRow.of(List.of(run(2.0, 1, true), run(1.0, 2, true)), "gbps");
        assertEquals(1.0, two.get("gbps"));
        assertEquals(1.0, two.get("gbps_min"));
        assertEquals(2.0, two.get("gbps_max"));
        assertEquals(2, two.get("runs"));
        Map<String, Object> three = MedianRow.of(List.of(run(3.0, 1, true), run(1.0, 3, true), run(2.0, 2, false)), "gbps");
        assertEquals(2.0, three.get("gbps"));
        assertEquals(false, three.get("correct"), "one wrong run makes the row wrong");
    }

    /** Each ratio pairs the runs of one round: baseline nanos over the run's. */
    @Test
    void pairedRatiosAreTheMedianOfEachRoundsOwn() {
        Map<String, Object> row = new LinkedHashMap<>();
        MedianRow.putPairedRatio(row, "of_explicit", List.of(run(0, 100, true), run(0, 400, true), run(0, 50, true)),
                List.of(run(0, 100, true), run(0, 200, true), run(0, 100, true)));
        assertEquals(1.0, row.get("of_explicit"));   // ratios 1.0, 0.5, 2.0
        assertEquals(0.5, row.get("of_explicit_min"));
        assertEquals(2.0, row.get("of_explicit_max"));
    }
}
