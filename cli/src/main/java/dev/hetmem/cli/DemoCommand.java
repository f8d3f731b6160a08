package dev.hetmem.cli;

import dev.hetmem.Access;
import dev.hetmem.HostFaultMode;
import dev.hetmem.HostView;
import dev.hetmem.KernelArg;
import dev.hetmem.LaunchResult;
import dev.hetmem.PageSnapshot;
import dev.hetmem.Region;
import dev.hetmem.Stats;
import dev.hetmem.Trigger;
import dev.hetmem.UnifiedMemory;
import dev.hetmem.UserfaultfdUnavailableException;
import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.device.emulated.EmulatedKernel;
import dev.hetmem.device.opencl.OpenClDevice;
import dev.hetmem.device.opencl.OpenClPlatforms;
import dev.hetmem.device.opencl.OpenClProgram;
import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.driver.DeviceKernel;

import java.io.PrintStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * {@code hetmem demo}: HMM's example (mulMat). With HMM, {@code mul_mat_on_gpu(r, a, b, m)} is just
 * the kernel call: a and b are written by Java, r is read by Java, and no copy is written by the
 * user. The memory manager faults a and b onto the device when the kernel starts, populates r
 * there, and faults r home when Java reads it: through host views by default, or with
 * {@code --host-faults userfaultfd} through plain loads and stores on each region's segment.
 */
final class DemoCommand {
    private DemoCommand() {}

    /** r[i][*] = sum over k of a[i][k] * b[k][*], one row per work item, through the device page table. */
    static final class MulMat implements EmulatedKernel {
        private final int m;

        MulMat(int m) {
            this.m = m;
        }

        @Override
        public void run(dev.hetmem.device.emulated.KernelArgs args, long item) {
            int i = (int) item;
            var r = args.arg(0);
            var a = args.arg(1);
            var b = args.arg(2);
            float[] acc = new float[m];
            for (int k = 0; k < m; k++) {
                float aik = a.getFloat(4L * ((long) i * m + k));
                long row = 4L * k * m;
                for (int j = 0; j < m; j++) {
                    acc[j] += aik * b.getFloat(row + 4L * j);
                }
            }
            for (int j = 0; j < m; j++) {
                r.putFloat(4L * ((long) i * m + j), acc[j]);
            }
        }
    }

    /** The device the demo runs on and its mulMat kernel. */
    private interface DemoDevice extends AutoCloseable {
        DeviceDriver driver();

        DeviceKernel mulMat(int m);

        long globalSize(int m);

        @Override
        void close();
    }

    private static DemoDevice emulated() {
        EmulatedDevice d = EmulatedDevice.create();
        return new DemoDevice() {
            public DeviceDriver driver() {
                return d;
            }

            public DeviceKernel mulMat(int m) {
                return new MulMat(m);
            }

            public long globalSize(int m) {
                return m;
            }

            public void close() {}
        };
    }

    private static DemoDevice opencl() {
        String why = OpenClPlatforms.unavailableReason();
        if (why != null) {
            throw new IllegalStateException("--device opencl: " + why);   // the machine's, not a usage error: exit 1
        }
        OpenClDevice d = OpenClDevice.builder().capacity(256L << 20).build();
        OpenClProgram program = d.compile(MulMatCl.SOURCE);
        return new DemoDevice() {
            public DeviceDriver driver() {
                return d;
            }

            public DeviceKernel mulMat(int m) {
                return program.kernel("mulMat", m);
            }

            public long globalSize(int m) {
                return MulMatCl.globalSize(m);
            }

            public void close() {
                program.close();
            }
        };
    }

