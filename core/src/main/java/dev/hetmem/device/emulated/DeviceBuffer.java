package dev.hetmem.device.emulated;

import dev.hetmem.driver.DeviceFaultException;

import dev.hetmem.Access;
import dev.hetmem.driver.DeviceFaultHandler;
import dev.hetmem.host.Libc;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static dev.hetmem.driver.PageGeometry.PAGE_SHIFT;
import static dev.hetmem.driver.PageGeometry.BLOCK_SHIFT;
import static dev.hetmem.driver.PageGeometry.BLOCK_PAGES;

/**
 * One region argument as a kernel sees it: offsets from the argument's start, every access
 * translated through the device page table (with a one-leaf TLB, as each compute thread has its
 * own buffer objects). Accesses outside the argument, writes through a read-only argument, and
 * entries that are absent or not writable raise {@link DeviceFaultException}.
 *
 * <p>Offsets are in bytes, in [0, {@link #length()}); multi-byte values are in the platform's
 * native byte order and need not be aligned. A value that straddles two pages is read or written
 * one byte at a time, so it is not single-copy atomic. In a launch that takes device faults an
 * absent entry (or a read-only one, for a write) is not an error: the access faults the page in
 * and is retried, and fails with {@link DeviceFaultException} only after more than 10,000 faults
 * in a row; an exception from the core's fault handler passes through to the kernel. Not
 * thread-safe: a buffer belongs to the compute thread it was made for.
 */
public final class DeviceBuffer {
    private static final MemorySegment ALL = Libc.EVERYTHING;
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT_UNALIGNED;
    private static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG_UNALIGNED;
    private static final ValueLayout.OfDouble DOUBLE = ValueLayout.JAVA_DOUBLE_UNALIGNED;

    private final EmulatedPageTable table;
    private final long va;
    private final long length;
    /** The bytes [windowFrom, windowTo) the launch declared for this tile ([0, length) for a whole argument). */
    private final long windowFrom;
    private final long windowTo;
    private final boolean writable;
    /** The core's fault handler in a launch that takes device faults; null: a miss fails the launch. */
    private final DeviceFaultHandler faults;
    /** This compute thread's translation epoch in such a launch (see TranslationEpochs). */
    private final TranslationEpochs.Slot slot;
    /** An access that faults this often in a row is not making progress: fail it rather than spin. */
    private static final int MAX_FAULTS_PER_ACCESS = 10_000;
    private long tlbKey = -1;
    private long[] tlbLeaf;

    DeviceBuffer(EmulatedPageTable table, long va, long length, long windowFrom, long windowTo, Access access,
                 DeviceFaultHandler faults, TranslationEpochs.Slot slot) {
        this.table = table;
        this.va = va;
        this.length = length;
        this.windowFrom = windowFrom;
        this.windowTo = windowTo;
        this.writable = access.writes();
        this.faults = faults;
        this.slot = slot;
    }

    /**
     * The argument's size as the launch declared it.
     *
     * @return the length in bytes; valid offsets are [0, length), or the narrower window a tile of
     *         a launch declared ({@link dev.hetmem.driver.KernelBinding#windowFrom})
     */
    public long length() {
        return length;
    }

    /**
     * Physical address of {@code size} bytes at {@code offset}, or -1 if they cross a page (the
     * caller then goes byte by byte). The common case, in bounds, within one page, a TLB hit on an
     * entry that allows the access, is this small method alone, so that the JIT inlines it into a
     * kernel's hot loop; everything else is {@link #translateSlow}, which checks it all again.
     * Split because the whole of it (253 bytes of bytecode) was inlined in some JVMs and not in
     * others ("callee is too large", "already compiled into a medium method"), and the same
     * emulated kernel ran about 1.5x slower in the JVMs that called it for every access.
     */
    private long translate(long offset, int size, boolean write) {
        long v = va + offset;
        if (offset >= windowFrom && offset <= windowTo - size && (v >>> BLOCK_SHIFT) == tlbKey
                && (v & 0xFFF) + size <= 0x1000 && (!write || writable)) {
            long e = tlbLeaf[(int) ((v >>> PAGE_SHIFT) & (BLOCK_PAGES - 1))];
            if ((e & EmulatedPageTable.PRESENT) != 0 && (!write || (e & EmulatedPageTable.WRITABLE) != 0)) {
                return (e & ~EmulatedPageTable.FLAGS) | (v & 0xFFF);
            }
        }
        return translateSlow(offset, size, write);
    }

