package dev.hetmem;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * One node of a memory: 0 is the host; devices follow in the order they were attached. See
 * {@link UnifiedMemory#nodes()}.
 *
 * @param id            the node number: 0 for the host, 1..n for devices in attach order
 * @param kind          "host" for node 0, else the driver family ({@code DeviceDriver.kind()}, such
 *                      as "emulated" or "opencl")
 * @param name          "host" for node 0, else the device's name ({@code DeviceDriver.name()})
 * @param capacityBytes memory the node has, in bytes: for a device what its driver registers; for
 *                      the host the machine's total memory (MemTotal of /proc/meminfo), or -1
 *                      where unknown
 */
public record NodeInfo(int id, String kind, String name, long capacityBytes) {

    /** Node 0: the host, with the machine's memory (MemTotal of /proc/meminfo; -1 where unknown). */
    static NodeInfo host() {
        long total = -1;
        try {
            for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
                if (line.startsWith("MemTotal:")) {
                    total = Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
                    break;
                }
            }
        } catch (IOException | RuntimeException e) {
            System.getLogger(NodeInfo.class.getName()).log(System.Logger.Level.DEBUG, "no /proc/meminfo", e);
        }
        return new NodeInfo(0, "host", "host", total);
    }
}
