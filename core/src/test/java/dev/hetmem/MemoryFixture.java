package dev.hetmem;

import dev.hetmem.device.emulated.EmulatedDevice;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Shared helpers: patterned data written and checked through host views, and invariant checks. */
final class MemoryFixture {
    static final long MiB = 1L << 20;
    static final long PAGE = 4096;

    private MemoryFixture() {}

    /** libc's memset and memcpy, for tests whose native code touches region memory. */
    static final java.lang.invoke.MethodHandle MEMSET = libc("memset",
            java.lang.foreign.FunctionDescriptor.of(java.lang.foreign.ValueLayout.ADDRESS, java.lang.foreign.ValueLayout.ADDRESS,
                    java.lang.foreign.ValueLayout.JAVA_INT, java.lang.foreign.ValueLayout.JAVA_LONG));
    static final java.lang.invoke.MethodHandle MEMCPY = libc("memcpy",
            java.lang.foreign.FunctionDescriptor.of(java.lang.foreign.ValueLayout.ADDRESS, java.lang.foreign.ValueLayout.ADDRESS,
                    java.lang.foreign.ValueLayout.ADDRESS, java.lang.foreign.ValueLayout.JAVA_LONG));

    private static java.lang.invoke.MethodHandle libc(String name, java.lang.foreign.FunctionDescriptor fd) {
        java.lang.foreign.Linker linker = java.lang.foreign.Linker.nativeLinker();
        return linker.downcallHandle(linker.defaultLookup().find(name).orElseThrow(), fd);
    }

    /**
     * A real component a test needs: under CI=true (where CI installs it) its absence fails the
     * test; elsewhere the test is skipped with the reason.
     */
    static void needs(boolean present, java.util.function.Supplier<String> why) {
        if ("true".equals(System.getenv("CI"))) {
            assertTrue(present, () -> "CI must run this test: " + why.get());
        } else {
            org.junit.jupiter.api.Assumptions.assumeTrue(present, why);
        }
    }

    static UnifiedMemory memory(TestDevice... devices) {
        UnifiedMemory.Builder b = UnifiedMemory.builder().copyThreads(2);
        for (TestDevice d : devices) {
            b.device(d.driver());
        }
        return b.build();
    }

    static UnifiedMemory memoryOf(EmulatedDevice... devices) {
        UnifiedMemory.Builder b = UnifiedMemory.builder().copyThreads(2);
        for (EmulatedDevice d : devices) {
            b.device(d);
        }
        return b.build();
    }

    /** A device of the kind under test ({@link TestDevice#kind()}). */
    static TestDevice device(long capacity) {
        return TestDevice.create(capacity);
    }

    /** An emulated device, for tests about that driver (tagged "emulated"). */
    static EmulatedDevice emulated(long capacity) {
        return EmulatedDevice.builder().capacity(capacity).computeThreads(2).build();
    }

    /** The value the pattern puts at long index {@code i}. */
    static long value(long seed, long i) {
        long x = seed * 0x9E3779B97F4A7C15L + i;
        x ^= x >>> 31;
        x *= 0xBF58476D1CE4E5B9L;
        return x ^ (x >>> 29);
    }

    static void fill(Region r, long offset, long length, long seed) {
        try (HostView v = r.host(offset, length, Access.WRITE)) {
            fill(v.segment(), offset, seed);
        }
    }

    static void fill(MemorySegment s, long regionOffset, long seed) {
        for (long i = 0; i + 8 <= s.byteSize(); i += 8) {
            s.set(ValueLayout.JAVA_LONG_UNALIGNED, i, value(seed, (regionOffset + i) >>> 3));
        }
    }

    static void check(Region r, long offset, long length, long seed) {
        try (HostView v = r.host(offset, length, Access.READ)) {
            check(v.segment(), offset, seed);
        }
    }

    static void check(MemorySegment s, long regionOffset, long seed) {
        for (long i = 0; i + 8 <= s.byteSize(); i += 8) {
            long want = value(seed, (regionOffset + i) >>> 3);
            long got = s.get(ValueLayout.JAVA_LONG_UNALIGNED, i);
            if (want != got) {
                assertEquals(want, got, "long at region offset " + (regionOffset + i));
            }
        }
    }

    static void checkZero(MemorySegment s) {
        for (long i = 0; i + 8 <= s.byteSize(); i += 8) {
            long got = s.get(ValueLayout.JAVA_LONG_UNALIGNED, i);
            if (got != 0) {
                assertEquals(0, got, "long at offset " + i);
            }
        }
    }

    /** Every long i of [0, bytes) of r is value(seed, i) plus {@code added} (read through a host view). */
    static void checkAdded(Region r, long bytes, long seed, long added) {
        try (HostView v = r.host(0, bytes, Access.READ)) {
            for (long i = 0; i < bytes / 8; i++) {
                long got = v.segment().get(java.lang.foreign.ValueLayout.JAVA_LONG, 8 * i);
                if (got != value(seed, i) + added) {
                    org.junit.jupiter.api.Assertions.assertEquals(value(seed, i) + added, got, "long " + i + " of " + r);
                }
            }
        }
    }

    static void verified(UnifiedMemory m) {
        assertTrue(m.verify().isEmpty(), () -> "invariants broken:\n" + String.join("\n", m.verify()));
    }

    /** The call throws {@code type} with a message that contains {@code expected}. */
    static void names(Class<? extends Throwable> type, String expected, Runnable call) {
        Throwable t = org.junit.jupiter.api.Assertions.assertThrows(type, call::run);
        assertTrue(t.getMessage() != null && t.getMessage().contains(expected),
                () -> "message should name '" + expected + "': " + t.getMessage());
    }
}
