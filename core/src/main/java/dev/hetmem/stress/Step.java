package dev.hetmem.stress;

import java.util.Random;

/**
 * One operation of a stress program, with raw random parameters that are resolved against the
 * program's state when it runs (a region is "the a-th live one, modulo how many live"; offsets are
 * taken modulo the region's size). So any sub-list of a program is a valid program too, which is
 * what lets a failing program be shrunk by dropping steps.
 */
public record Step(Op op, int a, int b, long x, long y, long z) {
    /** Everything the program does, roughly weighted by how often it does it. */
    public enum Op {
        ALLOCATE(6), FREE(3), HOST_WRITE(14), HOST_READ(10), NATIVE_FILL(4), NATIVE_COPY(4), KERNEL_WRITE(10),
        KERNEL_READ(8), PREFETCH(10), PREFETCH_ASYNC(3), PREFETCH_LIST(3), READ_MOSTLY(3), PREFERRED(2),
        ACCESSED_BY(2), GRANULARITY(2), DONT_NEED(3), PROTECT(4), RELEASE(2), LOAD(2), INJECT(4), VERIFY(2),
        /** One launch over a whole region (larger than a small device): tiled by windows, or by device faults. */
        SWEEP(3),
        /** Frees a granule-aligned part of a region (munmap of part of a mapping). */
        FREE_PART(2),
        /** Device atomics on an argument taken exclusively (Access.EXCLUSIVE): each int gains 1. */
        KERNEL_ATOMIC(4);

        final int weight;

        Op(int weight) {
            this.weight = weight;
        }
    }

    private static final int TOTAL;

    static {
        int t = 0;
        for (Op o : Op.values()) {
            t += o.weight;
        }
        TOTAL = t;
    }

    /** A random step; {@code injecting} false leaves out failure injection. */
    static Step random(Random rnd, boolean injecting) {
        while (true) {
            int w = rnd.nextInt(TOTAL);
            Op op = null;
            for (Op o : Op.values()) {
                w -= o.weight;
                if (w < 0) {
                    op = o;
                    break;
                }
            }
            if (op == Op.INJECT && !injecting) {
                continue;
            }
            return new Step(op, rnd.nextInt(1 << 20), rnd.nextInt(1 << 20), rnd.nextLong() & Long.MAX_VALUE,
                    rnd.nextLong() & Long.MAX_VALUE, rnd.nextLong());
        }
    }
}
