package dev.hetmem.cli;

import dev.hetmem.Access;
import dev.hetmem.Advice;
import dev.hetmem.HostView;
import dev.hetmem.KernelArg;
import dev.hetmem.Region;
import dev.hetmem.UnifiedMemory;
import dev.hetmem.device.opencl.OpenClDevice;
import dev.hetmem.device.opencl.OpenClKernel;
import dev.hetmem.device.opencl.OpenClProgram;
import dev.hetmem.device.opencl.PlainBuffers;
import dev.hetmem.limits.NativeBuffer;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * The four kernels of {@code ordinary.cl} (SAXPY, a tiled SGEMM with local memory, a 2-D stencil
 * with halos, a work-group reduction), written as for plain buffers, and the two host programs
 * that run them over data of any size: on hetmem regions in one launch (plain arguments, tiled by
 * their declared windows where the data is larger than the device), and the explicit program a
 * user writes today (chunks copied into two sets of plain buffers by hand while the previous chunk
 * computes). Both start with the data in host memory and end with the results there; a CPU
 * computation checks them.
 */
final class OrdinaryKernels {
    static final String SOURCE = KernelSources.text("ordinary.cl");
    /** SGEMM's tile (TS in ordinary.cl), and its K and N (B is K x N, whole on the device). */
    static final int TILE = 16;
    static final int GEMM_K = 256;
    static final int GEMM_N = 256;
    /** The stencil's width (W): a multiple of its work-group's 16 columns. */
    static final int STENCIL_W = 1024;
    /** The reduction's work-group (RG in ordinary.cl). */
    static final int REDUCE_GROUP = 256;
    static final float SAXPY_A = 2.5f;

    private OrdinaryKernels() {}

    enum Kind {
        SAXPY, SGEMM, STENCIL, REDUCE;