    /** {@link #translate} in full: bounds and access checks, pages crossed, TLB misses, faults. */
    private long translateSlow(long offset, int size, boolean write) {
        if (offset < 0 || offset > length - size) {
            throw new DeviceFaultException("kernel access of " + size + " bytes at offset " + offset
                    + " outside its argument of " + length + " bytes");
        }
        if (offset < windowFrom || offset > windowTo - size) {
            throw new DeviceFaultException("kernel access of " + size + " bytes at offset " + offset
                    + " outside the bytes [" + windowFrom + ", " + windowTo + ") of its argument that this tile's work "
                    + "items declared (KernelArg.perItem)");
        }
        if (write && !writable) {
            throw new DeviceFaultException("kernel wrote offset " + offset + " of an argument declared read-only");
        }
        long v = va + offset;
        if (((v & 0xFFF) + size) > 0x1000) {
            return -1;
        }
        for (int faults = 0; ; faults++) {
            if (faults > MAX_FAULTS_PER_ACCESS) {
                throw new DeviceFaultException("device page fault at 0x" + Long.toHexString(v) + " taken "
                        + MAX_FAULTS_PER_ACCESS + " times without the page becoming accessible");
            }
            long key = v >>> BLOCK_SHIFT;
            long[] leaf = tlbLeaf;
            if (key != tlbKey) {
                leaf = table.leaf(v);
                if (leaf == null) {
                    fault(v, write);
                    continue;
                }
                tlbLeaf = leaf;
                tlbKey = key;
            }
            long e = leaf[(int) ((v >>> PAGE_SHIFT) & (BLOCK_PAGES - 1))];
            if ((e & EmulatedPageTable.PRESENT) == 0 || (write && (e & EmulatedPageTable.WRITABLE) == 0)) {
                fault(v, write);
                continue;
            }
            return (e & ~EmulatedPageTable.FLAGS) | (v & 0xFFF);
        }
    }

    /**
     * A device fault at {@code v}: the core brings the page over and maps it, then the access is
     * retried (it may fault again if another thread's migration took the page meanwhile). Without a
     * handler, the launch fails. Inside the handler this thread holds no translation.
     */
    private void fault(long v, boolean write) {
        if (faults == null) {
            throw notMapped(v);
        }
        slot.leave();
        try {
            faults.fault(v, write);
        } finally {
            slot.enter();
        }
    }

    private DeviceFaultException notMapped(long v) {
        return new DeviceFaultException("device page fault at 0x" + Long.toHexString(v)
                + ": no entry in the device page table (the page was not faulted in for this launch)");
    }

    /**
     * Reads one byte.
     *
     * @param offset the byte's offset in the argument
     * @return the byte at {@code offset}
     * @throws DeviceFaultException if {@code offset} is outside the argument, or its page is not
     *         mapped and cannot be faulted in
     */
    public byte getByte(long offset) {
        return ALL.get(ValueLayout.JAVA_BYTE, translate(offset, 1, false));
    }

    /**
     * Writes one byte.
     *
     * @param offset the byte's offset in the argument
     * @param value the byte to store
     * @throws DeviceFaultException if {@code offset} is outside the argument, the argument was
     *         declared read-only, or its page is not mapped writable and cannot be faulted in
     */
    public void putByte(long offset, byte value) {
        ALL.set(ValueLayout.JAVA_BYTE, translate(offset, 1, true), value);
    }

