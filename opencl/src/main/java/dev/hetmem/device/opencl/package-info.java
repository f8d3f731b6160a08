/**
 * hetmem's OpenCL driver: {@link dev.hetmem.device.opencl.OpenClDevice} makes any OpenCL 1.2+ device
 * (a GPU, or the CPU through PoCL) a node of {@link dev.hetmem.UnifiedMemory}, whose pages migrate
 * to pool buffers on the device and whose kernels reach regions through a device page table.
 *
 * <p>Kernels are OpenCL C built with {@code hetmem.h} in front ({@link OpenClProgram#HEADER}). A
 * kernel declares {@code HM_SPACE_PARAMS} first, then one {@code HM_REGION(x)} per region argument
 * of the launch (in the order of its {@link dev.hetmem.KernelArg}s), then its own scalars.
 * {@code HM_PTR(T, x, i)} is the address of element {@code i} of type {@code T} of {@code x} for
 * reading, {@code HM_WPTR} the same for writing. An address is valid only up to the end of its 4 KiB
 * page (the next page may be in another frame): elements whose size divides 4096, at aligned offsets,
 * never cross one; longer runs check {@code HM_SAME_PAGE} or {@code HM_PAGE_LEFT}. An access outside
 * the argument, or a write to one declared read-only, is dropped and the launch throws.
 *
 * <p>Open a device with {@link OpenClDevice#builder()}: platform and device index (as
 * {@link OpenClPlatforms#devices()} lists them; default the first), capacity in multiples of 2 MiB
 * (default a quarter of the device's global memory), then {@code build()}. For example:
 * <pre>{@code
 * String src = "__kernel void twice(HM_SPACE_PARAMS, HM_REGION(x)) {"
 *         + " __global float *p = HM_WPTR(float, x, get_global_id(0)); p[0] = 2 * p[0]; }";
 * try (OpenClDevice gpu = OpenClDevice.builder().capacity(64L << 20).build();
 *      UnifiedMemory mem = UnifiedMemory.builder().device(gpu).build();
 *      OpenClProgram program = gpu.compile(src);
 *      Region x = mem.allocate(1L << 20)) {
 *     mem.launch(1, program.kernel("twice"), x.size() / 4, KernelArg.readWrite(x));
 * }
 * }</pre>
 */
package dev.hetmem.device.opencl;
