package dev.hetmem.internal;

import dev.hetmem.device.emulated.EmulatedDevice;
import dev.hetmem.driver.DeviceDriver;
import org.junit.jupiter.api.Test;

import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The boundary forwards the whole driver interface: a method it does not override (one added to the
 * interface later, say) would answer with the interface's default instead of the driver's own.
 */
class DriverBoundaryTest {
    @Test
    void everyMethodOfTheDriverInterfaceIsForwarded() {
        List<String> missing = new ArrayList<>();
        for (Method m : DeviceDriver.class.getMethods()) {
            if (Modifier.isStatic(m.getModifiers())) {
                continue;
            }
            try {
                Method own = DriverBoundary.class.getMethod(m.getName(), m.getParameterTypes());
                if (own.getDeclaringClass() != DriverBoundary.class) {
                    missing.add(m.toString());
                }
            } catch (NoSuchMethodException e) {
                missing.add(m.toString());
            }
        }
        assertEquals(List.of(), missing, "methods of DeviceDriver the boundary leaves to their defaults");
    }

    @Test
    void theDriversOwnAnswersComeThroughAndPeersAreRecognized() {
        try (EmulatedDevice a = EmulatedDevice.builder().name("a").capacity(4L << 20).build();
             EmulatedDevice b = EmulatedDevice.builder().name("b").capacity(4L << 20).build()) {
            DeviceDriver wa = DriverBoundary.of(a);
            DeviceDriver wb = DriverBoundary.of(b);
            assertSame(wa, DriverBoundary.of(wa), "a boundary is not wrapped twice");
            assertSame(a, DriverBoundary.unwrap(wa));
            assertTrue(a.runsFromAnyItem() && wa.runsFromAnyItem(), "a driver that runs from any item says so through its boundary");
            assertEquals(a.canCopyWithin(), wa.canCopyWithin());
            assertEquals(a.contiguousFrames(), wa.contiguousFrames());
            // a driver recognizes its peer by its class: it is handed the peer itself, not the peer's boundary
            assertTrue(a.canCopyFrom(b));
            assertTrue(wa.canCopyFrom(wb));
        }
    }
    /**
     * Each call's undeclared checked exception comes back as the unchecked kind the engine handles
     * for that call, the checked one as its cause: a copy's as a failed copy, a frame preparation's
     * as refused frames, any other's as neither (compaction and eviction take a
     * DeviceMemoryException for want of room and swallow it: a failed map in a compaction's commit
     * went unreported so, where its unchecked twin reached the caller). From a review of the boundary.
     */
    @Test
    void everyCallsUndeclaredCheckedExceptionBecomesTheUncheckedKindForThatCall() throws Exception {
        DeviceDriver boundary = DriverBoundary.of(new SneakyDriver());
        List<String> wrong = new ArrayList<>();
        for (Method m : DeviceDriver.class.getMethods()) {
            if (Modifier.isStatic(m.getModifiers())) {
                continue;
            }
            Object[] args = new Object[m.getParameterCount()];
            Class<?>[] types = m.getParameterTypes();
            for (int i = 0; i < args.length; i++) {
                args[i] = types[i] == int.class ? (Object) 0 : types[i] == long.class ? (Object) 0L
                        : types[i] == boolean.class ? (Object) false : null;
            }
            Class<? extends RuntimeException> expected = switch (m.getName()) {
                case "copy", "copyFromPeer", "copyWithin" -> dev.hetmem.driver.DeviceCopyException.class;
                case "prepareFrames" -> dev.hetmem.driver.DeviceMemoryException.class;
                default -> dev.hetmem.driver.UndeclaredDriverException.class;
            };
            try {
                m.invoke(boundary, args);
                wrong.add(m.getName() + ": returned");
            } catch (java.lang.reflect.InvocationTargetException e) {
                Throwable got = e.getCause();
                if (got.getClass() != expected || !(got.getCause() instanceof java.io.IOException)
                        || !got.getMessage().contains(m.getName())) {
                    wrong.add(m.getName() + ": " + got);
                }
            }
        }
        assertEquals(List.of(), wrong, "calls whose checked failure did not come back as expected");
    }

    /** The interface's default reads which class overrides execute: the driver's, not the boundary's. */
    @Test
    void aDriverThatRunsWholeLaunchesOnlyStillSaysSoThroughItsBoundary() {
        DeviceDriver wholeOnly = new SneakyDriver(true);
        org.junit.jupiter.api.Assertions.assertFalse(wholeOnly.runsFromAnyItem(), "the fixture overrides only the 3-argument execute");
        org.junit.jupiter.api.Assertions.assertFalse(DriverBoundary.of(wholeOnly).runsFromAnyItem());
    }

    /** A driver every call of which throws an IOException it does not declare. */
    private static final class SneakyDriver implements DeviceDriver {
        /** Whether runsFromAnyItem answers, with the interface's default (which reads this class), rather than throws. */
        private final boolean answersRunsFromAnyItem;

        SneakyDriver() {
            this(false);
        }

        SneakyDriver(boolean answersRunsFromAnyItem) {
            this.answersRunsFromAnyItem = answersRunsFromAnyItem;
        }

        @SuppressWarnings("unchecked")
        private static <T extends Throwable> RuntimeException sneaky(Throwable t) throws T {
            throw (T) t;
        }

        private static RuntimeException fail() {
            return sneaky(new java.io.IOException("a checked failure (a test's driver)"));
        }

        public String kind() { throw fail(); }
        public String name() { throw fail(); }
        public long memoryBytes() { throw fail(); }
        public void attach(dev.hetmem.driver.DeviceContext c) { throw fail(); }
        public void detach(dev.hetmem.driver.DeviceContext c) { throw fail(); }
        public void prepareFrames(int first, int count) { throw fail(); }
        public void copy(dev.hetmem.driver.CopyBatch b, int from, int to) { throw fail(); }
        public boolean runsKernelOnCurrentThread() { throw fail(); }
        public boolean canCopyFrom(DeviceDriver source) { throw fail(); }
        public void copyFromPeer(DeviceDriver source, int sourceFrame, int frame, int pages) { throw fail(); }
        public boolean canCopyWithin() { throw fail(); }
        public void copyWithin(int[] s, int[] f, int[] p, int n) { throw fail(); }
        public dev.hetmem.driver.CopyEngine copyEngine() { throw fail(); }
        public void map(long va, int frame, int pages, boolean w) { throw fail(); }
        public long hostAddress(int frame) { throw fail(); }
        public boolean canMapHost() { throw fail(); }
        public void mapHost(long va, long host, int pages, boolean w) { throw fail(); }
        public void unmap(long va, long pages) { throw fail(); }
        public void protect(long va, long pages, boolean w) { throw fail(); }
        public void invalidate(dev.hetmem.driver.VaRanges ranges) { throw fail(); }
        public int contiguousFrames() { throw fail(); }
        public boolean bindsPlainArgumentsByFrame() { throw fail(); }
        public int plainAlignment() { throw fail(); }
        public int probe(long va) { throw fail(); }
        public long probeFrame(long va) { throw fail(); }
        public void execute(dev.hetmem.driver.DeviceKernel k, long n, List<dev.hetmem.driver.KernelBinding> a) { throw fail(); }
        public boolean runsFromAnyItem() {
            if (answersRunsFromAnyItem) {
                return DeviceDriver.super.runsFromAnyItem();
            }
            throw fail();
        }
        public boolean takesDeviceFaults() { throw fail(); }
        public long tileCacheBytes() { throw fail(); }
        public boolean holdsTranslationsOnCurrentThread() { throw fail(); }
        public void close() { throw fail(); }
    }
}
