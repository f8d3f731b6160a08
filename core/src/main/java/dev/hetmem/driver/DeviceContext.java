package dev.hetmem.driver;

/**
 * What the core tells a driver when it attaches: the node id the device has in that memory. A
 * driver is attached to at most one memory at a time.
 */
public record DeviceContext(int node) {}
