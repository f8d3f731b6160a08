/**
 * The model-based stress harness: seeded random programs over the public API, checked byte for
 * byte against a shadow model of every region.
 *
 * <p>A {@link dev.hetmem.stress.StressConfig} names the devices, the host-fault mode, thrashing
 * control, device size, failure injection and the number of workers;
 * {@link dev.hetmem.stress.StressPlan} lists the configurations a round covers, and
 * {@link dev.hetmem.stress.StressRun} runs one, shrinking a failing one-worker program of
 * {@link dev.hetmem.stress.Step}s to a short one that still fails.
 *
 * <p>A driver plugs in by implementing {@link dev.hetmem.stress.StressDevices}: how to make its
 * device and the few kernels the program launches on it.
 * {@link dev.hetmem.stress.EmulatedStressDevices} is the emulated device's.
 */
package dev.hetmem.stress;
