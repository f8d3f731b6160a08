package dev.hetmem.device.opencl;

import org.junit.jupiter.api.Test;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A device closed while another thread compiles programs and makes plain buffers on it: a call
 * either succeeds (before the close ends) or is refused as closed, every call begun after
 * {@code close()} returned is refused, and none hangs or reaches a released context.
 */
class OpenClCloseRaceTest {
    private static final String SOURCE = """
            __kernel void twice(__global const float *a, __global float *b) {
                b[get_global_id(0)] = 2.0f * a[get_global_id(0)];
            }
            """;

    @Test
    void compilesAndPlainBuffersRacingTheCloseSucceedOrAreRefusedAsClosed() throws Exception {
        OpenClFixture.needsOpenCl();
        AtomicInteger refused = new AtomicInteger();
        AtomicInteger made = new AtomicInteger();
        for (int round = 0; round < 30; round++) {
            OpenClDevice dev = OpenClDevice.builder().capacity(2L << 20).build();
            AtomicBoolean closed = new AtomicBoolean();
            AtomicReference<Throwable> broke = new AtomicReference<>();
            int variant = round;
            Thread maker = Thread.ofPlatform().uncaughtExceptionHandler((t, e) -> broke.set(e)).start(() -> {
                int after = 0;
                for (int i = 0; after < 5; i++) {
                    boolean afterClose = closed.get();   // close() had returned before this call began
                    try {
                        if (((i + variant) & 1) == 0) {
                            // a distinct source each time, so that the build is never only a cache hit
                            OpenClProgram p = PlainBuffers.compile(dev, SOURCE + "\n// " + variant + " " + i, "");
                            p.kernel("twice");
                            p.close();
                        } else {
                            dev.plainBuffer(4096).close();
                        }
                        assertFalse(afterClose, "a call begun after close() returned succeeded");
                        made.incrementAndGet();
                    } catch (IllegalStateException e) {
                        assertTrue(e.getMessage().contains("closed"), e.toString());
                        refused.incrementAndGet();
                    }
                    if (closed.get()) {
                        after++;
                    }
                }
            });
            Thread.sleep(1 + round % 7 * 3);
            dev.close();
            closed.set(true);
            maker.join(60_000);
            assertFalse(maker.isAlive(), "the compiling thread is stuck");
            if (broke.get() != null) {
                throw new AssertionError("the compiling thread failed", broke.get());
            }
        }
        assertTrue(made.get() > 0 && refused.get() > 0, made + " made, " + refused + " refused");
    }
}
