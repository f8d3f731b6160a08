package dev.hetmem.cli;

import dev.hetmem.Advice;
import dev.hetmem.KernelArg;
import dev.hetmem.Region;
import dev.hetmem.UnifiedMemory;
import dev.hetmem.device.emulated.DeviceBuffer;
import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.device.emulated.EmulatedKernel;
import dev.hetmem.device.opencl.OpenClDevice;
import dev.hetmem.device.opencl.OpenClProgram;
import dev.hetmem.device.opencl.PlainBuffers;
import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.driver.DeviceKernel;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;

import static dev.hetmem.driver.PageGeometry.PAGE_BYTES;

/** {@code bench decode}'s GEMV kernels (on regions, and on the explicit program's own buffers), per device kind. */
final class DecodeKernels {
    private DecodeKernels() {}

    /** The explicit program's device buffers and kernel, per device kind. */
    interface Staging extends AutoCloseable {
        void writeInput(long t, int n);

        /**
         * Copies {@code chunk} (rows of W) into device buffer {@code buf}; its size a multiple of
         * {@link #uploadGranule()} (bytes past the chunk's rows are copied and never read).
         */
        void upload(int buf, MemorySegment chunk);

        /** What an upload's size is a multiple of: the device's write command copies whole pages, or bytes. */
        long uploadGranule();

        /** y[r0 + i] = (rows of buffer buf) . x for i < rows. */
        void compute(int buf, int layer, long rows, long r0);

        /** The output becomes the next layer's input. */
        void swap();

        float[] readOutput(int n);

        @Override
        void close();
    }

    /** The GEMV kernels of a model on one device: on regions (hetmem) and on the explicit program's buffers. */
    static final class Kernels {
        private final DeviceDriver dev;
        private final DecodeBench.Model m;
        private final OpenClProgram regions;

        Kernels(DeviceDriver dev, DecodeBench.Model m) {
            this.dev = dev;
            this.m = m;
            // on regions as plain arguments: the -DHM_PLAIN build, the same code the explicit program runs on buffers
            this.regions = dev instanceof OpenClDevice d ? d.compile(GEMV_CL, "-DHM_PLAIN") : null;
        }

        /**
         * Work item i: argument 2 float [rowBase + i] = row i of argument 0 . argument 1. On OpenCL
         * the arguments are plain (a tile sees its rows from 0, and argument 2 from its window).
         */
        DeviceKernel regionKernel(int rowBase) {
            if (regions != null) {
                return regions.kernel(m.dtype().equals("F32") ? "gemv_f32" : "gemv_bf16", m.n(), rowBase);
            }
            return emulatedGemv(m.n(), m.dtype().equals("F32"), rowBase);
        }

        Staging staging(UnifiedMemory mem, long chunkBytes, long vectorBytes) {
            if (dev instanceof OpenClDevice d) {
                return new OpenClStaging(d, chunkBytes, vectorBytes);
            }
            return new EmulatedStaging(mem, (EmulatedDevice) dev, chunkBytes, vectorBytes);
        }

        /** The explicit program on the emulated device: resident regions as its device buffers. */
        private final class EmulatedStaging implements Staging {
            private final UnifiedMemory mem;
            private final EmulatedDevice ed;
            private final Region[] w;
            private final Region[] x;
            private int in;

            EmulatedStaging(UnifiedMemory mem, EmulatedDevice ed, long chunkBytes, long vectorBytes) {
                this.mem = mem;
                this.ed = ed;
                long pages = Math.ceilDiv(chunkBytes, PAGE_BYTES) * PAGE_BYTES;   // the write command copies whole pages
                this.w = new Region[] {mem.allocate(pages), mem.allocate(pages)};
                this.x = new Region[] {mem.allocate(vectorBytes), mem.allocate(vectorBytes)};
                for (Region r : w) {
                    r.advise(0, r.size(), Advice.prefetch(ed.node()));
                }
            }

            @Override
            public void writeInput(long t, int n) {
                in = 0;
                DecodeBench.writeInput(x[0], n, t);
            }

            @Override
            public void upload(int buf, MemorySegment chunk) {
                if (chunk.byteSize() % PAGE_BYTES != 0) {
                    throw new IllegalArgumentException("upload of " + chunk.byteSize() + " bytes: not a multiple of the "
                            + PAGE_BYTES + "-byte page the write command copies");
                }
                ed.write(w[buf], 0, chunk.byteSize() / PAGE_BYTES, chunk);
            }

            @Override
            public long uploadGranule() {
                return PAGE_BYTES;
            }

            @Override
            public void compute(int buf, int layer, long rows, long r0) {
                mem.launch(ed.node(), emulatedGemv(m.n(), m.dtype().equals("F32"), (int) r0), rows,
                        KernelArg.read(w[buf]), KernelArg.read(x[in]), KernelArg.readWrite(x[1 - in]));
            }

            @Override
            public void swap() {
                in = 1 - in;
            }

            @Override
            public float[] readOutput(int n) {
                return DecodeBench.readOutput(x[in], n);
            }

