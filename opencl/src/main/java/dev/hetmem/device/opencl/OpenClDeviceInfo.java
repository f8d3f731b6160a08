package dev.hetmem.device.opencl;

/**
 * One OpenCL device found on this machine, as {@code hetmem info} lists it. {@code platform} and
 * {@code index} (the device's position within its platform) pick it for {@link OpenClDevice.Builder}.
 */
public record OpenClDeviceInfo(int platform, int index, String platformName, String platformVersion, String name,
                               String type, String version, long globalMemory, long maxAllocation, int computeUnits) {}
