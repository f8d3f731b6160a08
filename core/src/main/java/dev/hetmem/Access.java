package dev.hetmem;

/** How a host view or a kernel argument uses its range. */
public enum Access {
    READ(true, false),
    WRITE(false, true),
    READ_WRITE(true, true);

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
