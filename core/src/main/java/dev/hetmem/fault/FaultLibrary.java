package dev.hetmem.fault;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;

import dev.hetmem.internal.NativeLibraryFile;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The native fault service's entry points. The library is built by the Maven build into the jar
 * ({@code native/linux-x86_64/libhetmem_uffd.so}) and found as {@link NativeLibraryFile} says.
 * Loaded once, on first use, and shared: a library can only be loaded once per class loader, and
 * it holds no state of its own.
 */
final class FaultLibrary {

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
    final MethodHandle uncollect;
    final MethodHandle busy;
    final MethodHandle awaitServed;
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
        uncollect = bind(linker, lib, "hm_uncollect", FunctionDescriptor.ofVoid(ADDRESS, JAVA_LONG, ADDRESS));
        busy = bind(linker, lib, "hm_busy", FunctionDescriptor.ofVoid(ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_INT));
        awaitServed = bind(linker, lib, "hm_await_served", FunctionDescriptor.ofVoid(ADDRESS));
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
        if (!System.getProperty("os.name", "").equals("Linux")) {
            throw new UnsupportedOperationException("userfaultfd is a Linux facility; this is " + System.getProperty("os.name", ""));
        }
        return NativeLibraryFile.path("hetmem_uffd", "the native fault service", "the native fault service was not built "
                + "(no C compiler when the project was built): install gcc ('apt-get install gcc') and rebuild ('./hetmem build')");
    }
}
