package dev.hetmem.internal;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;

/** The conflict questions answer from the open-pin count while no pin is open, and from the list once one is. */
class PinsTest {
    @Test
    void conflictQuestionsSeeEveryOpenPinAndNoneOnceReleased() {
        Pins pins = new Pins();
        assertNull(pins.conflict(0, 100, 1));
        assertNull(pins.any(0, 100));
        Pins.Pin host = pins.add(0, 10, 20, false);
        Pins.Pin device = pins.add(1, 30, 40, true);
        assertSame(host, pins.conflict(0, 15, 1));
        assertNull(pins.conflict(20, 30, 1));
        assertSame(device, pins.conflict(35, 36, 0));
        assertNull(pins.conflict(35, 36, 1));
        assertSame(device, pins.writingConflict(0, 100, 0));
        assertNull(pins.writingConflict(10, 20, 1));
        assertSame(device, pins.on(1, 0, 100));
        assertSame(device, pins.anyDevice(0, 100));
        assertSame(host, pins.any(19, 20));
        pins.remove(host);
        assertNull(pins.conflict(0, 30, 1));
        assertSame(device, pins.any(0, 100));
        pins.remove(device);
        assertNull(pins.any(0, 100));
        assertNull(pins.conflict(0, 100, 5));
        assertNull(pins.on(1, 0, 100));
        assertNull(pins.anyDevice(0, 100));
        // one more after the list emptied: the count goes up again
        Pins.Pin again = pins.add(2, 0, 1, false);
        assertSame(again, pins.conflict(0, 1, 1));
        assertSame(again, pins.anyDevice(0, 1));
    }
}
