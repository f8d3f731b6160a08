package dev.hetmem.driver;

import dev.hetmem.Access;

/**
 * One region argument of a launch as the driver sees it: the virtual address range the kernel may
 * touch and with which access. The core has made every page of it resident and mapped (in a tiled
 * launch only the pages the tile's items declared; in a launch that takes device faults, none up
 * front).
 *
 * @param va host virtual address of the argument's first byte (the region's address plus the
 *           argument's offset; not necessarily page aligned)
 * @param length the argument's length in bytes; a kernel access outside [va, va + length) is a
 *               {@link DeviceFaultException}
 * @param access how the kernel may use it: a write through a {@link Access#READ} argument is a
 *               {@link DeviceFaultException}
 */
public record KernelBinding(long va, long length, Access access) {}
