package dev.hetmem.device.opencl;

import java.lang.foreign.MemorySegment;

import static dev.hetmem.device.opencl.ClLibrary.call;
import static dev.hetmem.device.opencl.ClLibrary.check;
import static dev.hetmem.device.opencl.OpenClContext.rethrow;

/**
 * OpenCL buffers outside hetmem's management, and kernels that run on nothing else: the baseline
 * {@code hetmem bench translate} measures the device page table against (the same source built
 * with {@code -DHM_PLAIN}, every region parameter a plain buffer, {@link #compile} and
 * {@link #run}). The buffers themselves ({@link OpenClDevice#plainBuffer}) also serve as
 * {@code __global} scalar arguments of region kernels, which is how the test and stress harnesses
 * stage data in and out of a region. Kept out of the driver because none of it is part of
 * managing memory.
 *
 * <p>A buffer is released by its own {@code close}, not by the device's. Transfers to and from it
 * are blocking, on the device's copy queue (so that a transfer on one thread overlaps a kernel
 * running on another, as a double-buffered program needs), and take the buffer's own lock and the
 * copy engine's (not the launch lock).
 */
public final class PlainBuffers {
    private PlainBuffers() {}

    /**
     * Builds {@code source} on {@code device} with every region argument a plain buffer
     * ({@code -DHM_PLAIN}): the kernel without translation, to measure what translation costs.
     * Run its kernels with {@link #run}. The device closes the program when it closes.
     *
     * @param device the device to build for
     * @param source the OpenCL C source, written with {@code hetmem.h}'s macros as for
     *        {@link OpenClDevice#compile(String)}
     * @param options OpenCL build options appended to {@code -DHM_PLAIN}; empty for none
     * @return the built plain program, whose kernels only {@link #run} accepts
     * @throws OpenClBuildException if the source does not compile; it carries the build log
     * @throws IllegalStateException if the device is closed
     * @throws OpenClException if the device was lost or another OpenCL call fails
     * @throws NullPointerException if {@code source} or {@code options} is null
     */
    public static OpenClProgram compile(OpenClDevice device, String source, String options) {
        return device.build(source, "-DHM_PLAIN ", options, true);
    }

    /**
     * Runs a kernel of a {@link #compile}d program of {@code device}, or an ordinary kernel (plain
     * {@code __global} pointers, no {@code hetmem.h} in its signature) of any program of it, on
     * plain buffers (its buffer parameters, in order; its other parameters take the kernel's
     * scalars) and waits for it. Launches of {@code device} wait for it and it for them.
     *
     * @param device the device that built the kernel's program
     * @param kernel a kernel of a program {@link #compile}d here for {@code device}, or an ordinary
     *               kernel of {@code device}, with its scalars
     * @param globalSize the number of work items, positive
     * @param buffers buffers of {@code device}, one per region parameter of the kernel, in order
     * @throws IllegalArgumentException if {@code globalSize} is below 1, {@code kernel} is not from a plain program of {@code device},
     *         or a buffer (an argument or a scalar) belongs to another device
     * @throws IllegalStateException if the device is closed
     * @throws OpenClException if the device was lost, an argument does not match the kernel's
     *         signature, or the kernel fails
     */
    public static void run(OpenClDevice device, OpenClKernel kernel, long globalSize, OpenClDevice.PlainBuffer... buffers) {
        if (globalSize < 1) {
            // OpenCL reads it as a size_t: -1 asks for 2^64 - 1 work items, under the launch lock
            throw new IllegalArgumentException("global size " + globalSize + " must be at least 1");
        }
        if (kernel.program().device() != device || (!kernel.program().plain() && kernel.signature().translated())) {
            throw new IllegalArgumentException("kernel " + kernel.name() + " is not from a plain program of " + device.name()
                    + " (one built by PlainBuffers.compile, or an ordinary kernel with no HM_SPACE_PARAMS)");
        }
        for (int i = 0; i < buffers.length; i++) {
            // another device's buffer is closed under that device's launch lock, not this one's: it could be
            // released while this launch binds it (and it belongs to another OpenCL context)
            Buffer b = (Buffer) java.util.Objects.requireNonNull(buffers[i], "buffer " + i);   // the only implementation (sealed)
            if (b.device() != device) {
                throw new IllegalArgumentException("buffer " + i + " of kernel " + kernel.name() + " belongs to "
                        + b.device().name() + ", not to " + device.name() + ": give a kernel buffers of its own device");
            }
        }
        device.launcher().runPlain(kernel, globalSize, buffers);
    }

