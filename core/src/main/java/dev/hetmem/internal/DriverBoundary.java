package dev.hetmem.internal;

import dev.hetmem.driver.CopyBatch;
import dev.hetmem.driver.CopyEngine;
import dev.hetmem.driver.DeviceContext;
import dev.hetmem.driver.DeviceCopyException;
import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.driver.DeviceFaultHandler;
import dev.hetmem.driver.DeviceKernel;
import dev.hetmem.driver.DeviceMemoryException;
import dev.hetmem.driver.KernelBinding;
import dev.hetmem.driver.UndeclaredDriverException;
import dev.hetmem.driver.VaRanges;

import java.util.List;

/**
 * The core's side of the driver interface: every call goes to the driver as it is, and a checked
 * exception the interface does not declare (a driver in another JVM language, a sneaky throw)
 * comes back as an unchecked one that names the call, the checked exception as its cause: a
 * {@link DeviceCopyException} from a copy (a failed copy, undone), a {@link DeviceMemoryException}
 * from {@link #prepareFrames} (frames refused, as its contract allows), an
 * {@link UndeclaredDriverException} from anything else. Not a refusal of memory there: compaction
 * and eviction take a {@code DeviceMemoryException} for want of room and swallow or retry it, and
 * a failed {@code map} or {@code invalidate} is no such thing (its unchecked twin reaches the caller).
 *
 * <p>Why at the boundary: the engine's failure paths (undo, commit's cleanup, eviction's
 * invalidation flush, a free's keeping of host memory mapped) catch {@link RuntimeException} and
 * {@link Error}, as the interface's contract allows them to. An undeclared checked exception passed
 * them by: an undo stopped before its later steps (the host side's mappings stayed revoked while
 * the table named the host), and the caller got an exception no signature admits. Converting each
 * call's failure once, here, puts every such path on the one the engine already handles, instead
 * of widening dozens of catch clauses.
 *
 * <p>Every method of {@link DeviceDriver} is forwarded, defaults included (a default left
 * unforwarded would silently replace the driver's own answer; a test checks that none is), and
 * drivers handed to a driver's method ({@link #canCopyFrom}, {@link #copyFromPeer}) are the
 * drivers themselves, not their boundaries, so that a driver recognizes its peers. Stateless
 * beyond the driver it wraps; as thread-safe as that driver.
 */
public final class DriverBoundary implements DeviceDriver {
    private final DeviceDriver driver;

    private DriverBoundary(DeviceDriver driver) {
        this.driver = driver;
    }

    /** {@code driver} behind a boundary (a boundary is returned as it is). */
    public static DeviceDriver of(DeviceDriver driver) {
        return driver instanceof DriverBoundary ? driver : new DriverBoundary(driver);
    }

    /** The driver behind {@code d}, or {@code d} itself when it is not a boundary. */
    public static DeviceDriver unwrap(DeviceDriver d) {
        return d instanceof DriverBoundary b ? b.driver : d;
    }

    /** What a call's undeclared checked exception becomes: see the class comment. */
    private enum Kind { COPY, FRAMES, OTHER }

    /** A failure of {@code call} as the engine handles it: unchecked ones as they are. */
    private RuntimeException failed(String call, Throwable t, Kind kind) {
        if (t instanceof RuntimeException e) {
            return e;
        }
        if (t instanceof Error e) {
            throw e;
        }
        if (t instanceof InterruptedException) {
            Thread.currentThread().interrupt();   // the status its thrower cleared, for the waits after
        }
        String message = "the driver of " + safeName() + (call.equals("execute") ? " (or a kernel it ran)" : "")
                + " threw " + t + " from " + call + ", a checked exception its interface does not declare";
        return switch (kind) {
            case COPY -> new DeviceCopyException(message, t);
            case FRAMES -> new DeviceMemoryException(message, t);
            case OTHER -> new UndeclaredDriverException(message, t);
        };
    }

