package dev.hetmem.driver;

/**
 * What the core tells a driver when it attaches: the node id the device has in that memory. A
 * driver is attached to at most one memory at a time.
 *
 * @param node the device's node id in the memory, from 1 (node 0 is the host), in the order
 *             devices were added to the builder
 */
public record DeviceContext(int node) {}
