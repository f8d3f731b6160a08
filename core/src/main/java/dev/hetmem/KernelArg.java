package dev.hetmem;

import java.util.Objects;

/**
 * A region argument of a kernel launch: the range the kernel may touch and how. Before the kernel
 * runs, the core makes exactly these pages resident on the device with this permission (GMEM's
 * gm_dev_fault), granule by granule.
 */
public record KernelArg(Region region, long offset, long length, Access access) {
    public KernelArg {
        Objects.requireNonNull(region, "region");
        Objects.requireNonNull(access, "access");
    }

    public static KernelArg read(Region r) {
        return new KernelArg(r, 0, r.size(), Access.READ);
    }

    public static KernelArg write(Region r) {
        return new KernelArg(r, 0, r.size(), Access.WRITE);
    }

    public static KernelArg readWrite(Region r) {
        return new KernelArg(r, 0, r.size(), Access.READ_WRITE);
    }

    public static KernelArg of(Region r, long offset, long length, Access access) {
        return new KernelArg(r, offset, length, access);
    }
}
