package dev.hetmem.cli;

import dev.hetmem.NodeInfo;
import dev.hetmem.UnifiedMemory;
import dev.hetmem.device.emulated.EmulatedDevice;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** {@code hetmem info}: the nodes a default memory has. */
final class InfoCommand {
    private InfoCommand() {}

    static int run(List<String> argv, PrintStream out) {
        Args args = new Args(argv, Set.of("json"), Set.of());
        java.util.Optional<String> uffd = dev.hetmem.fault.FaultService.unavailableReason();
        try (UnifiedMemory mem = UnifiedMemory.builder().device(EmulatedDevice.create()).build()) {
            if (args.flag("json")) {
                List<Object> nodes = new ArrayList<>();
                for (NodeInfo n : mem.nodes()) {
                    Map<String, Object> m = new LinkedHashMap<>();
                    m.put("id", n.id());
                    m.put("kind", n.kind());
                    m.put("name", n.name());
                    m.put("capacity_bytes", n.capacityBytes());
                    nodes.add(m);
                }
                Map<String, Object> root = new LinkedHashMap<>();
                root.put("nodes", nodes);
                Map<String, Object> modes = new LinkedHashMap<>();
                modes.put("host_view", true);
                modes.put("userfaultfd", uffd.isEmpty());
                if (uffd.isPresent()) {
                    modes.put("userfaultfd_unavailable_because", uffd.get());
                }
                root.put("host_fault_modes", modes);
                root.put("copy_threads", mem.copyThreads());
                out.println(Json.write(root));
            } else {
                out.printf("%-4s %-9s %-12s %s%n", "node", "kind", "name", "capacity");
                for (NodeInfo n : mem.nodes()) {
                    out.printf("%-4d %-9s %-12s %d bytes (%.1f GiB)%n", n.id(), n.kind(), n.name(), n.capacityBytes(),
                            n.capacityBytes() / (double) (1L << 30));
                }
                out.println("host faults: host views (the portable mode, always); userfaultfd: "
                        + uffd.map(why -> "unavailable: " + why).orElse("available"));
                out.println("copy threads: " + mem.copyThreads());
            }
        }
        return 0;
    }
}