    /**
     * Reads a 4-byte float.
     *
     * @param offset the offset of its first byte in the argument
     * @return the float stored in bytes [offset, offset + 4)
     * @throws DeviceFaultException if the bytes are not all inside the argument, or a page of them
     *         is not mapped and cannot be faulted in
     */
    public float getFloat(long offset) {
        long a = translate(offset, 4, false);
        return a >= 0 ? ALL.get(FLOAT, a) : Float.intBitsToFloat(slowGet(offset, 4, false));
    }

    /**
     * Writes a 4-byte float (its raw bits).
     *
     * @param offset the offset of its first byte in the argument
     * @param value the float to store in bytes [offset, offset + 4)
     * @throws DeviceFaultException if the bytes are not all inside the argument, the argument was
     *         declared read-only, or a page of them is not mapped writable and cannot be faulted in
     */
    public void putFloat(long offset, float value) {
        long a = translate(offset, 4, true);
        if (a >= 0) {
            ALL.set(FLOAT, a, value);
        } else {
            slowPut(offset, 4, Float.floatToRawIntBits(value));
        }
    }

    /**
     * Reads a 4-byte int.
     *
     * @param offset the offset of its first byte in the argument
     * @return the int stored in bytes [offset, offset + 4)
     * @throws DeviceFaultException if the bytes are not all inside the argument, or a page of them
     *         is not mapped and cannot be faulted in
     */
    public int getInt(long offset) {
        long a = translate(offset, 4, false);
        return a >= 0 ? ALL.get(INT, a) : (int) slowGet(offset, 4, false);
    }

    /**
     * Writes a 4-byte int.
     *
     * @param offset the offset of its first byte in the argument
     * @param value the int to store in bytes [offset, offset + 4)
     * @throws DeviceFaultException if the bytes are not all inside the argument, the argument was
     *         declared read-only, or a page of them is not mapped writable and cannot be faulted in
     */
    public void putInt(long offset, int value) {
        long a = translate(offset, 4, true);
        if (a >= 0) {
            ALL.set(INT, a, value);
        } else {
            slowPut(offset, 4, value);
        }
    }

    /**
     * A device atomic: adds {@code delta} to the aligned int at {@code offset} and returns the value
     * before, atomically against every other access to the same bytes (OpenCL's atomic_add).
     *
     * @param offset the offset of the int's first byte in the argument; the address must be a
     *               multiple of 4
     * @param delta the amount to add (wrapping on overflow)
     * @return the int's value just before the addition
     * @throws DeviceFaultException if the address is not 4-byte aligned, the bytes are not all
     *         inside the argument, the argument was declared read-only, or the page is not mapped
     *         writable and cannot be faulted in
     */
    public int getAndAddInt(long offset, int delta) {
        if (((va + offset) & 3) != 0) {
            throw new DeviceFaultException("atomic access at offset " + offset + " of its argument (address 0x"
                    + Long.toHexString(va + offset) + ") is not 4-byte aligned");
        }
        long a = translate(offset, 4, true);
        return (int) ATOMIC_INT.getAndAdd(ALL, a, delta);
    }

    private static final java.lang.invoke.VarHandle ATOMIC_INT = ValueLayout.JAVA_INT.varHandle();

    /**
     * Reads an 8-byte long.
     *
     * @param offset the offset of its first byte in the argument
     * @return the long stored in bytes [offset, offset + 8)
     * @throws DeviceFaultException if the bytes are not all inside the argument, or a page of them
     *         is not mapped and cannot be faulted in
     */
    public long getLong(long offset) {
        long a = translate(offset, 8, false);
        return a >= 0 ? ALL.get(LONG, a) : slowGetLong(offset);
    }

