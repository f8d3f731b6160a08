package dev.hetmem.io;

import dev.hetmem.Region;

import java.util.Arrays;
import java.util.Objects;

/**
 * One tensor of a loaded safetensors file: its name, element type, shape, and its slice of the
 * region that holds the file ({@code offset} is from the region's start, so it already skips the
 * header).
 *
 * @param name the tensor's name in the header
 * @param dtype the type of its elements
 * @param shape its size in each dimension, outermost first; empty for a scalar (copied in and out)
 * @param region the region that holds the whole file
 * @param offset where the tensor's data starts, in bytes from the start of {@code region}
 * @param length the tensor's data in bytes
 */
public record Tensor(String name, DType dtype, long[] shape, Region region, long offset, long length) {
    /**
     * Creates a tensor, copying {@code shape}.
     *
     * @param name the tensor's name in the header
     * @param dtype the type of its elements
     * @param shape its size in each dimension; the array is copied
     * @param region the region that holds the whole file
     * @param offset where the tensor's data starts, in bytes from the start of {@code region}
     * @param length the tensor's data in bytes
     * @throws NullPointerException if {@code name}, {@code dtype}, {@code shape} or {@code region} is null
     * @throws IllegalArgumentException if a dimension, {@code offset} or {@code length} is negative, the
     *         shape's element count overflows a long, or the data is not inside {@code region}
     */
    public Tensor {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(dtype, "dtype");
        Objects.requireNonNull(region, "region");
        shape = shape.clone();
        long n = 1;
        for (long d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("tensor " + name + ": dimension " + d + " of shape " + shapeText(shape)
                        + " is negative");
            }
            try {
                n = Math.multiplyExact(n, d);
            } catch (ArithmeticException e) {
                // multiplied in order, as the header's reader does: it refuses such a shape alike
                throw new IllegalArgumentException("tensor " + name + ": shape " + shapeText(shape)
                        + " has more elements than a long counts (" + Long.MAX_VALUE + ")");
            }
        }
        if (offset < 0 || length < 0 || length > region.size() - offset) {
            throw new IllegalArgumentException("tensor " + name + ": data at " + offset + " of " + length
                    + " bytes is not inside " + region + " (" + region.size() + " bytes)");
        }
    }

    /**
     * Returns the tensor's size in each dimension, outermost first; empty for a scalar.
     *
     * @return a new copy of the shape, which the caller may change freely
     */
    @Override
    public long[] shape() {
        return shape.clone();
    }

    /**
     * Returns the number of elements: the product of the shape's dimensions.
     *
     * @return the element count; 1 for a scalar (empty shape), 0 if any dimension is 0
     */
    public long elements() {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return n;
    }

    @Override
    public String toString() {
        return name + " " + dtype + shapeText(shape) + " @" + offset + "+" + length;
    }

    /**
     * A shape as messages and listings show it: whole up to eight dimensions, else those and a
     * count. A valid header may give a tensor millions of dimensions of 1, and a message naming all
     * of them ran to 150 MB (from a review).
     *
     * @param shape a tensor's dimensions
     * @return the text, such as {@code [2, 3]} or {@code [1, 1, 1, 1, 1, 1, 1, 1, ... (40 dimensions)]}
     */
    public static String shapeText(long[] shape) {
        if (shape.length <= 8) {
            return Arrays.toString(shape);
        }
        return Arrays.toString(Arrays.copyOf(shape, 8)).replace("]", ", ... (" + shape.length + " dimensions)]");
    }
}
