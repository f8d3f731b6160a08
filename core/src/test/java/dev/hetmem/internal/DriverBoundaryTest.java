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
            assertEquals(a.runsFromAnyItem(), wa.runsFromAnyItem(), "the driver's own execute decides, not the boundary's");
            assertEquals(a.canCopyWithin(), wa.canCopyWithin());
            assertEquals(a.contiguousFrames(), wa.contiguousFrames());
            // a driver recognizes its peer by its class: it is handed the peer itself, not the peer's boundary
            assertTrue(a.canCopyFrom(b));
            assertTrue(wa.canCopyFrom(wb));
        }
    }
}
