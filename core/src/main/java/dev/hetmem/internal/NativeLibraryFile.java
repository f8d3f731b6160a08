package dev.hetmem.internal;

import java.io.IOException;
import java.io.InputStream;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * Where one of the project's native libraries lies as a file the dynamic loader can open. The
 * Maven build puts them into the jar ({@code native/linux-x86_64/}); from a jar a library is copied
 * to a file first, in the directory the system property {@value #DIR_PROPERTY} names (for systems
 * whose temporary directory is mounted noexec), else in the temporary directory, deleted when the
 * JVM exits. Shared by the fault service's library and the streaming copy's.
 */
public final class NativeLibraryFile {
    /** Where libraries are extracted from the jar (a directory, made if missing); the temporary directory if unset. */
    public static final String DIR_PROPERTY = "hetmem.native.dir";
    /** The folder of the jar's resources that holds the libraries built for this platform. */
    public static final String FOLDER = "/native/linux-x86_64/";

    private NativeLibraryFile() {
    }

    /**
     * The file of library {@code name} ({@code libNAME.so}), or throws {@link UnsupportedOperationException}
     * with {@code missing} where the build left it out, and on a system it was not built for.
     *
     * @param name the library's name, e.g. {@code hetmem_copy}
     * @param what what the library is, for messages ("the streaming copy")
     * @param missing the message when the jar has no such library (what to install, how to rebuild)
     * @throws IOException if the library cannot be copied out of the jar
     */
    public static Path path(String name, String what, String missing) throws IOException {
        String os = System.getProperty("os.name", "");
        String arch = System.getProperty("os.arch", "");
        if (!os.equals("Linux")) {
            throw new UnsupportedOperationException(what + " is built for Linux only; this is " + os);
        }
        if (!arch.equals("amd64") && !arch.equals("x86_64")) {
            throw new UnsupportedOperationException(what + " is built for x86-64 only; this is " + arch);
        }
        String file = "lib" + name + ".so";
        URL url = NativeLibraryFile.class.getResource(FOLDER + file);
        if (url == null) {
            throw new UnsupportedOperationException(missing);
        }
        if (url.getProtocol().equals("file")) {
            try {
                return Path.of(url.toURI());
            } catch (URISyntaxException e) {
                throw new IOException(e);
            }
        }
        String dir = System.getProperty(DIR_PROPERTY, "");
        Path tmp;
        if (dir.isBlank()) {
            tmp = Files.createTempFile("lib" + name, ".so");
        } else {
            Path d = Path.of(dir);
            try {
                Files.createDirectories(d);
                tmp = Files.createTempFile(d, "lib" + name, ".so");
            } catch (IOException e) {
                throw new IOException("cannot extract " + what + " into " + d + " (system property "
                        + DIR_PROPERTY + "): " + e.getMessage(), e);
            }
        }
        tmp.toFile().deleteOnExit();
        try (InputStream in = url.openStream()) {
            Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
        }
        return tmp;
    }
}
