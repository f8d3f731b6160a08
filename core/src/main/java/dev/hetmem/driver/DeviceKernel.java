package dev.hetmem.driver;

/**
 * A kernel one driver can run. Each driver defines its own kernel type (Java code for the emulated
 * device, a compiled program for OpenCL) extending this marker; {@link DeviceDriver#execute}
 * rejects kernels of another kind. Users pass it to {@code UnifiedMemory.launch}, which hands it
 * to the driver of the node named there unchanged.
 */
public interface DeviceKernel {}