    static int run(List<String> argv, PrintStream out, PrintStream err) {
        Args args = new Args(argv, Set.of("json"), Set.of("size", "device", "host-faults", "map"));
        String mapFile = args.value("map", null);
        if (mapFile != null && !mapFile.toLowerCase(java.util.Locale.ROOT).endsWith(".png")) {
            throw new Args.UsageException("--map " + mapFile + ": the file must end in .png");
        }
        if (mapFile != null) {
            Chart.checkFolder("--map", mapFile);
        }
        int m = args.intValue("size", 512, 1, 4096);
        String deviceKind = args.value("device", "emulated");
        String hostFaults = args.value("host-faults", "views");
        HostFaultMode mode = switch (hostFaults) {
            case "views" -> HostFaultMode.HOST_VIEWS;
            case "userfaultfd" -> HostFaultMode.USERFAULTFD;
            default -> throw new Args.UsageException("--host-faults " + hostFaults + " must be views or userfaultfd");
        };
        boolean transparent = mode == HostFaultMode.USERFAULTFD;
        boolean json = args.flag("json");
        long bytes = 4L * m * m;
        long t0 = System.nanoTime();
        try (DemoDevice device = switch (deviceKind) {
                case "emulated" -> emulated();
                case "opencl" -> opencl();
                default -> throw new Args.UsageException("--device " + deviceKind + " must be emulated or opencl");
             };
             UnifiedMemory mem = memory(device.driver(), mode)) {
            Region a = mem.allocate(bytes);
            Region b = mem.allocate(bytes);
            Region r = mem.allocate(bytes);
            float[] ha = new float[m * m];
            float[] hb = new float[m * m];
            SplittableRandom rnd = new SplittableRandom(2017);
            for (int i = 0; i < m * m; i++) {
                ha[i] = (float) rnd.nextDouble(-1, 1);
                hb[i] = (float) rnd.nextDouble(-1, 1);
            }
            // Java writes a and b in place: plain host memory
            try (HostView va = view(a, Access.WRITE, transparent); HostView vb = view(b, Access.WRITE, transparent)) {
                MemorySegment.copy(ha, 0, segment(a, va), ValueLayout.JAVA_FLOAT, 0, m * m);
                MemorySegment.copy(hb, 0, segment(b, vb), ValueLayout.JAVA_FLOAT, 0, m * m);
            }
            Stats before = mem.stats();
            // the whole of mul_mat_on_gpu(r, a, b, m):
            LaunchResult launch = mem.launch(1, device.mulMat(m), device.globalSize(m),
                    KernelArg.write(r), KernelArg.read(a), KernelArg.read(b));
            PageSnapshot afterKernel = r.snapshot(0, bytes);
            // Java reads r in place: its pages fault home
            float[] hr = new float[m * m];
            long tr0 = System.nanoTime();
            try (HostView vr = view(r, Access.READ, transparent)) {
                MemorySegment.copy(segment(r, vr), ValueLayout.JAVA_FLOAT, 0, hr, 0, m * m);
            }
            long readBackNanos = System.nanoTime() - tr0;
            float[] want = reference(ha, hb, m);
            double maxErr = 0;
            long wrong = 0;
            for (int i = 0; i < m * m; i++) {
                double e = Math.abs(want[i] - hr[i]);
                maxErr = Math.max(maxErr, e);
                if (e > 1e-3 * (1 + Math.abs(want[i]))) {
                    wrong++;
                }
            }
            Stats st = mem.stats();
            long wallNanos = System.nanoTime() - t0;
            boolean ok = wrong == 0;
            if (mapFile != null && json) {
                writeMap(mapFile, afterKernel, err);   // first: a failure is then the one JSON object printed
            }
            if (json) {
                Map<String, Object> o = new LinkedHashMap<>();
                o.put("demo", "mulMat");
                o.put("m", m);
                o.put("device", mem.node(1).kind());
                o.put("host_faults", hostFaults);
                o.put("correct", ok);
                o.put("max_abs_error", maxErr);
                o.put("device_faults", launch.faults());
                o.put("device_fault_batches", launch.faultBatches());
                o.put("pages_to_device", launch.pagesMigrated());
                o.put("bytes_to_device", launch.bytesMigrated());
                o.put("host_faults_reading_r", st.node(0).faults() - before.node(0).faults());
                o.put("bytes_to_host", st.node(0).bytesMigrated(Trigger.FAULT) - before.node(0).bytesMigrated(Trigger.FAULT));
                o.put("fault_ms", launch.faultNanos() / 1e6);
                o.put("kernel_ms", launch.kernelNanos() / 1e6);
                o.put("read_back_ms", readBackNanos / 1e6);
                o.put("wall_ms", wallNanos / 1e6);
                o.put("metadata_bytes", st.metadataBytes());
                out.println(Json.write(o));
            } else {
                out.printf("mulMat(r, a, b, m=%d) on node 1 (%s): %s%n", m, mem.node(1).name(),
                        ok ? "result matches the CPU" : wrong + " elements WRONG");
                out.printf("  the program wrote a and b from Java, launched the kernel, read r from Java: no copies%n");
                out.printf("  host access                         : %s%n", transparent
                        ? "plain loads and stores on region.segment() (userfaultfd faults)" : "host views");
                out.printf("  device faults before the kernel ran : %d granule(s) in %d batch(es); %d pages (%s) moved to the device%n",
                        launch.faults(), launch.faultBatches(), launch.pagesMigrated(), mib(launch.bytesMigrated()));
                out.printf("  r after the kernel                  : %d of %d pages on the device (populated there)%n",
                        afterKernel.countOn(1), afterKernel.pages());
                out.printf("  host faults reading r               : %d granule(s); %s moved home%n",
                        st.node(0).faults() - before.node(0).faults(),
                        mib(st.node(0).bytesMigrated(Trigger.FAULT) - before.node(0).bytesMigrated(Trigger.FAULT)));
                out.printf("  time: faults %.2f ms, kernel %.1f ms, read-back %.2f ms, whole demo %.0f ms%n",
                        launch.faultNanos() / 1e6, launch.kernelNanos() / 1e6, readBackNanos / 1e6, wallNanos / 1e6);
                out.printf("  max |error| %.2e%n", maxErr);
                out.println();
                boolean ansi = Terminal.colours();
                for (String line : new ResidencyMap("r after the kernel", afterKernel).text(64, ansi)) {
                    out.println("  " + line);
                }
                out.println();
                out.print(st.format());
                if (mapFile != null) {
                    writeMap(mapFile, afterKernel, err);   // after the results: a failed picture does not lose them
                }
            }
            return ok ? 0 : 1;
        }
    }

