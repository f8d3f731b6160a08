package dev.hetmem.cli;

/** This machine's memory, which the commands that build a device in it or stage files in it are bounded by. */
final class HostMemory {
    private HostMemory() {
    }

    /** Bytes of physical memory, as the operating system reports them. */
    static long physicalBytes() {
        return ((com.sun.management.OperatingSystemMXBean)
                java.lang.management.ManagementFactory.getOperatingSystemMXBean()).getTotalMemorySize();
    }
}
