package dev.hetmem.cli;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The progress lines written where stderr is not a terminal (a log, CI, a test's stream). */
class ProgressBarTest {
    /** Each line says how far the work really is: the first report of a load came at 8% and read "0%". */
    @Test
    void eachLineSaysHowFarTheWorkIs() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        ProgressBar bar = new ProgressBar(new PrintStream(bytes, true, StandardCharsets.UTF_8), "load");
        long total = 50L << 20;
        bar.progress(4L << 20, total);    // 8%: the first tenth not reached, but the first line
        bar.progress(33L << 20, total);   // 66%
        bar.progress(34L << 20, total);   // the same tenth: no line
        bar.progress(total, total);
        String[] lines = bytes.toString(StandardCharsets.UTF_8).split("\n");
        assertEquals(3, lines.length, String.join("\n", lines));
        assertEquals("load   8% 4.0 MiB of 50.0 MiB", lines[0].substring(0, lines[0].indexOf(',')));
        assertEquals("load  66% 33.0 MiB of 50.0 MiB", lines[1].substring(0, lines[1].indexOf(',')));
        assertEquals("load 100% 50.0 MiB of 50.0 MiB", lines[2].substring(0, lines[2].indexOf(',')));
    }
}
