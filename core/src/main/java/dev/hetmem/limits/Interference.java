package dev.hetmem.limits;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Signs that something outside the measurement disturbed it, read from the kernel before and after
 * a benchmark row: CPU time the hypervisor gave to other guests (steal, from {@code /proc/stat}) and
 * transparent huge pages split (from {@code /proc/vmstat}: each split turns one 2 MiB page into 512
 * small ones, so later copies and releases of that memory cost more). Where a file cannot be read
 * the count reads -1.
 *
 * @param stealMillis CPU time stolen, summed over all CPUs, in milliseconds; -1 if unknown
 * @param hugePageSplits huge pages split ({@code thp_split_page}); -1 if unknown
 */
public record Interference(long stealMillis, long hugePageSplits) {
    /** USER_HZ, the unit of /proc/stat on Linux (100 on every architecture the JDK runs on). */
    private static final long TICKS_PER_SECOND = 100;

    /**
     * The counters now, since boot.
     *
     * @return steal time and huge-page splits since boot; -1 for what cannot be read
     */
    public static Interference now() {
        return new Interference(readSteal(), readSplits());
    }

    /**
     * What happened between {@code before} and this reading.
     *
     * @param before an earlier reading
     * @return the differences; -1 where either reading is unknown
     */
    public Interference since(Interference before) {
        return new Interference(diff(stealMillis, before.stealMillis), diff(hugePageSplits, before.hugePageSplits));
    }

    private static long diff(long a, long b) {
        return a < 0 || b < 0 ? -1 : a - b;
    }

    private static long readSteal() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/stat"))) {
                if (line.startsWith("cpu ")) {
                    String[] f = line.trim().split("\\s+");
                    // cpu user nice system idle iowait irq softirq steal ...
                    return f.length > 8 ? Long.parseLong(f[8]) * 1000 / TICKS_PER_SECOND : -1;
                }
            }
        } catch (IOException | RuntimeException e) {
            return -1;
        }
        return -1;
    }

    private static long readSplits() {
        try {
            List<String> lines = Files.readAllLines(Path.of("/proc/vmstat"));
            for (String line : lines) {
                if (line.startsWith("thp_split_page ")) {
                    return Long.parseLong(line.substring("thp_split_page ".length()).trim());
                }
            }
        } catch (IOException | RuntimeException e) {
            return -1;
        }
        return -1;
    }
}
