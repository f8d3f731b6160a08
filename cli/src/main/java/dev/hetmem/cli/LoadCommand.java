package dev.hetmem.cli;

import dev.hetmem.PageSnapshot;
import dev.hetmem.UnifiedMemory;
import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.io.LoadOptions;
import dev.hetmem.io.LoadResult;
import dev.hetmem.io.LoadScheme;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/** {@code hetmem load FILE [--to NODE]}: a file into the memory space, with progress, time and where it went. */
final class LoadCommand {
    private LoadCommand() {}

    static int run(List<String> argv, PrintStream out, PrintStream err) throws IOException {
        Args args = new Args(argv, Set.of("json"), Set.of("to", "scheme", "threads", "ring"));
        if (args.positional().size() != 1) {
            throw new Args.UsageException("load needs exactly one FILE");
        }
        Path file = Path.of(args.positional().getFirst());
        int node = (int) args.longValue("to", 0);
        LoadOptions o = LoadOptions.defaults();
        try {
            o = o.withScheme(LoadScheme.valueOf(args.value("scheme", "overlapped").toUpperCase(Locale.ROOT)));
        } catch (IllegalArgumentException e) {
            throw new Args.UsageException("--scheme " + args.value("scheme", "") + " is not one of buffered, direct, overlapped, mmap");
        }
        o = o.withThreads((int) args.longValue("threads", o.threads())).withRingBytes(args.longValue("ring", o.ringBytes()));
        boolean json = args.flag("json");
        // the emulated device is sized to hold the file: this command shows loading, not oversubscription
        long size = Files.exists(file) && !Files.isDirectory(file) ? Files.size(file) : 0;
        long capacity = Math.max(EmulatedDevice.DEFAULT_CAPACITY, (size + (2L << 20) - 1) & -(2L << 20));
        try (UnifiedMemory mem = UnifiedMemory.builder()
                .device(EmulatedDevice.builder().capacity(capacity).populate(node > 0).build()).build()) {
            LoadResult r = mem.load(file, node, o.withProgress(new ProgressBar(err, "loading " + file.getFileName())));
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
                out.println(Json.write(m));
            } else {
                out.printf("loaded %s (%d bytes) to node %d (%s) in %.3f s: %.2f GB/s%n", file, r.bytes(), node,
                        mem.node(node).kind(), r.seconds(), r.gbps());
                out.printf("  %d of %d pages resident on node %d; %s; extra host memory at most %s%n", pagesOnNode, pages,
                        node, r.direct() ? "direct I/O" : "buffered reads (" + r.fallbackReason() + ")",
                        ProgressBar.human(r.peakExtraHostBytes()));
                if (r.allocationNanos() > 0) {
                    out.printf("  host pages populated ahead of the reads in %.3f s%s%n", r.allocationNanos() / 1e9,
                            r.allocationNanos() > 0.9 * r.nanos() ? ": page allocation, not the disk, set the pace" : "");
                }
            }
            return 0;
        }
    }
}
