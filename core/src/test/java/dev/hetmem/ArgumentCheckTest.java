package dev.hetmem;

import dev.hetmem.device.emulated.EmulatedDevice;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.function.Supplier;

import static dev.hetmem.MemoryFixture.MiB;
import static dev.hetmem.MemoryFixture.names;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Bad input gets an exception that names the bad value and the limit it broke. */
@Tag("emulated") // argument checks of the API and of the emulated driver's builder
class ArgumentCheckTest {

    @Test
    void badArgumentsAreRefusedWithTheirValues() {
        try (UnifiedMemory mem = MemoryFixture.memory(MemoryFixture.device(8 * MiB))) {
            Region r = mem.allocate(MiB);
            names(IndexOutOfBoundsException.class, "-1", () -> r.host(-1, 10, Access.READ));
            names(IllegalArgumentException.class, "length -1", () -> r.host(0, -1, Access.READ));   // length 0 is an empty view
            names(IndexOutOfBoundsException.class, "1048576", () -> r.host(MiB - 10, 11, Access.READ));
            names(IndexOutOfBoundsException.class, String.valueOf(Long.MAX_VALUE), () -> r.host(1, Long.MAX_VALUE, Access.READ));
            names(IllegalArgumentException.class, "region size 0", () -> mem.allocate(0));
            names(IllegalArgumentException.class, "region size -5", () -> mem.allocate(-5));
            names(IllegalArgumentException.class, "region size " + (1L << 62), () -> mem.allocate(1L << 62));
            names(IllegalArgumentException.class, "granularity 3000", () -> mem.allocate(MiB, 3000));
            names(IllegalArgumentException.class, "granularity 12288", () -> r.advise(0, MiB, Advice.granularity(12288)));
            names(IllegalArgumentException.class, "unknown node 7", () -> r.advise(0, MiB, Advice.prefetch(7)));
            names(IllegalArgumentException.class, "unknown node -1", () -> mem.release(-1));
            names(IllegalArgumentException.class, "node 0 is the host", () -> mem.launch(0,
                    new EmulatedTestDevice(4096).noop(), 1, KernelArg.read(r)));
            names(IllegalArgumentException.class, "global size 0", () -> mem.launch(1,
                    new EmulatedTestDevice(4096).noop(), 0, KernelArg.read(r)));
            names(IndexOutOfBoundsException.class, "outside", () -> mem.launch(1,
                    new EmulatedTestDevice(4096).noop(), 1, KernelArg.of(r, MiB, 1, Access.READ)));
            names(IllegalArgumentException.class, "capacity 1000", () -> EmulatedDevice.builder().capacity(1000));
            names(IllegalArgumentException.class, "copy threads 0", () -> UnifiedMemory.builder().copyThreads(0));
            try (UnifiedMemory other = MemoryFixture.memory()) {
                Region foreign = other.allocate(MiB);
                names(IllegalArgumentException.class, "another memory", () -> mem.advise(foreign, 0, 1, Advice.dontNeed()));
            }
            r.free();
            names(IllegalStateException.class, "freed", () -> r.host(0, 1, Access.READ));
            names(IllegalStateException.class, "already freed", r::free);
            names(IllegalStateException.class, "freed", () -> r.advise(0, 1, Advice.prefetch(1)));
            names(IllegalStateException.class, "freed", () -> r.snapshot(0, 1));
        }
    }

    @Test
    void aClosedMemoryRefusesFurtherUse() {
        UnifiedMemory mem = MemoryFixture.memory(MemoryFixture.device(8 * MiB));
        Region r = mem.allocate(MiB);
        mem.close();
        mem.close();
        names(IllegalStateException.class, "memory is closed", () -> mem.allocate(10));
        names(IllegalStateException.class, "closed", () -> r.host(0, 1, Access.READ));
        Supplier<Object> launch = () -> mem.launch(1, new EmulatedTestDevice(4096).noop(), 1, KernelArg.read(r));
        names(IllegalStateException.class, "closed", launch::get);
    }
}