    /** A plain buffer of {@code bytes} on {@code device}; what {@link OpenClDevice#plainBuffer} returns. */
    static Buffer allocate(OpenClDevice device, long bytes) {
        OpenClContext ctx = device.context();
        ctx.checkUsable("clCreateBuffer");
        if (bytes <= 0) {
            throw new IllegalArgumentException("buffer size " + bytes + " must be positive");
        }
        // under the launch lock, which the device's close takes to mark itself closed: the context is not
        // released meanwhile (the buffer retains it after: it outlives the device's close)
        MemorySegment[] mem = new MemorySegment[1];
        device.launcher().whileNoLaunch(() -> {
            ctx.checkUsable("clCreateBuffer");
            mem[0] = ctx.createBuffer(bytes);
        });
        return new Buffer(device, ctx, mem[0], bytes);
    }

    /**
     * The one implementation of {@link OpenClDevice.PlainBuffer}: a cl_mem of {@code bytes} in the
     * device's context, released once by {@link #close}. {@code released} is guarded by the buffer's
     * lock, which a transfer holds throughout (so a close waits for it) and a launch takes, under
     * the launch lock, to bind the buffer ({@link #liveHandle}); {@link #close} takes the launch lock
     * first (a kernel that runs with the buffer finishes before it is released), then the buffer's.
     * Every use after the close is refused: the released cl_mem never reaches OpenCL.
     */
    static final class Buffer implements OpenClDevice.PlainBuffer {
        private final OpenClDevice device;
        private final OpenClContext ctx;
        private final MemorySegment mem;
        private final long bytes;
        /** Guards {@code released} (lock L27): private, so that no user's {@code synchronized (buffer)} can take part. */
        private final Object lock = new Object();
        private boolean released;

        private Buffer(OpenClDevice device, OpenClContext ctx, MemorySegment mem, long bytes) {
            this.device = device;
            this.ctx = ctx;
            this.mem = mem;
            this.bytes = bytes;
        }

        @Override
        public long byteSize() {
            return bytes;
        }

        /** The cl_mem for a launch binding it, under the launch lock; refused once the buffer is closed. */
        MemorySegment liveHandle() {
            synchronized (lock) {
                checkOpen();
                return mem;
            }
        }

        private void checkOpen() {
            assert Thread.holdsLock(lock);
            if (released) {
                throw new IllegalStateException("a plain buffer of " + bytes + " bytes on " + device.name() + " is closed");
            }
        }

        OpenClDevice device() {
            return device;
        }

        @Override
        public void write(MemorySegment src) {
            blockingTransfer(true, src);
        }

        @Override
        public void read(MemorySegment dst) {
            blockingTransfer(false, dst);
        }

        private void blockingTransfer(boolean toDevice, MemorySegment host) {
            synchronized (lock) {
                checkOpen();
                transfer(toDevice, host);
            }
        }

        private void transfer(boolean toDevice, MemorySegment host) {
            if (host.byteSize() > bytes || !host.isNative()) {
                throw new IllegalArgumentException("host segment of " + host.byteSize() + " bytes (native: " + host.isNative()
                        + ") does not fit a native transfer to a buffer of " + bytes + " bytes");
            }
            if (!toDevice && host.isReadOnly()) {
                // the read writes through the segment's address in native code: into a read-only file
                // mapping, a fault there ends the JVM
                throw new IllegalArgumentException("a read from a plain buffer into a read-only segment of " + host.byteSize()
                        + " bytes: give it a writable one");
            }
            if (host.byteSize() == 0) {
                return;   // nothing to move (OpenCL refuses a transfer of 0 bytes as CL_INVALID_VALUE)
            }
            // on the copy queue: as one of the engine's copies, so that it never reaches a queue the
            // device's close released
            device.copies().whileRunning(() -> {
                ctx.checkUsable(toDevice ? "clEnqueueWriteBuffer" : "clEnqueueReadBuffer");
                ClLibrary cl = ctx.cl;
                try {
                    int rc = toDevice
                            ? (int) cl.enqueueWriteBuffer.invokeExact(ctx.copyQueue, mem, ClLibrary.CL_TRUE, 0L, host.byteSize(), host, 0,
                                    MemorySegment.NULL, MemorySegment.NULL)
                            : (int) cl.enqueueReadBuffer.invokeExact(ctx.copyQueue, mem, ClLibrary.CL_TRUE, 0L, host.byteSize(), host, 0,
                                    MemorySegment.NULL, MemorySegment.NULL);
                    check(toDevice ? "clEnqueueWriteBuffer" : "clEnqueueReadBuffer", rc);
                } catch (Throwable t) {
                    throw rethrow(t);
                }
            });
        }

        @Override
        public void close() {
            device.launcher().whileNoLaunch(() -> {
                synchronized (lock) {
                    if (!released) {
                        released = true;
                        call(ctx.cl.releaseMemObject, mem);
                    }
                }
            });
        }
    }
}
