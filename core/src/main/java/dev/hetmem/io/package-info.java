/**
 * Loading files into regions: the loader's options and results, and safetensors model files.
 *
 * <p>{@link dev.hetmem.UnifiedMemory#load} reads a file into a new region on the host or straight
 * onto a device, by the {@link dev.hetmem.io.LoadScheme} that {@link dev.hetmem.io.LoadOptions}
 * name: several O_DIRECT read streams overlapped with page population (host) or with device
 * copies through a bounded ring of bounce buffers (device). A {@link dev.hetmem.io.LoadResult}
 * says how long it took, whether direct I/O was used, and how much host memory it needed besides
 * the region.
 *
 * <p>{@link dev.hetmem.io.SafeTensors} validates a safetensors header with the reference
 * implementation's rules before any data I/O, refusing a bad file with a
 * {@link dev.hetmem.io.SafeTensorsException} that names the rule, then loads the file and gives
 * each {@link dev.hetmem.io.Tensor} as a slice of the region.
 */
package dev.hetmem.io;
