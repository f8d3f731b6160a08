package dev.hetmem.cli;

import dev.hetmem.PageSnapshot;
import dev.hetmem.UnifiedMemory;
import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.io.LoadOptions;
import dev.hetmem.device.opencl.OpenClDevice;
import dev.hetmem.device.opencl.OpenClPlatforms;
import dev.hetmem.io.LoadResult;
import dev.hetmem.io.LoadScheme;
import dev.hetmem.io.SafeTensors;
import dev.hetmem.io.Tensor;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Collectors;

/**
 * {@code hetmem load FILE [--to NODE]}: a file into the memory space, with progress, time and where it went;
 * a {@code .safetensors} file is validated and its tensors listed.
 */
final class LoadCommand {
    private LoadCommand() {}

    /** The options with the ring {@code --ring} asks for (none: as they are); a size out of the ring's limits is a usage error naming them. */
    private static LoadOptions withRing(LoadOptions o, String ring) {
        if (ring == null) {
            return o;
        }
        long bytes;
        try {
            bytes = Sizes.parse(ring);
        } catch (Sizes.TooLarge e) {
            throw new Args.UsageException("--ring " + ring + " is more than " + Sizes.shown(LoadOptions.MAX_RING_BYTES)
                    + ", the most a ring may hold");
        } catch (IllegalArgumentException e) {
            throw new Args.UsageException("--ring: " + e.getMessage());
        }
        try {
            return o.withRingBytes(bytes);
        } catch (IllegalArgumentException e) {
            throw new Args.UsageException("--ring " + ring + ": " + e.getMessage());   // a usage error: exit 2
        }
    }

    static int run(List<String> argv, PrintStream out, PrintStream err) throws IOException {
        Args args = new Args(argv, Set.of("json", "no-progress"), Set.of("to", "scheme", "threads", "ring"), 1);
        if (args.positional().size() != 1) {
            throw new Args.UsageException("load needs exactly one FILE");
        }
        Path file = Args.filePath("FILE", args.positional().getFirst());
        int node = target(args.value("to", "host"));
        LoadOptions o = LoadOptions.defaults();
        try {
            o = o.withScheme(LoadScheme.valueOf(args.value("scheme", "overlapped").toUpperCase(Locale.ROOT)));
        } catch (IllegalArgumentException e) {
            throw new Args.UsageException("--scheme " + args.value("scheme", "") + " is not one of buffered, direct, overlapped, mmap");
        }
        o = o.withThreads(args.intValue("threads", o.threads(), 1, 64));
        o = withRing(o, args.value("ring", null));
        boolean json = args.flag("json");
        // the emulated device is sized to hold the file: this command shows loading, not oversubscription
        long size = Files.exists(file) && !Files.isDirectory(file) ? Files.size(file) : 0;
        long physical = HostMemory.physicalBytes();
        if (node != 0 && size > physical / 2) {
            // refused before the device is built: an emulated device's memory is this machine's, backed
            // when it is built, and so is the bounded ring an OpenCL device here loads through
            throw new IllegalStateException(file + " has " + size + " bytes: this command builds a device as large as the "
                    + "file in this machine's memory (" + physical + " bytes), which can spare half of it at most; a program "
                    + "loading to a device of its own (UnifiedMemory.load) streams a larger file through a bounded ring");
        }
        // a load to the host leaves the device as it comes: sized by the file, a file over the emulated device's
        // largest size (1 TiB) was refused as a device capacity the user never asked for, not by the loader
        long capacity = node == 0 ? EmulatedDevice.DEFAULT_CAPACITY
                : Math.max(EmulatedDevice.DEFAULT_CAPACITY, (size + (2L << 20) - 1) & -(2L << 20));
        UnifiedMemory.Builder builder = UnifiedMemory.builder()
                .device(EmulatedDevice.builder().capacity(capacity).populate(node == 1).build());
        if (node == 2) {
            String why = OpenClPlatforms.unavailableReason();
            if (why != null) {
                throw new IllegalStateException("--to opencl: " + why);   // the machine's, not a usage error
            }
            builder.device(OpenClDevice.builder().name("opencl").capacity(capacity).build());
        }
        try (UnifiedMemory mem = builder.build()) {
            LoadOptions withBar = args.flag("no-progress") ? o
                    : o.withProgress(new ProgressBar(err, "loading " + Main.printable(String.valueOf(file.getFileName()))));
            // a safetensors file is validated (the reference reader's rules) and its tensors listed
            SafeTensors model = isSafeTensors(file) ? SafeTensors.load(mem, file, node, withBar) : null;
            LoadResult r = model != null ? model.loadResult() : mem.load(file, node, withBar);
            long pagesOnNode = 0;
            long pages = 0;
            if (r.bytes() > 0) {
                PageSnapshot s = r.region().snapshot(0, r.bytes());
                pagesOnNode = s.countOn(node);
                pages = s.pages();
            }
            if (json) {
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("file", file.toString());
                m.put("bytes", r.bytes());
                m.put("node", node);
                m.put("kind", mem.node(node).kind());
                m.put("seconds", r.seconds());
                m.put("gbps", r.gbps());
                m.put("scheme", r.scheme().name().toLowerCase(Locale.ROOT));
                m.put("direct", r.direct());
                m.put("fallback", r.fallbackReason());
                m.put("pages", pages);
                m.put("pages_on_node", pagesOnNode);
                m.put("peak_extra_host_bytes", r.peakExtraHostBytes());
                m.put("allocation_seconds", r.allocationNanos() / 1e9);
                if (model != null) {
                    m.put("metadata", model.metadata());
                    m.put("tensors", model.tensors().stream().map(LoadCommand::tensorJson).toList());
                }
                out.println(Json.write(m));
            } else {
                out.printf("loaded %s (%d bytes) to node %d (%s) in %.3f s: %.2f GB/s%n", Main.printable(file.toString()), r.bytes(), node,
                        mem.node(node).kind(), r.seconds(), r.gbps());
                out.printf("  %d of %d pages resident on node %d; %s; extra host memory at most %s%n", pagesOnNode, pages,
                        node, r.direct() ? "direct I/O" : "buffered reads (" + r.fallbackReason() + ")",
                        ProgressBar.human(r.peakExtraHostBytes()));
                if (r.allocationNanos() > 0) {
                    out.printf("  host pages populated ahead of the reads in %.3f s%s%n", r.allocationNanos() / 1e9,
                            r.allocationNanos() > 0.9 * r.nanos() ? ": page allocation, not the disk, set the pace" : "");
                }
                if (model != null) {
                    printTensors(model, out);
                }
            }
            return 0;
        }
    }