    /** The picture of r after the kernel, into {@code mapFile}; a failure names the file and why. */
    private static void writeMap(String mapFile, PageSnapshot afterKernel, PrintStream err) {
        try {
            new ResidencyMap("hetmem demo: r after mulMat on node 1", afterKernel).writePng(java.nio.file.Path.of(mapFile));
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e.getMessage(), e);   // it names the file and why
        }
        err.println("hetmem demo: picture of r written to " + Main.printable(mapFile));
    }

    /** A host view of the whole region, or none where plain loads and stores work (userfaultfd). */
    private static HostView view(Region r, Access access, boolean transparent) {
        return transparent ? null : r.host(0, r.size(), access);
    }

    private static MemorySegment segment(Region r, HostView view) {
        return view == null ? r.segment() : view.segment();
    }

    private static UnifiedMemory memory(DeviceDriver driver, HostFaultMode mode) {
        try {
            return UnifiedMemory.builder().device(driver).hostFaults(mode).build();
        } catch (UserfaultfdUnavailableException e) {
            throw new IllegalStateException("--host-faults userfaultfd: " + e.getMessage());   // the machine's: exit 1
        }
    }

    private static String mib(long b) {
        return String.format("%.2f MiB", b / (double) (1 << 20));
    }

    /** The same i-k-j order as the kernel, on the CPU. */
    static float[] reference(float[] a, float[] b, int m) {
        float[] r = new float[m * m];
        float[] acc = new float[m];
        for (int i = 0; i < m; i++) {
            java.util.Arrays.fill(acc, 0f);
            for (int k = 0; k < m; k++) {
                float aik = a[i * m + k];
                for (int j = 0; j < m; j++) {
                    acc[j] += aik * b[k * m + j];
                }
            }
            System.arraycopy(acc, 0, r, i * m, m);
        }
        return r;
    }
}
