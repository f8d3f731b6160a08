package dev.hetmem.stress;

import java.util.Random;

/**
 * One operation of a stress program, with raw random parameters that are resolved against the
 * program's state when it runs (a region is "the a-th live one, modulo how many live"; offsets are
 * taken modulo the region's size). So any sub-list of a program is a valid program too, which is
 * what lets a failing program be shrunk by dropping steps.
 *
 * <p>A step on a region does nothing while the program has no live region.
 *
 * @param op what the step does
 * @param a picks the region (the a-th live one, modulo how many are live) and some choices of the
 *        operation (an allocation's granule, a sweep's windows); random steps draw it from [0, 2^20)
 * @param b picks the node or device, a second region, a fill byte or an on/off choice; random
 *        steps draw it from [0, 2^20)
 * @param x an offset (taken modulo what fits in the region), a size, or a count; non-negative in
 *        random steps
 * @param y a length (taken modulo what fits); non-negative in random steps
 * @param z picks the kind of range (a few bytes, any length, or whole pages; page-aligned or not)
 *        and other offsets; any value
 */
public record Step(Op op, int a, int b, long x, long y, long z) {
    /** Everything the program does, roughly weighted by how often it does it. */
    public enum Op {
        /** Allocates a region of up to 8 MiB with a granule of 4 KiB, 64 KiB or 2 MiB (at most 4 live per worker). */
        ALLOCATE(6),
        /** Frees a whole region. */
        FREE(3),
        /** Writes random bytes from Java through a host view (plain stores in the userfaultfd mode). */
        HOST_WRITE(14),
        /** Reads a range from Java on the host and compares it with the model. */
        HOST_READ(10),
        /** Fills a range with one byte value by native code ({@code memset}). */
        NATIVE_FILL(4),
        /** Copies a range from one region to another (or within one) by native code ({@code memmove}). */
        NATIVE_COPY(4),
        /**
         * A kernel on a device writes random bytes to whole pages of a region, or (one in two) to an
         * argument that starts and ends inside pages (to the long; a plain pointer's start to 128
         * bytes), whose other bytes must keep their values.
         */
        KERNEL_WRITE(10),
        /** A kernel on a device reads whole pages of a region, or part of them as a write does; the bytes are compared with the model. */
        KERNEL_READ(8),
        /** Prefetches a range to a node with prefetch advice, waiting for it. */
        PREFETCH(10),
        /**
         * Prefetches a range to a node with {@code prefetchAsync}, then waits for its future; to a
         * device, now and then with {@code prefetchPlainAsync} (placed as a plain argument).
         */
        PREFETCH_ASYNC(3),
        /** Prefetches up to 8 ranges of one length to a node in one call. */
        PREFETCH_LIST(3),
        /** Turns read duplication on or off for a range. */
        READ_MOSTLY(3),
        /** Sets or clears a range's preferred location. */
        PREFERRED(2),
        /** Adds or removes a device that reaches a range where it is (accessed-by advice). */
        ACCESSED_BY(2),
        /** Changes the migration granule of a range to 4 KiB, 64 KiB or 2 MiB. */
        GRANULARITY(2),
        /** Discards a range's contents; its whole pages read as zeros afterwards. */
        DONT_NEED(3),
        /** Makes a range read-only or read-write; writes to read-only pages must be refused. */
        PROTECT(4),
        /** Drops every frame of a device, sending its pages home to the host. */
        RELEASE(2),
        /** Loads a temporary file of up to 2 MiB into a new region on a node and reads it back. */
        LOAD(2),
        /** Arms an injected allocation or copy failure on a device (only when the configuration injects). */
        INJECT(4),
        /** Checks {@code UnifiedMemory.verify()} reports no problem (one-worker runs only). */
        VERIFY(2),
        /** One launch over a whole region (larger than a small device): tiled by windows, or by device faults. */
        SWEEP(3),
        /** Frees a granule-aligned part of a region (munmap of part of a mapping). */
        FREE_PART(2),
        /** Device atomics on an argument taken exclusively (Access.EXCLUSIVE): each int gains 1. */
        KERNEL_ATOMIC(4),
        /** Hands every kept host frame back to the kernel ({@code trimHost}), racing the other workers' migrations. */
        TRIM(2),
        /**
         * One launch over a whole region with plain windows that overlap (a stencil's halo: item i reads
         * longs i and i + 1), tiled where larger than the device, into a new region compared with the model.
         */
        PAIR_SUMS(3),
        /**
         * With several workers, on the region they share (16 KiB slices dealt out in turn, so that
         * every granule holds several workers' slices; in host views mode every other seed 1 KiB
         * ones, so that workers write the same pages): a host write of part of one of this worker's
         * slices, a host read of one, a kernel writing or reading one (or part of one) on a device, a
         * discard, a protection change or (rarely) a free of one; each checks only this worker's
         * bytes. Nothing with one worker.
         */
        SHARED(8);

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
