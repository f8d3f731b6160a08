/**
 * The emulated device: a complete {@link dev.hetmem.driver.DeviceDriver} that lives in host memory,
 * modelled on the Linux kernel's test_hmm "dmirror" device. Every core test runs on it, and it is
 * the reference for anyone writing a driver.
 *
 * <p>{@link dev.hetmem.device.emulated.EmulatedDevice} has an off-heap pool of fixed capacity as
 * its memory, a page table of its own, a copy-engine thread, a peer path to other emulated devices,
 * host mappings, and device faults while kernels run. Its kernels are Java code:
 * {@link dev.hetmem.device.emulated.EmulatedKernel}s run once per work item on a pool of compute
 * threads and reach their region arguments only through
 * {@link dev.hetmem.device.emulated.KernelArgs} and
 * {@link dev.hetmem.device.emulated.DeviceBuffer}, that is through the device page table, so an
 * access to a page the core did not map is caught as it would be on a GPU.
 *
 * <p>Tests use its dmirror-style commands ({@code read}, {@code write}, returning a
 * {@link dev.hetmem.device.emulated.CommandResult}) and its fault injection
 * ({@code failAllocation}, {@code failRunsOfAtLeast}, {@code failCopy}) to drive the core's undo
 * paths.
 */
package dev.hetmem.device.emulated;
