package dev.hetmem.cli;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;

/** HMM's example matrix product, mul_mat_on_gpu(r, a, b, m), as an OpenCL C kernel on regions ({@code mulmat.cl}). */
final class MulMatCl {
    /** Elements of a row of r one work item computes (JB in mulmat.cl). */
    static final int BLOCK = 64;
    static final String SOURCE = load();

    private MulMatCl() {}

    static long globalSize(int m) {
        return (long) m * Math.ceilDiv(m, BLOCK);
    }

    private static String load() {
        return text("mulmat.cl");
    }

    /** A text file of the command line's resources (kernel sources), read whole. */
    static String text(String name) {
        try (InputStream in = MulMatCl.class.getResourceAsStream(name)) {
            if (in == null) {
                throw new IllegalStateException(name + " is missing from the command line's resources");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
