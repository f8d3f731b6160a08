package dev.hetmem.internal;

import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The range queries a migration asks per run ({@code firstReadOnly}, {@code firstFreed}) against a
 * model with one entry per page, over many intervals: they start from a binary search now, and
 * answer "none" at once while no interval is read-only or freed.
 */
class RangeAttributesTest {
    private static final long PAGES = 4096;

    @Test
    void firstReadOnlyAndFirstFreedAgreeWithAPageByPageModelOverManyIntervals() {
        SplittableRandom rnd = new SplittableRandom(20261206);
        for (int trial = 0; trial < 40; trial++) {
            RangeAttributes attrs = new RangeAttributes(PAGES, new RangeAttributes.Attrs(12, false, false));
            boolean[] readOnly = new boolean[(int) PAGES];
            boolean[] freed = new boolean[(int) PAGES];
            int changes = rnd.nextInt(1, 200);
            for (int c = 0; c < changes; c++) {
                long from = rnd.nextLong(PAGES);
                long to = Math.min(PAGES, from + 1 + rnd.nextLong(64));
                int kind = rnd.nextInt(4);
                attrs.update(from, to, a -> switch (kind) {
                    case 0 -> a.freed() ? a : a.withReadOnly(true);
                    case 1 -> a.freed() ? a : a.withReadOnly(false);
                    case 2 -> a.asFreed();
                    default -> a.freed() ? a : a.withReadMostly(!a.readMostly());   // splits intervals, no answer changes
                });
                for (long p = from; p < to; p++) {
                    switch (kind) {
                        case 0 -> readOnly[(int) p] = !freed[(int) p];
                        case 1 -> readOnly[(int) p] = false;
                        case 2 -> {
                            freed[(int) p] = true;
                            readOnly[(int) p] = false;
                        }
                        default -> { }
                    }
                }
                for (int q = 0; q < 20; q++) {
                    long a = rnd.nextLong(PAGES);
                    long b = a + 1 + rnd.nextLong(PAGES - a);   // not empty: callers never ask of an empty range
                    assertEquals(first(readOnly, a, b), attrs.firstReadOnly(a, b), "firstReadOnly(" + a + ", " + b + ")");
                    assertEquals(first(freed, a, b), attrs.firstFreed(a, b), "firstFreed(" + a + ", " + b + ")");
                }
            }
            assertEquals(first(readOnly, 0, PAGES), attrs.firstReadOnly(0, PAGES));
            assertEquals(first(freed, PAGES - 1, PAGES), attrs.firstFreed(PAGES - 1, PAGES));
        }
    }

    private static long first(boolean[] set, long from, long to) {
        for (long p = from; p < to; p++) {
            if (set[(int) p]) {
                return p;
            }
        }
        return -1;
    }

    /**
     * Freed pages keep their attributes whatever a later change over them asks: a protect or an
     * advice that passed its check for freed bytes just before a partial free marked part of its
     * range applies its change after the mark (no lock orders the two). It left freed pages read-only.
     */
    @Test
    void aChangeOverFreedPagesLeavesThemAsFreed() {
        RangeAttributes attrs = new RangeAttributes(64, new RangeAttributes.Attrs(12, false, false));
        attrs.update(10, 20, RangeAttributes.Attrs::asFreed);
        attrs.update(0, 40, a -> a.withReadOnly(true).withReadMostly(true).withPreferred(1).withAccessedBy(1, true));
        for (long p = 0; p < 64; p++) {
            RangeAttributes.Attrs a = attrs.at(p);
            boolean changed = p < 40 && (p < 10 || p >= 20);
            assertEquals(p >= 10 && p < 20, a.freed(), "page " + p);
            assertEquals(changed, a.readOnly(), "page " + p);
            assertEquals(changed, a.readMostly(), "page " + p);
            assertEquals(changed ? 1 : -1, a.preferred(), "page " + p);
            assertEquals(changed, a.accessedBy(1), "page " + p);
        }
        assertEquals(-1, attrs.firstReadOnly(10, 20), "no freed page is read-only");
    }
}
