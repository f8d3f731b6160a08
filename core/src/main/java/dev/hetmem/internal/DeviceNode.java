package dev.hetmem.internal;

import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.phys.BuddyAllocator;

/** One attached device: its node id, its driver and the core's allocator over its memory. */
public record DeviceNode(int node, DeviceDriver driver, BuddyAllocator allocator) {}
