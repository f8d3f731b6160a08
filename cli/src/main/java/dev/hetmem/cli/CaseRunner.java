package dev.hetmem.cli;

import java.util.Map;

/**
 * Runs one benchmark case once per call: in this JVM, or in the case's own ({@link CaseJvm}).
 * Rows are maps with at least {@code correct}.
 */
interface CaseRunner extends AutoCloseable {
    /** One measured run. */
    Map<String, Object> run();

    /**
     * One warm-up run, not measured: where a case's runs are short beside what it costs to set one
     * up (a new device, the model loaded), more of the case's work per call than {@link #run}, so
     * that the JIT sees its hot paths sooner; the same as {@link #run} otherwise.
     */
    default Map<String, Object> warm() {
        return run();
    }

    /**
     * The total compilation time in milliseconds of the JVM that runs the case, as of its last run
     * ({@link JitQuiet#compiledMillis}), or -1 where it does not say.
     */
    long compiledMillis();

    @Override
    void close();

    /** A case run in this JVM by {@code run}, its warm-up runs too. */
    static CaseRunner inThisJvm(java.util.function.Supplier<Map<String, Object>> run) {
        return inThisJvm(run, run);
    }

    /** A case run in this JVM by {@code run}, and {@code warm} for warm-up runs. */
    static CaseRunner inThisJvm(java.util.function.Supplier<Map<String, Object>> run,
                                java.util.function.Supplier<Map<String, Object>> warm) {
        return new CaseRunner() {
            @Override
            public Map<String, Object> run() {
                return run.get();
            }

            @Override
            public Map<String, Object> warm() {
                return warm.get();
            }

            @Override
            public long compiledMillis() {
                return JitQuiet.compiledMillis();
            }

            @Override
            public void close() {
            }
        };
    }
}
