package dev.hetmem.driver;

/**
 * The page geometry every part of hetmem shares, named once: a page is 4 KiB on every node (a
 * device frame holds one page), and pages are grouped into 2 MiB blocks, the unit of the logical
 * page table's locking and of the largest device allocation.
 *
 * <pre>
 *   byte offset in a region:  | block index (bits 63..21) | page in block (20..12) | byte in page (11..0) |
 *   page number in a region:              | block index (63..9)  | page in block (8..0) |
 * </pre>
 *
 * Every offset and page number is a {@code long}; a page inside a block is an {@code int} in [0, 512).
 */
public final class PageGeometry {
    /** log2 of the page size. */
    public static final int PAGE_SHIFT = 12;
    /** Bytes in a page (and in a device frame). */
    public static final long PAGE_BYTES = 1L << PAGE_SHIFT;
    /** log2 of the block size in bytes. */
    public static final int BLOCK_SHIFT = 21;
    /** Bytes in a block. */
    public static final long BLOCK_BYTES = 1L << BLOCK_SHIFT;
    /** log2 of the pages in a block. */
    public static final int BLOCK_PAGE_SHIFT = BLOCK_SHIFT - PAGE_SHIFT;
    /** Pages in a block. */
    public static final int BLOCK_PAGES = 1 << BLOCK_PAGE_SHIFT;

    private PageGeometry() {
    }

    /**
     * The block holding page {@code page}.
     *
     * @param page a page number in a region, at least 0
     * @return the index of its 2 MiB block ({@code page / 512})
     */
    public static long blockOf(long page) {
        return page >>> BLOCK_PAGE_SHIFT;
    }

    /**
     * The first page of block {@code block}.
     *
     * @param block a block index in a region, at least 0
     * @return the page number of the block's first page ({@code block * 512})
     */
    public static long firstPage(long block) {
        return block << BLOCK_PAGE_SHIFT;
    }

    /**
     * Page {@code page}'s index inside its block, in [0, {@link #BLOCK_PAGES}).
     *
     * @param page a page number in a region, at least 0
     * @return {@code page % 512}
     */
    public static int pageInBlock(long page) {
        return (int) (page & (BLOCK_PAGES - 1));
    }

    /**
     * Bytes in {@code pages} pages.
     *
     * @param pages a page count, at least 0
     * @return {@code pages * 4096}; not checked for overflow
     */
    public static long bytes(long pages) {
        return pages << PAGE_SHIFT;
    }

    /**
     * The page holding byte offset {@code offset}.
     *
     * @param offset a byte offset in a region, at least 0
     * @return the page number ({@code offset / 4096}, rounded down)
     */
    public static long pageOf(long offset) {
        return offset >>> PAGE_SHIFT;
    }

    /**
     * Pages needed to hold {@code bytes} bytes (rounded up).
     *
     * @param bytes a byte count, at least 0
     * @return {@code bytes / 4096} rounded up; 0 for 0 bytes
     */
    public static long pagesFor(long bytes) {
        return Math.ceilDiv(bytes, PAGE_BYTES);
    }
}
