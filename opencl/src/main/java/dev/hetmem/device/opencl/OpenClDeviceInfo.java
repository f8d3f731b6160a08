package dev.hetmem.device.opencl;

/**
 * One OpenCL device found on this machine, as {@code hetmem info} lists it. {@code platform} and
 * {@code index} (the device's position within its platform) pick it for {@link OpenClDevice.Builder}.
 *
 * @param platform the platform's position among this machine's platforms, from 0
 * @param index the device's position within its platform, from 0
 * @param platformName the platform's name (CL_PLATFORM_NAME), such as "Portable Computing Language"
 * @param platformVersion the OpenCL version the platform supports (CL_PLATFORM_VERSION)
 * @param name the device's name (CL_DEVICE_NAME), without surrounding blanks
 * @param type "GPU", "accelerator", "CPU" or "other", from CL_DEVICE_TYPE
 * @param version the OpenCL version the device supports (CL_DEVICE_VERSION)
 * @param globalMemory the device's global memory in bytes (CL_DEVICE_GLOBAL_MEM_SIZE)
 * @param maxAllocation the largest single buffer the device allows, in bytes
 *        (CL_DEVICE_MAX_MEM_ALLOC_SIZE); it bounds each of hetmem's pool buffers
 * @param computeUnits the device's parallel compute units (CL_DEVICE_MAX_COMPUTE_UNITS)
 */
public record OpenClDeviceInfo(int platform, int index, String platformName, String platformVersion, String name,
                               String type, String version, long globalMemory, long maxAllocation, int computeUnits) {}