    private String safeName() {
        try {
            return driver.name();
        } catch (Throwable e) {   // its own undeclared checked exception too: the message must still be made
            if (e instanceof Error err) {
                throw err;
            }
            return driver.getClass().getName();
        }
    }

    // Each method: the call, and its failure through failed(). The catch of Throwable is what lets an
    // undeclared checked exception be caught at all (the compiler knows of none in the try).

    @Override
    public String kind() {
        try {
            return driver.kind();
        } catch (Throwable t) {
            throw failed("kind", t, Kind.OTHER);
        }
    }

    @Override
    public String name() {
        try {
            return driver.name();
        } catch (Throwable t) {
            throw failed("name", t, Kind.OTHER);
        }
    }

    @Override
    public long memoryBytes() {
        try {
            return driver.memoryBytes();
        } catch (Throwable t) {
            throw failed("memoryBytes", t, Kind.OTHER);
        }
    }

    @Override
    public void attach(DeviceContext context) {
        try {
            driver.attach(context);
        } catch (Throwable t) {
            throw failed("attach", t, Kind.OTHER);
        }
    }

    @Override
    public void detach(DeviceContext context) {
        try {
            driver.detach(context);
        } catch (Throwable t) {
            throw failed("detach", t, Kind.OTHER);
        }
    }

    @Override
    public void prepareFrames(int first, int count) {
        try {
            driver.prepareFrames(first, count);
        } catch (Throwable t) {
            throw failed("prepareFrames", t, Kind.FRAMES);
        }
    }

    @Override
    public void copy(CopyBatch batch, int from, int to) {
        try {
            driver.copy(batch, from, to);
        } catch (Throwable t) {
            throw failed("copy", t, Kind.COPY);
        }
    }

    @Override
    public boolean runsKernelOnCurrentThread() {
        try {
            return driver.runsKernelOnCurrentThread();
        } catch (Throwable t) {
            throw failed("runsKernelOnCurrentThread", t, Kind.OTHER);
        }
    }

    @Override
    public boolean canCopyFrom(DeviceDriver source) {
        try {
            return driver.canCopyFrom(unwrap(source));
        } catch (Throwable t) {
            throw failed("canCopyFrom", t, Kind.OTHER);
        }
    }

    @Override
    public void copyFromPeer(DeviceDriver source, int sourceFrame, int frame, int pages) {
        try {
            driver.copyFromPeer(unwrap(source), sourceFrame, frame, pages);
        } catch (Throwable t) {
            throw failed("copyFromPeer", t, Kind.COPY);
        }
    }

    @Override
    public boolean canCopyWithin() {
        try {
            return driver.canCopyWithin();
        } catch (Throwable t) {
            throw failed("canCopyWithin", t, Kind.OTHER);
        }
    }

    @Override
    public void copyWithin(int[] sourceFrames, int[] frames, int[] pages, int count) {
        try {
            driver.copyWithin(sourceFrames, frames, pages, count);
        } catch (Throwable t) {
            throw failed("copyWithin", t, Kind.COPY);
        }
    }

    /** The driver's engine as it is: the copy path already takes any failure of it as a failed copy. */
    @Override
    public CopyEngine copyEngine() {
        try {
            return driver.copyEngine();
        } catch (Throwable t) {
            throw failed("copyEngine", t, Kind.OTHER);
        }
    }

    @Override
    public void map(long va, int frame, int pages, boolean writable) {
        try {
            driver.map(va, frame, pages, writable);
        } catch (Throwable t) {
            throw failed("map", t, Kind.OTHER);
        }
    }

    @Override
    public long hostAddress(int frame) {
        try {
            return driver.hostAddress(frame);
        } catch (Throwable t) {
            throw failed("hostAddress", t, Kind.OTHER);
        }
    }

    @Override
    public boolean canMapHost() {
        try {
            return driver.canMapHost();
        } catch (Throwable t) {
            throw failed("canMapHost", t, Kind.OTHER);
        }
    }