            @Override
            public void close() {
            }
        }

        /** The explicit program on OpenCL: plain buffers, the same kernel source built without translation. */
        private final class OpenClStaging implements Staging {
            private final OpenClDevice d;
            private final OpenClProgram plain;
            private final OpenClDevice.PlainBuffer[] w;
            private final OpenClDevice.PlainBuffer[] x;
            private int in;

            OpenClStaging(OpenClDevice d, long chunkBytes, long vectorBytes) {
                this.d = d;
                this.plain = PlainBuffers.compile(d, GEMV_CL, "");
                this.w = new OpenClDevice.PlainBuffer[] {d.plainBuffer(chunkBytes), d.plainBuffer(chunkBytes)};
                this.x = new OpenClDevice.PlainBuffer[] {d.plainBuffer(vectorBytes), d.plainBuffer(vectorBytes)};
                // hetmem's device is populated when built (DecodeBench.device): neither side pays for backing
                // its device memory inside the time measured
                OrdinaryKernels.backNow(List.of(w[0], w[1], x[0], x[1]));
            }

            @Override
            public void writeInput(long t, int n) {
                in = 0;
                try (Arena a = Arena.ofConfined()) {
                    MemorySegment s = a.allocate((long) n * 4);
                    for (int j = 0; j < n; j++) {
                        s.setAtIndex(ValueLayout.JAVA_FLOAT, j, DecodeBench.input(t, j));
                    }
                    x[0].write(s);
                }
            }

            @Override
            public void upload(int buf, MemorySegment chunk) {
                w[buf].write(chunk);
            }

            @Override
            public long uploadGranule() {
                return 1;
            }

            @Override
            public void compute(int buf, int layer, long rows, long r0) {
                String name = m.dtype().equals("F32") ? "gemv_f32" : "gemv_bf16";
                PlainBuffers.run(d, plain.kernel(name, m.n(), (int) r0), rows, w[buf], x[in], x[1 - in]);
            }

            @Override
            public void swap() {
                in = 1 - in;
            }

            @Override
            public float[] readOutput(int n) {
                try (Arena a = Arena.ofConfined()) {
                    MemorySegment s = a.allocate((long) n * 4);
                    x[in].read(s);
                    return s.toArray(ValueLayout.JAVA_FLOAT);
                }
            }

            @Override
            public void close() {
                for (OpenClDevice.PlainBuffer b : w) {
                    b.close();
                }
                for (OpenClDevice.PlainBuffer b : x) {
                    b.close();
                }
            }
        }
    }

    /** Work item i: y[rowBase + i] = row i of w . x, on the emulated device (BF16 read two at a time). */
    private static EmulatedKernel emulatedGemv(int n, boolean f32, int rowBase) {
        return (args, i) -> {
            DeviceBuffer w = args.arg(0);
            DeviceBuffer x = args.arg(1);
            float acc = 0;
            if (f32) {
                long row = i * 4L * n;
                for (int j = 0; j < n; j++) {
                    acc += w.getFloat(row + 4L * j) * x.getFloat(4L * j);
                }
            } else {
                long row = i * 2L * n;
                for (int j = 0; j < n; j += 2) {
                    int two = w.getInt(row + 2L * j);
                    acc += DecodeBench.bf16((short) two) * x.getFloat(4L * j);
                    acc += DecodeBench.bf16((short) (two >>> 16)) * x.getFloat(4L * j + 4);
                }
            }
            args.arg(2).putFloat(4L * (rowBase + i), acc);
        };
    }

    /**
     * GEMV on regions (through the device page table, translating once per page of W and of x) and,
     * built with -DHM_PLAIN, on plain buffers: work item i, y[rowBase + i] = row i of w . x.
     */
    static final String GEMV_CL = """
            #define GEMV(NAME, WT, LOAD) \\
            __kernel void NAME(HM_SPACE_PARAMS, HM_REGION(w), HM_REGION(x), HM_REGION(y), const uint n, \\
                               const uint rowBase) { \\
                const ulong i = get_global_id(0); \\
                const ulong base = i * n; \\
                float acc = 0.0f; \\
                for (uint j0 = 0; j0 < n;) { \\
                    uint k = (uint) min((ulong) (n - j0), HM_PAGE_LEFT(w, (base + j0) * sizeof(WT)) / sizeof(WT)); \\
                    k = (uint) min((ulong) k, HM_PAGE_LEFT(x, (ulong) j0 * 4) / 4); \\
                    __global const WT *wp = HM_PTR(WT, w, base + j0); \\
                    __global const float *xp = HM_PTR(float, x, j0); \\
                    for (uint j = 0; j < k; j++) { \\
                        acc += (LOAD) * xp[j]; \\
                    } \\
                    j0 += k; \\
                } \\
                *HM_WPTR(float, y, rowBase + i) = acc; \\
            }

            GEMV(gemv_f32, float, wp[j])
            GEMV(gemv_bf16, ushort, as_float(((uint) wp[j]) << 16))
            """;
}
