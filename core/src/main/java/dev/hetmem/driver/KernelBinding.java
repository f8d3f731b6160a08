package dev.hetmem.driver;

import dev.hetmem.Access;

/**
 * One region argument of a launch as the driver sees it: the virtual address range the kernel may
 * touch and with which access. The core has made every page of it resident and mapped.
 */
public record KernelBinding(long va, long length, Access access) {}
