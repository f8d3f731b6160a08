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
            return emulatedGemv(rowBase);
        }

        /** Whether {@link #regionKernel} takes its regions as plain arguments (OpenCL) rather than translating (emulated). */
        boolean takesPlainArguments() {
            return regions != null;
        }

        /** The most pages one pointer spans on the device (what a plain argument may hold). */
        int contiguousFrames() {
            return dev.contiguousFrames();
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
                mem.launch(ed.node(), emulatedGemv((int) r0), rows,
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

        /**
         * Work item i: y[rowBase + i] = row i of w . x, on the emulated device. Each work item stages
         * its row of W, and each compute thread x once a launch, in private memory ({@link
         * DeviceBuffer#copyTo}: a translation a page, as the OpenCL kernel translates once a page),
         * and sums over that: as a GPU kernel stages a tile in local memory. Summing through {@link
         * DeviceBuffer#getFloat} (a translation an access, inlined) ran at one of two speeds, 1.5x
         * apart, chosen by each JVM's C2 compilation (the slow one spilled the loop's translation
         * state to the stack every element); the staged loop has no such state. The sum runs in the
         * same order as the reference's. One kernel object is one launch (its tiles share it, and
         * x, read-only, is the same for all of them).
         */
        private EmulatedKernel emulatedGemv(int rowBase) {
            int n = m.n();
            boolean f32 = m.dtype().equals("F32");
            long rowBytes = (long) n * (f32 ? 4 : 2);
            Object launch = new Object();   // which launch a thread's staged x belongs to
            return (args, i) -> {
                PrivateMemory p = privates.get();
                if (p.xOf != launch) {
                    p.xOf = null;   // set once the copy is whole: a copy that throws leaves x to stage again
                    args.arg(1).copyTo(0, p.xSegment, 0, 4L * n);
                    p.xOf = launch;
                }
                args.arg(0).copyTo(i * rowBytes, p.rowSegment, 0, rowBytes);
                float[] x = p.x;
                float acc = 0;
                if (f32) {
                    float[] w = p.rowF32;
                    for (int j = 0; j < n; j++) {
                        acc += w[j] * x[j];
                    }
                } else {
                    short[] w = p.rowBf16;
                    for (int j = 0; j < n; j++) {
                        acc += DecodeBench.bf16(w[j]) * x[j];
                    }
                }
                args.arg(2).putFloat(4L * (rowBase + i), acc);
            };
        }

        /** Each compute thread's private memory for {@link #emulatedGemv}, for every launch of this model on this device. */
        private final ThreadLocal<PrivateMemory> privates = ThreadLocal.withInitial(this::privateMemory);

        private PrivateMemory privateMemory() {
            return new PrivateMemory(m.n(), m.dtype().equals("F32"));
        }
    }

    /** One compute thread's private memory for the emulated GEMV: x (and the launch it was staged for), and a row of W. */
    private static final class PrivateMemory {
        final float[] x;
        final MemorySegment xSegment;
        Object xOf;
        final float[] rowF32;
        final short[] rowBf16;
        final MemorySegment rowSegment;

        PrivateMemory(int n, boolean f32) {
            x = new float[n];
            xSegment = MemorySegment.ofArray(x);
            rowF32 = f32 ? new float[n] : null;
            rowBf16 = f32 ? null : new short[n];
            rowSegment = f32 ? MemorySegment.ofArray(rowF32) : MemorySegment.ofArray(rowBf16);
        }
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
