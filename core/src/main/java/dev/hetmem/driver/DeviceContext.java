package dev.hetmem.driver;

import dev.hetmem.UnifiedMemory;

/**
 * What the core tells a driver when it attaches: its node id and the memory it belongs to (for
 * drivers that offer convenience commands built on the public API, like the emulated device's
 * dmirror-style read and write).
 */
public record DeviceContext(int node, UnifiedMemory memory) {}
