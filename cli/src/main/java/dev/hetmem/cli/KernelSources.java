package dev.hetmem.cli;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;

/** OpenCL C sources the command line carries as resources ({@code mulmat.cl}, {@code ordinary.cl}). */
final class KernelSources {
    private KernelSources() {}

    /** Resource {@code name} of this package, read whole. */
    static String text(String name) {
        try (InputStream in = KernelSources.class.getResourceAsStream(name)) {
            if (in == null) {
                throw new IllegalStateException(name + " is missing from the command line's resources");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
