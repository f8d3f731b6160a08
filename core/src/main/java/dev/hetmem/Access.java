package dev.hetmem;

/** How a host view or a kernel argument uses its range. */
public enum Access {
    READ(true, false),
    WRITE(false, true),
    READ_WRITE(true, true),
    /**
     * Read-write, for device atomics: the launch leaves the pages held for its device alone (the
     * kernel's {@code make_device_exclusive}) until the host touches them. A device that can map
     * host memory ({@code DeviceDriver.canMapHost()}) reaches the host's copy in place, so the
     * pages stay home; otherwise, and whenever host code uses plain loads and stores
     * ({@link HostFaultMode#USERFAULTFD}), the pages move to the device. A host view, or a load or
     * store in userfaultfd mode, ends the exclusivity first (waiting for a kernel that is using the
     * pages); so does any other device's access and {@link Region#protect} to read-only.
     * {@link Region#isExclusive} tells whether it still holds. Kernel arguments only.
     */
    EXCLUSIVE(true, true);

    private final boolean reads;
    private final boolean writes;

    Access(boolean reads, boolean writes) {
        this.reads = reads;
        this.writes = writes;
    }

    public boolean reads() {
        return reads;
    }

    public boolean writes() {
        return writes;
    }
}
