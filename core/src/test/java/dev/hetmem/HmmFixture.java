package dev.hetmem;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;

import java.lang.foreign.Arena;

import static dev.hetmem.MemoryFixture.MiB;
import static dev.hetmem.MemoryFixture.verified;

/**
 * What every ported HMM self-test starts from, as the kernel's {@code hmm} fixture opens its
 * device: one device of the kind under test (64 MiB) in a memory; checked and closed after.
 */
abstract class HmmFixture {
    TestDevice dev;
    UnifiedMemory mem;
    /** Shared: kernels read and write these buffers on the device's threads. */
    Arena arena;

    @BeforeEach
    void setUp() {
        dev = MemoryFixture.device(64 * MiB);
        mem = MemoryFixture.memory(dev);
        arena = Arena.ofShared();
    }

    /** The kernel's {@code hmm2} fixture: the memory again, with a second device (16 MiB); returns that one. */
    TestDevice withSecondDevice() {
        mem.close();
        TestDevice second = MemoryFixture.device(16 * MiB);
        dev = MemoryFixture.device(64 * MiB);   // a device joins one memory in its life
        mem = MemoryFixture.memory(dev, second);
        return second;
    }

    @AfterEach
    void tearDown() {
        if (mem != null) {
            verified(mem);
            mem.close();
        }
        arena.close();
    }
}
