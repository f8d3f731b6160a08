package dev.hetmem.cli;

import dev.hetmem.NodeInfo;
import dev.hetmem.UnifiedMemory;
import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.driver.HostCopy;
import dev.hetmem.device.opencl.OpenClDeviceInfo;
import dev.hetmem.device.opencl.OpenClPlatforms;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** {@code hetmem info}: the nodes a default memory has, the host-fault modes and the OpenCL devices found. */
final class InfoCommand {
    private InfoCommand() {}

    static int run(List<String> argv, PrintStream out) {
        Args args = new Args(argv, Set.of("json"), Set.of());
        java.util.Optional<String> uffd = dev.hetmem.limits.FaultLimits.userfaultfdUnavailableReason();
        String noOpenCl = OpenClPlatforms.unavailableReason();
        List<OpenClDeviceInfo> openCl = noOpenCl == null ? OpenClPlatforms.devices() : List.of();
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
                root.put("streaming_copies", HostCopy.streamingAvailable());
                if (!HostCopy.streamingAvailable()) {
                    root.put("streaming_copies_unavailable_because", HostCopy.streamingUnavailableReason());
                }
                List<Object> cl = new ArrayList<>();
                for (OpenClDeviceInfo d : openCl) {
                    Map<String, Object> m = new LinkedHashMap<>();
                    m.put("platform", d.platformName());
                    m.put("platform_version", d.platformVersion());
                    m.put("platform_index", d.platform());
                    m.put("device_index", d.index());
                    m.put("name", d.name());
                    m.put("type", d.type());
                    m.put("version", d.version());
                    m.put("global_memory_bytes", d.globalMemory());
                    m.put("max_allocation_bytes", d.maxAllocation());
                    m.put("compute_units", d.computeUnits());
                    cl.add(m);
                }
                root.put("opencl_devices", cl);
                if (noOpenCl != null) {
                    root.put("opencl_unavailable_because", noOpenCl);
                }
                out.println(Json.write(root));
            } else {
                out.printf("%-4s %-9s %-12s %s%n", "node", "kind", "name", "capacity");
                for (NodeInfo n : mem.nodes()) {
                    out.printf("%-4d %-9s %-12s %d bytes (%.1f GiB)%n", n.id(), n.kind(), n.name(), n.capacityBytes(),
                            n.capacityBytes() / (double) (1L << 30));
                }
                out.println("host faults: host views (the portable mode, always); userfaultfd: "
                        + uffd.map(why -> "unavailable: " + why).orElse("available"));
                out.println("copy threads: " + mem.copyThreads() + "; streaming copies (batches of 1 MiB or more): "
                        + (HostCopy.streamingAvailable() ? "available" : "unavailable: " + HostCopy.streamingUnavailableReason()));
                if (noOpenCl != null) {
                    out.println("OpenCL: none (" + noOpenCl + ")");
                }
                for (OpenClDeviceInfo d : openCl) {
                    out.printf("OpenCL %d/%d: %s (%s, %s), %s; global memory %.1f GiB, max allocation %.1f GiB, %d compute units%n",
                            d.platform(), d.index(), d.name(), d.type(), d.version(), d.platformName(),
                            d.globalMemory() / (double) (1L << 30), d.maxAllocation() / (double) (1L << 30), d.computeUnits());
                }
            }
        }
        return 0;
    }
}
