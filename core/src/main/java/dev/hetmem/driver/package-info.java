/**
 * The driver SPI: what an accelerator implements to become a node of a
 * {@link dev.hetmem.UnifiedMemory}. The core keeps the logical page table, allocates device frames
 * (4 KiB each, {@link dev.hetmem.driver.PageGeometry}), decides what migrates and when, and calls
 * the driver only for what depends on the hardware: copies, device page-table entries, TLB
 * invalidations and kernel launches. Device addresses are the host's: a region page has the same
 * virtual address on every node.
 *
 * <p>To add an accelerator:
 * <ol>
 *   <li>Implement {@link dev.hetmem.driver.DeviceDriver}: report the managed memory in
 *       {@code memoryBytes}, perform {@link dev.hetmem.driver.CopyBatch} operations in {@code copy},
 *       and keep a device page table with {@code map}, {@code unmap}, {@code protect},
 *       {@code invalidate}, {@code probe} and {@code probeFrame}. Its Javadoc says who calls each
 *       method, under which lock, and what to throw.</li>
 *   <li>Define the device's kernel type as a subtype of {@link dev.hetmem.driver.DeviceKernel} and
 *       run it in {@code execute}, bounds-checking accesses against the
 *       {@link dev.hetmem.driver.KernelBinding}s and reporting illegal ones with
 *       {@link dev.hetmem.driver.DeviceFaultException}.</li>
 *   <li>Optionally: a {@link dev.hetmem.driver.CopyEngine}, peer copies, host mappings, device
 *       faults (with a {@link dev.hetmem.driver.DeviceFaultHandler}), and in-place host reads of
 *       frames ({@code hostAddress}, needed by userfaultfd host faults). The defaults turn them off.</li>
 *   <li>Report failures with {@link dev.hetmem.driver.DeviceMemoryException},
 *       {@link dev.hetmem.driver.RunTooLargeException} and
 *       {@link dev.hetmem.driver.DeviceCopyException}: the core undoes the migration.</li>
 *   <li>Register it with {@code UnifiedMemory.builder().device(driver)}, and run the model-based
 *       stress program ({@code dev.hetmem.stress}) against it through a {@code StressDevices}.</li>
 * </ol>
 * The emulated device ({@code dev.hetmem.device.emulated}) is the reference implementation.
 */
package dev.hetmem.driver;