    /** The node {@code --to} names: 0 or host, 1 or emulated, 2 or opencl. */
    static int target(String to) {
        return switch (to.toLowerCase(Locale.ROOT)) {
            case "0", "host" -> 0;
            case "1", "emulated" -> 1;
            case "2", "opencl" -> 2;
            default -> throw new Args.UsageException("--to " + to + ": the nodes are 0 (host), 1 (emulated) and 2 (opencl)");
        };
    }

    /** How many tensors the human listing names before it only counts. */
    private static final int LISTED_TENSORS = 12;

    private static boolean isSafeTensors(Path file) {
        return file.getFileName() != null && file.getFileName().toString().toLowerCase(Locale.ROOT).endsWith(".safetensors");
    }

    private static Map<String, Object> tensorJson(Tensor t) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("name", t.name());
        m.put("dtype", t.dtype().name());
        m.put("shape", Arrays.stream(t.shape()).boxed().toList());
        m.put("offset", t.offset());
        m.put("bytes", t.length());
        return m;
    }

    private static void printTensors(SafeTensors model, PrintStream out) {
        List<Tensor> ts = model.tensors();
        Map<String, Integer> byType = new TreeMap<>();
        for (Tensor t : ts) {
            byType.merge(t.dtype().name(), 1, Integer::sum);
        }
        out.printf("  safetensors: %d tensors (%s)%s%n", ts.size(),
                byType.entrySet().stream().map(e -> e.getValue() + " " + e.getKey()).collect(Collectors.joining(", ")),
                model.metadata().isEmpty() ? "" : ", metadata " + Main.printable(model.metadata().toString()));
        for (int i = 0; i < Math.min(ts.size(), LISTED_TENSORS); i++) {
            Tensor t = ts.get(i);
            out.printf("    %-40s %-8s %-20s %s at byte %d%n", Main.printable(t.name()), t.dtype().name(), Tensor.shapeText(t.shape()),
                    ProgressBar.human(t.length()), t.offset());
        }
        if (ts.size() > LISTED_TENSORS) {
            out.printf("    ... and %d more (--json lists them all)%n", ts.size() - LISTED_TENSORS);
        }
    }
}
