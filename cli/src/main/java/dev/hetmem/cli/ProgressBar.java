package dev.hetmem.cli;

import dev.hetmem.io.LoadProgress;

import java.io.PrintStream;

/**
 * A progress bar on stderr, redrawn at most ten times a second from any thread. Where stderr is a
 * terminal it redraws one line; elsewhere (logs, CI) it prints a line every 10%.
 */
/* Its monitor is lock L21 (progress), a leaf: docs/design.md, lock table, L21. */
final class ProgressBar implements LoadProgress {
    private final PrintStream err;
    private final String label;
    private final boolean terminal;
    private final long start = System.nanoTime();
    private long lastDraw;
    private int lastDecile = -1;

    ProgressBar(PrintStream err, String label) {
        this.err = err;
        this.label = label;
        this.terminal = Terminal.isTerminal(Terminal.STDERR);
    }

    @Override
    public synchronized void progress(long done, long total) {
        long now = System.nanoTime();
        double fraction = total == 0 ? 1 : done / (double) total;
        double gbps = done / (double) Math.max(1, now - start);
        if (terminal) {
            if (now - lastDraw < 100_000_000L && done < total) {
                return;
            }
            lastDraw = now;
            int width = 30;
            int filled = (int) (fraction * width);
            err.printf("\r%s [%s%s] %3.0f%% %s of %s, %.2f GB/s", label, "#".repeat(filled), " ".repeat(width - filled),
                    100 * fraction, human(done), human(total), gbps);
            if (done >= total) {
                err.println();
            }
        } else {
            int decile = (int) (fraction * 10);
            if (decile > lastDecile) {
                lastDecile = decile;
                // a line per tenth reached, saying how far it really is (the first report may be past 0%)
                err.printf("%s %3d%% %s of %s, %.2f GB/s%n", label, (int) (100 * fraction), human(done), human(total), gbps);
            }
        }
    }

    static String human(long b) {
        if (b >= 1L << 30) {
            return String.format("%.2f GiB", b / (double) (1L << 30));
        }
        if (b >= 1L << 20) {
            return String.format("%.1f MiB", b / (double) (1L << 20));
        }
        return b + " B";
    }
}
