package dev.hetmem.stress;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** What a failing concurrent run reports of the steps around its region. */
class StepTraceTest {
    @Test
    void notesComeTaggedInTheOrderTheyBeganFilteredByRegion() {
        StepTrace trace = new StepTrace();
        long[] step = {1};
        List<String> w0 = trace.of(0, () -> step[0]);
        List<String> w3 = trace.of(3, () -> step[0]);
        w0.add("  host write region 4 (8192 bytes) [0, +16)");
        step[0] = 7;
        w3.add("  prefetch region 41 (4096 bytes) [0, +4096) to node 1");
        w3.add("  host read region 4 (8192 bytes) [0, +16)");
        assertEquals(List.of("1 w0 #1  host write region 4 (8192 bytes) [0, +16)",
                "3 w3 #7  host read region 4 (8192 bytes) [0, +16)"), trace.mentioning("region 4 ", 40));
        assertEquals(List.of("3 w3 #7  host read region 4 (8192 bytes) [0, +16)"), trace.mentioning("region 4 ", 1),
                "the last ones when more match than asked for");
    }

    @Test
    void onlyTheLastNotesAreKept() {
        StepTrace trace = new StepTrace();
        List<String> w = trace.of(1, () -> 5);
        for (int i = 0; i < StepTrace.CAPACITY + 10; i++) {
            w.add(" region 9 note " + i);
        }
        List<String> kept = trace.mentioning("region 9 ", Integer.MAX_VALUE);
        assertEquals(StepTrace.CAPACITY, kept.size());
        assertTrue(kept.getFirst().endsWith("note 10") && kept.getLast().endsWith("note " + (StepTrace.CAPACITY + 9)), kept.getFirst());
    }
}
