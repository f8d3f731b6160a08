package dev.hetmem.pagetable;

import dev.hetmem.driver.PageGeometry;
import java.util.Arrays;

/**
 * Which device frame backs each page of one block on one device.
 *
 * <p>Compact while the block's pages sit at frame {@code base + page} (always so when the block
 * moved as one 2 MiB piece): one int for 512 pages. The first page placed elsewhere inflates it to
 * one int per page. The entry of a page not resident on the device is meaningless: the residency
 * bitmap decides.
 */
public final class DeviceFrames {
    static final long COMPACT_BYTES = 24;
    static final long INFLATED_BYTES = COMPACT_BYTES + 16 + 4L * PageGeometry.BLOCK_PAGES;

    private int base = Integer.MIN_VALUE;
    private int[] perPage;

    /** Returns the extra metadata bytes this call allocated (0, or the per-page array). */
    long set(int page, int frame) {
        if (perPage != null) {
            perPage[page] = frame;
            return 0;
        }
        if (base == Integer.MIN_VALUE) {
            base = frame - page;
            return 0;
        }
        if (base + page == frame) {
            return 0;
        }
        perPage = new int[PageGeometry.BLOCK_PAGES];
        Arrays.fill(perPage, -1);
        for (int p = 0; p < PageGeometry.BLOCK_PAGES; p++) {
            perPage[p] = base + p;
        }
        perPage[page] = frame;
        return INFLATED_BYTES - COMPACT_BYTES;
    }

    int get(int page) {
        return perPage != null ? perPage[page] : base + page;
    }

    boolean inflated() {
        return perPage != null;
    }
}
