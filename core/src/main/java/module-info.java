/**
 * hetmem's core: one address space for the host and attached devices, with a logical page table,
 * batched migration, eviction, read duplication and a file loader.
 *
 * <p>Exported: the API ({@code dev.hetmem}), the loader's types ({@code dev.hetmem.io}), the driver
 * SPI a new accelerator implements ({@code dev.hetmem.driver}), the emulated device, the
 * model-based stress harness a driver plugs into ({@code dev.hetmem.stress}), and the machine limits
 * benchmarks measure beside their rows ({@code dev.hetmem.limits}). Everything else (the page table,
 * the migration engine, frames, host sides, the fault service, native bindings) is internal.
 */
module dev.hetmem {
    requires jdk.jfr;

    exports dev.hetmem;
    exports dev.hetmem.io;
    exports dev.hetmem.driver;
    exports dev.hetmem.device.emulated;
    exports dev.hetmem.stress;
    exports dev.hetmem.limits;
}
