package dev.hetmem.cli;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A temporary raise of the kernel's pool of 2 MiB hugetlb pages, so that fio can read into huge-page
 * buffers ({@code --iomem=shmhuge}) the way hetmem's loader does. Closing puts the pool back to the
 * size it had. Needs root; anywhere else the reservation is not {@link #held} and says why.
 */
final class HugePageReservation implements AutoCloseable {
    private static final Path NR_HUGEPAGES = Path.of("/proc/sys/vm/nr_hugepages");

    /** The pool's size to restore, or -1 when nothing was changed. */
    private long before;
    private final String whyNot;
    /** Where a failure to put the pool back is said: one line, as every failure of the command line. */
    private final java.io.PrintStream err;

    private HugePageReservation(long before, String whyNot, java.io.PrintStream err) {
        this.before = before;
        this.whyNot = whyNot;
        this.err = err;
    }

    /**
     * Adds {@code pages} free huge pages to the pool; where that is not possible (not root, or the
     * kernel found too little contiguous memory) nothing stays changed and {@link #whyNot} says why.
     */
    static HugePageReservation tryReserve(long pages, java.io.PrintStream err) {
        long before;
        long freeBefore;
        try {
            before = Long.parseLong(Files.readString(NR_HUGEPAGES).strip());
            freeBefore = meminfo("HugePages_Free");
        } catch (IOException | RuntimeException e) {
            return new HugePageReservation(-1, "cannot read the huge page pool (" + e.getMessage() + ")", err);
        }
        try {
            Files.writeString(NR_HUGEPAGES, Long.toString(before + pages));
        } catch (IOException | RuntimeException e) {
            return new HugePageReservation(-1, "cannot raise " + NR_HUGEPAGES + " (" + e.getMessage() + "; needs root)", err);
        }
        HugePageReservation r = new HugePageReservation(before, null, err);
        long gained;
        try {
            gained = meminfo("HugePages_Free") - freeBefore;
        } catch (IOException | RuntimeException e) {
            gained = 0;
        }
        if (gained < pages) {
            r.close();
            return new HugePageReservation(-1, "the kernel found only " + gained + " of " + pages + " huge pages", err);
        }
        return r;
    }

    boolean held() {
        return whyNot == null && before >= 0;
    }

    String whyNot() {
        return whyNot;
    }

    private static long meminfo(String key) throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
            if (line.startsWith(key + ":")) {
                return Long.parseLong(line.substring(key.length() + 1).strip());
            }
        }
        throw new IOException("/proc/meminfo has no " + key);
    }

    @Override
    public void close() {
        if (before >= 0) {
            try {
                Files.writeString(NR_HUGEPAGES, Long.toString(before));
            } catch (IOException | RuntimeException e) {
                // not through System.Logger, whose default handler prints the exception's class and stack
                err.println("hetmem: could not give back huge pages (" + Main.failureMessage(e) + "): " + NR_HUGEPAGES
                        + " stays raised; write " + before + " there as root to put it back");
            }
            before = -1;
        }
    }
}
