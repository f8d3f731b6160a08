package dev.hetmem;

/** How a host view or a kernel argument uses its range. */
public enum Access {
    /**
     * Reads only: a host view's segment is read-only, and under {@link Advice#readMostly} the user
     * gets a read-only copy instead of moving the pages.
     */
    READ(true, false),
    /**
     * Writes: the pages move as for {@link #READ_WRITE} (their contents come along, so bytes not
     * written keep their values).
     */
    WRITE(false, true),
    /** Reads and writes: the user becomes the pages' only writer, and copies on other nodes are dropped. */
    READ_WRITE(true, true),
    /**
     * Read-write, for device atomics: the launch leaves the pages held for its device alone (the
     * kernel's {@code make_device_exclusive}) until the host touches them. A device that can map
     * host memory ({@code DeviceDriver.canMapHost()}) reaches the host's copy in place, so the
     * pages stay home; otherwise, and whenever host code uses plain loads and stores
     * ({@link HostFaultMode#USERFAULTFD}), the pages move to the device. A host view ends the
     * exclusivity first, waiting for a kernel that is using the pages; so does any other device's
     * access and {@link Region#protect} to read-only. A plain load or store in userfaultfd mode
     * ends it without waiting: host code touching a running kernel's pages races with it, and what
     * the kernel writes to such a page after the touch is lost (as for any kernel's arguments in
     * that mode).
     * {@link Region#isExclusive} tells whether it still holds. Kernel arguments only.
     */
    EXCLUSIVE(true, true);

    private final boolean reads;
    private final boolean writes;

    Access(boolean reads, boolean writes) {
        this.reads = reads;
        this.writes = writes;
    }

    /**
     * Whether this access reads the range.
     *
     * @return true for {@link #READ}, {@link #READ_WRITE} and {@link #EXCLUSIVE}
     */
    public boolean reads() {
        return reads;
    }

    /**
     * Whether this access writes the range, and so needs it writable (not read-only by
     * {@link Region#protect}).
     *
     * @return true for {@link #WRITE}, {@link #READ_WRITE} and {@link #EXCLUSIVE}
     */
    public boolean writes() {
        return writes;
    }
}