    /**
     * Writes an 8-byte long.
     *
     * @param offset the offset of its first byte in the argument
     * @param value the long to store in bytes [offset, offset + 8)
     * @throws DeviceFaultException if the bytes are not all inside the argument, the argument was
     *         declared read-only, or a page of them is not mapped writable and cannot be faulted in
     */
    public void putLong(long offset, long value) {
        long a = translate(offset, 8, true);
        if (a >= 0) {
            ALL.set(LONG, a, value);
        } else {
            slowPut(offset, 8, value);
        }
    }

    /**
     * Reads an 8-byte double.
     *
     * @param offset the offset of its first byte in the argument
     * @return the double stored in bytes [offset, offset + 8)
     * @throws DeviceFaultException if the bytes are not all inside the argument, or a page of them
     *         is not mapped and cannot be faulted in
     */
    public double getDouble(long offset) {
        return Double.longBitsToDouble(getLong(offset));
    }

    /**
     * Writes an 8-byte double (its raw bits).
     *
     * @param offset the offset of its first byte in the argument
     * @param value the double to store in bytes [offset, offset + 8)
     * @throws DeviceFaultException if the bytes are not all inside the argument, the argument was
     *         declared read-only, or a page of them is not mapped writable and cannot be faulted in
     */
    public void putDouble(long offset, double value) {
        putLong(offset, Double.doubleToRawLongBits(value));
    }

    /** Little-endian assembly of a value that straddles two pages. */
    private int slowGet(long offset, int size, boolean unused) {
        int v = 0;
        for (int i = 0; i < size; i++) {
            v |= (getByte(offset + i) & 0xFF) << (8 * i);
        }
        return v;
    }

    private long slowGetLong(long offset) {
        long v = 0;
        for (int i = 0; i < 8; i++) {
            v |= (getByte(offset + i) & 0xFFL) << (8 * i);
        }
        return v;
    }

    private void slowPut(long offset, int size, long value) {
        for (int i = 0; i < size; i++) {
            putByte(offset + i, (byte) (value >>> (8 * i)));
        }
    }

    /**
     * Copies {@code bytes} from this argument at {@code offset} into {@code dst}, page by page.
     * Pages before a failing one have been copied when it throws.
     *
     * @param offset the offset of the first byte read in the argument
     * @param dst the segment written
     * @param dstOffset the offset in {@code dst} of the first byte written
     * @param bytes how many bytes to copy; 0 copies nothing
     * @throws DeviceFaultException if [offset, offset + bytes) is not inside the argument, or a page
     *         of it is not mapped and cannot be faulted in
     * @throws IndexOutOfBoundsException if {@code dst} has no room for the bytes at {@code dstOffset}
     */
    public void copyTo(long offset, MemorySegment dst, long dstOffset, long bytes) {
        long done = 0;
        while (done < bytes) {
            long v = va + offset + done;
            int n = (int) Math.min(bytes - done, 0x1000 - (v & 0xFFF));
            long a = translate(offset + done, n, false);
            MemorySegment.copy(ALL, a, dst, dstOffset + done, n);
            done += n;
        }
    }

    /**
     * Copies {@code bytes} from {@code src} into this argument at {@code offset}, page by page.
     * Pages before a failing one have been written when it throws.
     *
     * @param src the segment read
     * @param srcOffset the offset in {@code src} of the first byte read
     * @param offset the offset of the first byte written in the argument
     * @param bytes how many bytes to copy; 0 copies nothing
     * @throws DeviceFaultException if [offset, offset + bytes) is not inside the argument, the
     *         argument was declared read-only, or a page of it is not mapped writable and cannot be
     *         faulted in
     * @throws IndexOutOfBoundsException if {@code src} holds fewer than {@code bytes} bytes from
     *         {@code srcOffset}
     */
    public void copyFrom(MemorySegment src, long srcOffset, long offset, long bytes) {
        long done = 0;
        while (done < bytes) {
            long v = va + offset + done;
            int n = (int) Math.min(bytes - done, 0x1000 - (v & 0xFFF));
            long a = translate(offset + done, n, true);
            MemorySegment.copy(src, srcOffset + done, ALL, a, n);
            done += n;
        }
    }
}