    @Override
    public void mapHost(long va, long hostAddress, int pages, boolean writable) {
        try {
            driver.mapHost(va, hostAddress, pages, writable);
        } catch (Throwable t) {
            throw failed("mapHost", t, Kind.OTHER);
        }
    }

    @Override
    public void unmap(long va, long pages) {
        try {
            driver.unmap(va, pages);
        } catch (Throwable t) {
            throw failed("unmap", t, Kind.OTHER);
        }
    }

    @Override
    public void protect(long va, long pages, boolean writable) {
        try {
            driver.protect(va, pages, writable);
        } catch (Throwable t) {
            throw failed("protect", t, Kind.OTHER);
        }
    }

    @Override
    public void invalidate(VaRanges ranges) {
        try {
            driver.invalidate(ranges);
        } catch (Throwable t) {
            throw failed("invalidate", t, Kind.OTHER);
        }
    }

    @Override
    public int contiguousFrames() {
        try {
            return driver.contiguousFrames();
        } catch (Throwable t) {
            throw failed("contiguousFrames", t, Kind.OTHER);
        }
    }

    @Override
    public boolean bindsPlainArgumentsByFrame() {
        try {
            return driver.bindsPlainArgumentsByFrame();
        } catch (Throwable t) {
            throw failed("bindsPlainArgumentsByFrame", t, Kind.OTHER);
        }
    }

    @Override
    public int plainAlignment() {
        try {
            return driver.plainAlignment();
        } catch (Throwable t) {
            throw failed("plainAlignment", t, Kind.OTHER);
        }
    }

    @Override
    public int probe(long va) {
        try {
            return driver.probe(va);
        } catch (Throwable t) {
            throw failed("probe", t, Kind.OTHER);
        }
    }

    @Override
    public long probeFrame(long va) {
        try {
            return driver.probeFrame(va);
        } catch (Throwable t) {
            throw failed("probeFrame", t, Kind.OTHER);
        }
    }

    @Override
    public void execute(DeviceKernel kernel, long globalSize, List<KernelBinding> arguments) {
        try {
            driver.execute(kernel, globalSize, arguments);
        } catch (Throwable t) {
            throw failed("execute", t, Kind.OTHER);
        }
    }

    /** The driver's own answer: the default reads which class declares {@code execute}, the driver's, not this one. */
    @Override
    public boolean runsFromAnyItem() {
        try {
            return driver.runsFromAnyItem();
        } catch (Throwable t) {
            throw failed("runsFromAnyItem", t, Kind.OTHER);
        }
    }

    @Override
    public void execute(DeviceKernel kernel, long globalOffset, long globalSize, List<KernelBinding> arguments,
                        DeviceFaultHandler faults) {
        try {
            driver.execute(kernel, globalOffset, globalSize, arguments, faults);
        } catch (Throwable t) {
            throw failed("execute", t, Kind.OTHER);
        }
    }

    @Override
    public long tileCacheBytes() {
        try {
            return driver.tileCacheBytes();
        } catch (Throwable t) {
            throw failed("tileCacheBytes", t, Kind.OTHER);
        }
    }

    @Override
    public boolean takesDeviceFaults() {
        try {
            return driver.takesDeviceFaults();
        } catch (Throwable t) {
            throw failed("takesDeviceFaults", t, Kind.OTHER);
        }
    }

    @Override
    public boolean holdsTranslationsOnCurrentThread() {
        try {
            return driver.holdsTranslationsOnCurrentThread();
        } catch (Throwable t) {
            throw failed("holdsTranslationsOnCurrentThread", t, Kind.OTHER);
        }
    }

    @Override
    public void close() {
        try {
            driver.close();
        } catch (Throwable t) {
            throw failed("close", t, Kind.OTHER);
        }
    }

    @Override
    public String toString() {
        return driver.toString();
    }
}
