package dev.hetmem.io;

import dev.hetmem.Region;

import java.util.Arrays;

/**
 * One tensor of a loaded safetensors file: its name, element type, shape, and its slice of the
 * region that holds the file ({@code offset} is from the region's start, so it already skips the
 * header).
 */
public record Tensor(String name, DType dtype, long[] shape, Region region, long offset, long length) {
    public Tensor {
        shape = shape.clone();
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    public long elements() {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return n;
    }

    @Override
    public String toString() {
        return name + " " + dtype + Arrays.toString(shape) + " @" + offset + "+" + length;
    }
}
