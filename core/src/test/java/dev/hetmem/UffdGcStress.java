package dev.hetmem;

import dev.hetmem.device.emulated.EmulatedDevice;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Run in a child JVM by {@link UserfaultfdGcSafetyTest}: threads fault on device-resident pages
 * from Java code and from native code (memset, memcpy) while another thread forces a garbage
 * collection every few milliseconds and a third keeps moving the pages back to the device. Prints one
 * line per round and "OK" at the end; a mismatch exits with status 1. A hang is what the parent's
 * watchdog is for: a safepoint that cannot complete stops every Java thread, this one's too.
 */
public final class UffdGcStress {
    public static void main(String[] args) throws Throwable {
        int rounds = Integer.parseInt(args[0]);
        long granule = Long.parseLong(args[1]);
        AtomicBoolean stop = new AtomicBoolean();
        java.util.concurrent.atomic.AtomicLong gcs = new java.util.concurrent.atomic.AtomicLong();
        Thread gc = Thread.ofPlatform().daemon().start(() -> {
            // a full collection (a safepoint) every 5 ms: back to back they would starve these two cores
            while (!stop.get()) {
                System.gc();
                gcs.incrementAndGet();
                java.util.concurrent.locks.LockSupport.parkNanos(5_000_000);
            }
        });
        try (UnifiedMemory mem = UnifiedMemory.builder().copyThreads(2).granularity(granule)
                .hostFaults(HostFaultMode.USERFAULTFD)
                .device(EmulatedDevice.builder().capacity(64L << 20).computeThreads(1).build()).build()) {
            long size = 16L << 20;
            Region r = mem.allocate(size);
            MemorySegment s = r.segment();
            int threads = 4;
            long slice = size / threads;
            for (int round = 0; round < rounds; round++) {
                long seed = round * 31L + 7;
                mem.advise(r, 0, size, new Advice.Prefetch(1));
                AtomicReference<Throwable> failure = new AtomicReference<>();
                List<Thread> workers = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    long base = t * slice;
                    boolean nativeCode = t % 2 == 1;
                    workers.add(Thread.ofPlatform().start(() -> {
                        try {
                            if (nativeCode) {
                                // half the slice set natively, the other half copied natively from it
                                MemorySegment a = MemorySegment.ofAddress(r.address() + base).reinterpret(slice);
                                MemorySegment ignored = (MemorySegment) MemoryFixture.MEMSET.invokeExact(a, (int) (seed & 0x7F), slice / 2);
                                ignored = (MemorySegment) MemoryFixture.MEMCPY.invokeExact(a.asSlice(slice / 2), a, slice / 2);
                            } else {
                                for (long i = 0; i < slice; i += 8) {
                                    s.set(JAVA_LONG, base + i, seed ^ (base + i));
                                }
                            }
                        } catch (Throwable e) {
                            failure.set(e);
                        }
                    }));
                }
                // meanwhile: the pages keep leaving for the device
                for (int k = 0; k < 4; k++) {
                    long off = ThreadLocalRandom.current().nextLong(size / granule) * granule;
                    mem.advise(r, off, Math.min(4L << 20, size - off), new Advice.Prefetch(1));
                }
                for (Thread w : workers) {
                    w.join();
                }
                if (failure.get() != null) {
                    throw failure.get();
                }
                mem.advise(r, 0, size, new Advice.Prefetch(1));
                long bad = 0;
                byte b = (byte) (seed & 0x7F);
                long pattern = 0;
                for (int k = 0; k < 8; k++) {
                    pattern = (pattern << 8) | (b & 0xFF);
                }
                for (int t = 0; t < threads; t++) {
                    long base = t * slice;
                    for (long i = 0; i < slice; i += 8) {
                        long want = t % 2 == 1 ? pattern : seed ^ (base + i);
                        bad += s.get(JAVA_LONG, base + i) == want ? 0 : 1;
                    }
                }
                List<String> problems = mem.verify();
                System.out.println("round " + round + " bad " + bad + " problems " + problems.size() + " gcs " + gcs.get()
                        + " faults " + mem.faultServiceCounters().faults());
                if (bad != 0 || !problems.isEmpty()) {
                    System.out.println("FAILED " + problems.stream().limit(5).toList());
                    System.exit(1);
                }
            }
        } finally {
            stop.set(true);
        }
        gc.join();
        System.out.println("OK");
    }
}
