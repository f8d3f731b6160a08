package dev.hetmem.fault;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The native fault service's entry points. The library is built by the Maven build into the jar
 * ({@code native/linux-x86_64/libhetmem_uffd.so}); from a jar it is copied to a file first, since
 * the dynamic loader needs a path: in the directory the system property {@value #DIR_PROPERTY}
 * names (for systems whose temporary directory is mounted noexec), else in the temporary
 * directory. Loaded once, on first use, and shared: a library can only be loaded once per class
 * loader, and it holds no state of its own.
 */
final class FaultLibrary {
    static final String RESOURCE = "/native/linux-x86_64/libhetmem_uffd.so";
    /** Where the library is extracted from the jar (a directory, made if missing); the temporary directory if unset. */
    static final String DIR_PROPERTY = "hetmem.native.dir";

    final MethodHandle probe;
    final MethodHandle serviceOpen;
    final MethodHandle serviceClose;
    final MethodHandle serviceCounters;
    final MethodHandle regionCreate;
    final MethodHandle regionGranule;
    final MethodHandle regionKill;
    final MethodHandle regionDestroy;
    final MethodHandle leave;
    final MethodHandle home;
    final MethodHandle sync;
    final MethodHandle collect;
    final MethodHandle busy;
    final MethodHandle viewPages;
    final MethodHandle populate;
    final MethodHandle benchRaw;
    final MethodHandle benchMinor;
    final MethodHandle testHold;
    final MethodHandle testFailFill;

    private FaultLibrary(SymbolLookup lib) {
        Linker linker = Linker.nativeLinker();
        probe = bind(linker, lib, "hm_probe", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        serviceOpen = bind(linker, lib, "hm_service_open", FunctionDescriptor.of(ADDRESS, ADDRESS, ADDRESS));
        serviceClose = bind(linker, lib, "hm_service_close", FunctionDescriptor.ofVoid(ADDRESS));
        serviceCounters = bind(linker, lib, "hm_service_counters", FunctionDescriptor.ofVoid(ADDRESS, ADDRESS));
        regionCreate = bind(linker, lib, "hm_region_create",
                FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, ADDRESS, ADDRESS));
        regionGranule = bind(linker, lib, "hm_region_granule", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_INT));
        regionKill = bind(linker, lib, "hm_region_kill", FunctionDescriptor.ofVoid(ADDRESS));
        regionDestroy = bind(linker, lib, "hm_region_destroy", FunctionDescriptor.ofVoid(ADDRESS));
        leave = bind(linker, lib, "hm_leave", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG));
        home = bind(linker, lib, "hm_home", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS));
        sync = bind(linker, lib, "hm_sync",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_INT, ADDRESS));
        collect = bind(linker, lib, "hm_collect", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS));
        busy = bind(linker, lib, "hm_busy", FunctionDescriptor.ofVoid(ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_INT));
        populate = bind(linker, lib, "hm_populate", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG));
        viewPages = bind(linker, lib, "hm_view_pages", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS));
        benchRaw = bind(linker, lib, "hm_bench_raw", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS));
        benchMinor = bind(linker, lib, "hm_bench_minor", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS));
        testHold = bind(linker, lib, "hm_test_hold", FunctionDescriptor.of(JAVA_LONG, ADDRESS, JAVA_LONG));
        testFailFill = bind(linker, lib, "hm_test_fail_fill",
                FunctionDescriptor.of(JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_INT));
    }

    private static MethodHandle bind(Linker linker, SymbolLookup lib, String name, FunctionDescriptor fd) {
        return linker.downcallHandle(lib.find(name)
                .orElseThrow(() -> new UnsatisfiedLinkError("libhetmem_uffd has no " + name + ": stale build?")), fd);
    }

    private static final class Holder {
        static final Object LOADED = load();

        private static Object load() {
            try {
                return new FaultLibrary(SymbolLookup.libraryLookup(path(), Arena.global()));
            } catch (RuntimeException | IOException | Error e) {
                return e.getMessage() == null ? e.toString() : e.getMessage();
            }
        }
    }

    /** The library, or throws {@link UnsupportedOperationException} saying why there is none. */
    static FaultLibrary get() {
        Object o = Holder.LOADED;
        if (o instanceof FaultLibrary lib) {
            return lib;
        }
        throw new UnsupportedOperationException((String) o);
    }

    private static Path path() throws IOException {
        String os = System.getProperty("os.name", "");
        String arch = System.getProperty("os.arch", "");
        if (!os.equals("Linux")) {
            throw new UnsupportedOperationException("userfaultfd is a Linux facility; this is " + os);
        }
        if (!arch.equals("amd64") && !arch.equals("x86_64")) {
            throw new UnsupportedOperationException("the native fault service is built for x86-64 only; this is " + arch);
        }
        URL url = FaultLibrary.class.getResource(RESOURCE);
        if (url == null) {
            throw new UnsupportedOperationException("the native fault service was not built (no C compiler when the "
                    + "project was built): install gcc ('apt-get install gcc') and rebuild ('./hetmem build')");
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
            tmp = Files.createTempFile("libhetmem_uffd", ".so");
        } else {
            Path d = Path.of(dir);
            try {
                Files.createDirectories(d);
                tmp = Files.createTempFile(d, "libhetmem_uffd", ".so");
            } catch (IOException e) {
                throw new IOException("cannot extract the native fault service into " + d + " (system property "
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
