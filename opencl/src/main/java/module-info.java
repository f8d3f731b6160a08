/** hetmem's OpenCL driver: regions reached by OpenCL kernels through a device page table. */
module dev.hetmem.opencl {
    requires transitive dev.hetmem;

    exports dev.hetmem.device.opencl;
}