        String kernelName() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }
    }

    /**
     * One array of a problem: its bytes, how the kernel uses it, and its per-item window (stride 0:
     * whole; {@code group} items share one window).
     */
    record Array(long bytes, Access access, long stride, long extent, long group) {
        boolean windowed() {
            return stride > 0;
        }

        /** Bytes [start, end) of this array that items [from, to) touch. */
        long[] window(long from, long to) {
            if (!windowed()) {
                return new long[] {0, bytes};
            }
            long start = Math.min(bytes, from / group * stride);
            long end = Math.min(bytes, (to - 1) / group * stride + extent);
            return new long[] {start, Math.max(start, end)};
        }

        KernelArg arg(Region r) {
            KernelArg a = KernelArg.of(r, 0, bytes, access);
            return windowed() ? a.perItems(group, stride, extent) : a;
        }
    }

    /** A kernel over {@code items} work items (rows, for the 2-D ones), with its arrays. */
    record Problem(Kind kind, long items) {
        /** The problem with about {@code bytes} of arrays in all. */
        static Problem ofBytes(Kind kind, long bytes) {
            long items = switch (kind) {
                case SAXPY -> bytes / 8;
                case SGEMM -> Math.max(TILE, bytes / (4L * (GEMM_K + GEMM_N)) / TILE * TILE);
                case STENCIL -> Math.max(1, bytes / (8L * STENCIL_W));
                case REDUCE -> Math.max(REDUCE_GROUP, bytes / 4 / REDUCE_GROUP * REDUCE_GROUP);
            };
            return new Problem(kind, items);
        }

        List<Array> arrays() {
            return switch (kind) {
                case SAXPY -> List.of(new Array(4 * items, Access.READ, 4, 4, 1), new Array(4 * items, Access.READ_WRITE, 4, 4, 1));
                case SGEMM -> List.of(new Array(4L * GEMM_K * items, Access.READ, 4L * GEMM_K, 4L * GEMM_K, 1),
                        new Array(4L * GEMM_K * GEMM_N, Access.READ, 0, 0, 1),
                        new Array(4L * GEMM_N * items, Access.WRITE, 4L * GEMM_N, 4L * GEMM_N, 1));
                case STENCIL -> List.of(new Array(4L * (STENCIL_W + 2) * (items + 2), Access.READ, 4L * (STENCIL_W + 2),
                                3L * 4 * (STENCIL_W + 2), 1),
                        new Array(4L * STENCIL_W * items, Access.WRITE, 4L * STENCIL_W, 4L * STENCIL_W, 1));
                case REDUCE -> List.of(new Array(4 * items, Access.READ, 4, 4, 1),
                        new Array(4 * (items / REDUCE_GROUP), Access.WRITE, 4, 4, REDUCE_GROUP));
            };
        }

        long bytes() {
            return arrays().stream().mapToLong(Array::bytes).sum();
        }

        /** The array the kernel's result is in. */
        int output() {
            return arrays().size() - 1;
        }

        OpenClKernel kernel(OpenClProgram p) {
            return switch (kind) {
                case SAXPY -> p.kernel("saxpy", SAXPY_A);
                case SGEMM -> p.kernel("sgemm", (int) items, GEMM_N, GEMM_K).rows(GEMM_N, TILE, TILE);
                case STENCIL -> p.kernel("stencil", STENCIL_W).rows(STENCIL_W, TILE, 1);
                case REDUCE -> p.kernel("reduce").local(REDUCE_GROUP);
            };
        }

        /** Input element {@code i} of array {@code a}: small values, so that sums stay exact enough to compare. */
        static float input(int a, long i) {
            return (float) (((i * 2654435761L + a * 40503L) & 1023) - 512) / 1024f;
        }

        /** The inputs as a CPU computation sees them (zeros for write-only arrays). */
        float[][] inputs() {
            List<Array> arrays = arrays();
            float[][] v = new float[arrays.size()][];
            for (int a = 0; a < v.length; a++) {
                v[a] = new float[Math.toIntExact(arrays.get(a).bytes() / 4)];
                if (arrays.get(a).access() != Access.WRITE) {
                    for (int i = 0; i < v[a].length; i++) {
                        v[a][i] = input(a, i);
                    }
                }
            }
            return v;
        }

        /** The output array computed on the CPU. */
        float[] expected() {
            float[][] in = inputs();
            int n = Math.toIntExact(items);
            float[] out = new float[in[output()].length];
            switch (kind) {
                case SAXPY -> {
                    for (int i = 0; i < n; i++) {
                        out[i] = SAXPY_A * in[0][i] + in[1][i];
                    }
                }
                case SGEMM -> {
                    for (int r = 0; r < n; r++) {
                        for (int c = 0; c < GEMM_N; c++) {
                            float acc = 0;
                            for (int k = 0; k < GEMM_K; k++) {
                                acc += in[0][r * GEMM_K + k] * in[1][k * GEMM_N + c];
                            }
                            out[r * GEMM_N + c] = acc;
                        }
                    }
                }
                case STENCIL -> {
                    int p = STENCIL_W + 2;
                    for (int y = 0; y < n; y++) {
                        for (int x = 0; x < STENCIL_W; x++) {
                            out[y * STENCIL_W + x] = 0.2f * (in[0][(y + 1) * p + x + 1] + in[0][y * p + x + 1]
                                    + in[0][(y + 2) * p + x + 1] + in[0][(y + 1) * p + x] + in[0][(y + 1) * p + x + 2]);
                        }
                    }
                }
                case REDUCE -> {
                    for (int g = 0; g < out.length; g++) {
                        float s = 0;
                        for (int i = 0; i < REDUCE_GROUP; i++) {
                            s += in[0][g * REDUCE_GROUP + i];
                        }
                        out[g] = s;
                    }
                }
            }
            return out;
        }

        /** Elements of {@code got} that differ from the CPU's result by more than rounding allows. */
        long wrong(float[] got) {
            return OrdinaryKernels.wrong(got, expected());
        }
    }

    /** Elements of {@code got} that differ from {@code want} by more than float rounding allows. */
    static long wrong(float[] got, float[] want) {
        long bad = got.length == want.length ? 0 : Math.abs(got.length - want.length);
        for (int i = 0; i < Math.min(got.length, want.length); i++) {
            if (!(Math.abs(got[i] - want[i]) <= 1e-4f * Math.max(1f, Math.abs(want[i])))) {
                bad++;
            }
        }
        return bad;
    }

    /**
     * hetmem: the problem's arrays as regions (the inputs filled from host memory before the clock
     * starts; outputs that are only written left as allocated),
     * one launch (tiled where larger than the device), then the output brought home. Returns the
     * output; {@code nanos[0]} the time from the launch to the output at home.
     */
    static float[] onRegions(UnifiedMemory mem, int node, OpenClProgram program, Problem pr, long[] nanos) {
        return onRegions(mem, node, program, pr, nanos, new long[2]);
    }

    /** As above; {@code moved} gets the bytes migrated (both ways) and the evictions while timed. */
    static float[] onRegions(UnifiedMemory mem, int node, OpenClProgram program, Problem pr, long[] nanos, long[] moved) {
        List<Array> arrays = pr.arrays();
        List<Region> regions = new ArrayList<>();
        try {
            float[][] in = pr.inputs();
            KernelArg[] args = new KernelArg[arrays.size()];
            for (int a = 0; a < arrays.size(); a++) {
                Region r = mem.allocate(arrays.get(a).bytes());
                regions.add(r);
                if (arrays.get(a).access() != Access.WRITE) {
                    // an output only written is left as allocated (it reads as zeros), as the explicit program
                    // leaves its output buffers unfilled: its pages have no contents to bring to the device
                    try (HostView v = r.host(0, r.size(), Access.WRITE)) {
                        MemorySegment.copy(in[a], 0, v.segment(), ValueLayout.JAVA_FLOAT, 0, in[a].length);
                    }
                }
                args[a] = arrays.get(a).arg(r);
            }
            Region out = regions.get(pr.output());
            dev.hetmem.Stats before = mem.stats();
            long t0 = System.nanoTime();
            mem.launch(node, pr.kernel(program), pr.items(), args);
            mem.advise(out, 0, out.size(), new Advice.Prefetch(0));
            nanos[0] = System.nanoTime() - t0;
            dev.hetmem.Stats after = mem.stats();
            moved[0] = (after.node(0).pagesMigrated() + after.node(node).pagesMigrated() - before.node(0).pagesMigrated()
                    - before.node(node).pagesMigrated()) * 4096;
            moved[1] = after.node(node).evictions() - before.node(node).evictions();
            try (HostView v = out.host(0, out.size(), Access.READ)) {
                return v.segment().toArray(ValueLayout.JAVA_FLOAT);
            }
        } finally {
            for (Region r : regions) {
                r.free();
            }
        }
    }

    /**
     * Writes every byte of the buffers once (zeros): OpenCL implementations back a buffer's memory
     * on first use, PoCL's CPU device by the host's page faults (0.4-2 GB/s on this project's
     * machines), which a GPU's memory does not pay and hetmem's populated or already used device
     * memory does not either. The explicit programs do it before their time starts.
     */
    static void backNow(List<OpenClDevice.PlainBuffer> buffers) {
        try (Arena a = Arena.ofConfined()) {
            for (OpenClDevice.PlainBuffer b : buffers) {
                b.write(a.allocate(b.byteSize()));
            }
        }
    }

    /**
     * The explicit program: the arrays in plain host memory (inputs filled before the clock
     * starts, outputs that are only written mapped and untouched, as {@link #onRegions} leaves
     * them); whole arrays uploaded once, windowed
     * ones chunk by chunk into two sets of plain buffers, each chunk's windows at most
     * {@code chunkBytes} in all, the next chunk uploaded (and the previous one's output read back)
     * on another thread while a chunk computes. Returns the output; {@code nanos[0]} the time from
     * the first upload to the last read.
     */
    static float[] explicit(OpenClDevice dev, OpenClProgram program, Problem pr, long chunkBytes, long[] nanos) {
        List<Array> arrays = pr.arrays();
        long items = chunkItems(pr, chunkBytes);
        float[][] in = pr.inputs();
        List<OpenClDevice.PlainBuffer> all = new ArrayList<>();
        List<NativeBuffer> outputs = new ArrayList<>();
        try (Arena arena = Arena.ofShared(); ExecutorService copier = Executors.newSingleThreadExecutor()) {
            MemorySegment[] host = new MemorySegment[arrays.size()];
            OpenClDevice.PlainBuffer[][] sets = new OpenClDevice.PlainBuffer[2][arrays.size()];
            for (int a = 0; a < arrays.size(); a++) {
                if (arrays.get(a).access() == Access.WRITE) {
                    // an output only written: host memory nobody touched yet, as a region that was
                    // never written is (onRegions), so that both programs back their output's pages
                    // when they first write them, inside the time measured
                    NativeBuffer fresh = NativeBuffer.untouched(arrays.get(a).bytes(), true);
                    outputs.add(fresh);
                    host[a] = fresh.segment();
                } else {
                    host[a] = arena.allocate(arrays.get(a).bytes(), 4096);
                    MemorySegment.copy(in[a], 0, host[a], ValueLayout.JAVA_FLOAT, 0, in[a].length);
                }
                Array ar = arrays.get(a);
                long size = ar.windowed() ? maxWindow(ar, pr.items(), items) : ar.bytes();
                sets[0][a] = dev.plainBuffer(size);
                all.add(sets[0][a]);
                sets[1][a] = ar.windowed() ? dev.plainBuffer(size) : sets[0][a];
                if (ar.windowed()) {
                    all.add(sets[1][a]);
                }
            }
            // backed before the time starts, as hetmem's device memory is by then (KernelsBench's device
            // serves every round): an implementation backs a buffer on first use
            backNow(all);
            OpenClKernel k = pr.kernel(program);
            long t0 = System.nanoTime();
            for (int a = 0; a < arrays.size(); a++) {
                if (!arrays.get(a).windowed() && arrays.get(a).access() != Access.WRITE) {
                    sets[0][a].write(host[a]);
                }
            }
            long chunks = Math.ceilDiv(pr.items(), items);
            List<Future<?>> uploads = new ArrayList<>();
            for (long c = 0; c < Math.min(2, chunks); c++) {
                long cc = c;
                uploads.add(copier.submit(() -> upload(arrays, host, sets[(int) (cc & 1)], cc * items,
                        Math.min(pr.items(), (cc + 1) * items))));
            }
            List<Future<?>> downloads = new ArrayList<>();
            for (long c = 0; c < chunks; c++) {
                long from = c * items;
                long to = Math.min(pr.items(), from + items);
                join(uploads.get((int) c));
                OpenClDevice.PlainBuffer[] set = sets[(int) (c & 1)];
                PlainBuffers.run(dev, k, to - from, set);
                // the copier reads this chunk's output back, then fills the same set with chunk c + 2
                downloads.add(copier.submit(() -> download(arrays, host, set, from, to)));
                long next = c + 2;
                if (next < chunks) {
                    uploads.add(copier.submit(() -> upload(arrays, host, set, next * items, Math.min(pr.items(), (next + 1) * items))));
                }
            }
            for (Future<?> f : downloads) {
                join(f);
            }
            nanos[0] = System.nanoTime() - t0;
            return host[pr.output()].toArray(ValueLayout.JAVA_FLOAT);
        } finally {
            for (OpenClDevice.PlainBuffer b : all) {
                b.close();
            }
            for (NativeBuffer b : outputs) {
                b.close();
            }
        }
    }

    /** The most items per chunk whose windows take at most {@code chunkBytes} (at least one work-group). */
    static long chunkItems(Problem pr, long chunkBytes) {
        long multiple = switch (pr.kind()) {
            case SGEMM -> TILE;
            case REDUCE -> REDUCE_GROUP;
            default -> 1;
        };
        long lo = 1;
        long hi = pr.items() / multiple;
        while (lo < hi) {
            long mid = lo + (hi - lo + 1) / 2;
            if (windowBytes(pr, mid * multiple) <= chunkBytes) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        return lo * multiple;
    }

    /** Bytes of the windows of items [0, items). */
    private static long windowBytes(Problem pr, long items) {
        long bytes = 0;
        for (Array a : pr.arrays()) {
            if (a.windowed()) {
                long[] w = a.window(0, items);
                bytes += w[1] - w[0];
            }
        }
        return bytes;
    }

    private static long maxWindow(Array a, long total, long items) {
        long max = 0;
        for (long from = 0; from < total; from += items) {
            long[] w = a.window(from, Math.min(total, from + items));
            max = Math.max(max, w[1] - w[0]);
        }
        return Math.max(4, max);
    }

    private static void upload(List<Array> arrays, MemorySegment[] host, OpenClDevice.PlainBuffer[] set, long from, long to) {
        for (int a = 0; a < arrays.size(); a++) {
            Array ar = arrays.get(a);
            if (ar.windowed() && ar.access() != Access.WRITE) {
                long[] w = ar.window(from, to);
                set[a].write(host[a].asSlice(w[0], w[1] - w[0]));
            }
        }
    }

    private static void download(List<Array> arrays, MemorySegment[] host, OpenClDevice.PlainBuffer[] set, long from, long to) {
        for (int a = 0; a < arrays.size(); a++) {
            Array ar = arrays.get(a);
            if (ar.windowed() && ar.access().writes()) {
                long[] w = ar.window(from, to);
                set[a].read(host[a].asSlice(w[0], w[1] - w[0]));
            }
        }
    }

    private static void join(Future<?> f) {
        try {
            f.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        } catch (java.util.concurrent.ExecutionException e) {
            if (e.getCause() instanceof RuntimeException r) {
                throw r;
            }
            throw new IllegalStateException(e.getCause());
        }
    }
}
