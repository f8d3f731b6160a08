package dev.hetmem.cli;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CommandLineTest {
    record Result(int code, String out, String err) {}

    static Result run(String... argv) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = Main.run(List.of(argv), new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    /** Exactly one JSON object on stdout: one line, braces balanced outside strings. */
    static void oneJsonObject(String out) {
        String t = out.strip();
        assertTrue(t.startsWith("{") && t.endsWith("}"), "not a JSON object: " + out);
        assertEquals(1, out.lines().count(), "one line on stdout: " + out);
        int depth = 0;
        boolean inString = false;
        for (int i = 0; i < t.length(); i++) {
            char c = t.charAt(i);
            if (inString) {
                if (c == '\\') {
                    i++;
                } else if (c == '"') {
                    inString = false;
                }
            } else if (c == '"') {
                inString = true;
            } else if (c == '{' || c == '[') {
                depth++;
            } else if (c == '}' || c == ']') {
                depth--;
                assertTrue(depth >= 0 && (depth > 0 || i == t.length() - 1), "more than one value: " + out);
            }
        }
        assertEquals(0, depth);
    }

    /** Numbers read the same in any locale: a German one wrote "(23,5 GiB)" and "faults 8,41 ms" beside ranges with a dash. */
    @Test
    void numbersAreWrittenTheSameInEveryLocale() throws Exception {
        List<String> cmd = List.of(java.nio.file.Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Duser.language=de", "-Duser.country=DE", "--enable-native-access=ALL-UNNAMED",
                "-cp", System.getProperty("java.class.path"), Main.class.getName(), "info");
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(60, java.util.concurrent.TimeUnit.SECONDS), "info ended");
        assertEquals(0, p.exitValue(), out);
        assertTrue(java.util.regex.Pattern.compile("\\(\\d+\\.\\d GiB\\)").matcher(out).find(), out);
        assertFalse(java.util.regex.Pattern.compile("\\d,\\d GiB").matcher(out).find(), out);
    }

    /**
     * The out-of-memory message told every command to ask for "smaller --sizes", an option only two
     * commands have. Each command's hint names an option of its own usage, or none.
     */
    @Test
    void theOutOfMemoryHintNamesAnOptionOfTheCommandOrNone() {
        for (String words : List.of("info", "demo", "load", "map", "stress", "bench migrate", "bench load", "bench oversub",
                "bench decode", "bench fault", "bench translate", "bench kernels")) {
            String hint = Main.lessToAskFor(words);
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("--[a-z-]+").matcher(hint);
            if (m.find()) {
                assertTrue(Main.usageOf(words).contains("[" + m.group() + " "), words + ": " + hint + " names an option its usage lacks:\n"
                        + Main.usageOf(words));
            } else {
                assertEquals("ask for less", hint, words);
            }
        }
        assertEquals("ask for less (smaller --sizes)", Main.lessToAskFor("bench migrate"));
        assertEquals("ask for less", Main.lessToAskFor("load"));
    }

    @Test
    void aFailureWithoutWordsSaysItIsInternalAndHowToSeeWhereNotItsClassName() {
        for (RuntimeException e : List.of(new IllegalStateException(), new NullPointerException(), new RuntimeException(" "),
                new java.util.concurrent.CompletionException(new ArithmeticException()),
                // the JVM's own, with messages that name hetmem's code: a helpful null-pointer message, a cast
                new NullPointerException("Cannot invoke \"dev.hetmem.Region.size()\" because \"<local3>\" is null"),
                new ClassCastException("class dev.hetmem.A cannot be cast to class dev.hetmem.B"),
                new ArrayIndexOutOfBoundsException(3), new IndexOutOfBoundsException("Index 5 out of bounds for length 3"),
                // a wrapper whose message is only its cause's class name and message
                new IllegalStateException(new java.util.concurrent.TimeoutException()))) {
            String m = Main.failureMessage(e);
            assertTrue(m.contains("internal error") && m.contains(Main.TRACE_VARIABLE + "=1"), m);
            assertTrue(!m.contains("Exception") && !m.contains("Arithmetic") && !m.contains("Null") && !m.contains("dev.hetmem")
                    && !m.contains("Index"), m);
        }
        // words are the message, a wrapper's from its cause
        assertEquals("no room", Main.failureMessage(new java.util.concurrent.CompletionException(new IllegalStateException("no room"))));
        assertEquals("no room", Main.failureMessage(new IllegalStateException(new java.io.IOException("no room"))));
        // hetmem's own index failure, for a range a user gave, keeps its words
        String range = "range [0, 0 + 8192) is outside region 1 (4096 bytes)";
        assertEquals(range, Main.failureMessage(new IndexOutOfBoundsException(range)));
        assertEquals("the disk is full", Main.failureMessage(new java.io.IOException("the disk is full", new RuntimeException("x"))));
    }

    @Test
    void userVisibleStringsAreEscaped() {
        // an ESC sequence from a file (a tensor name, a message) must not reach the terminal raw
        org.junit.jupiter.api.Assertions.assertEquals("a\\u001b[2Jb", Main.printable("a\u001b[2Jb"));
        org.junit.jupiter.api.Assertions.assertEquals("lone \\ud800 x", Main.printable("lone \ud800 x"));
        org.junit.jupiter.api.Assertions.assertEquals("pair \ud83d\ude00", Main.printable("pair \ud83d\ude00"));
    }

    @Test
    void infoJsonListsHostAndEmulatedDevice() {
        Result r = run("info", "--json");
        assertEquals(0, r.code(), r.err());
        oneJsonObject(r.out());
        assertTrue(r.out().contains("\"id\":0,\"kind\":\"host\""), r.out());
        assertTrue(r.out().contains("\"id\":1,\"kind\":\"emulated\""), r.out());
        assertTrue(r.out().contains("\"capacity_bytes\":268435456"), r.out());
        // CI builds with gcc: the streaming copy must be there (elsewhere info says why it is not)
        assertTrue(r.out().contains("\"streaming_copies\":" + ("true".equals(System.getenv("CI")) ? "true" : "")), r.out());
    }

    @Test
    void demoComputesTheRightProductWithFaultsBothWays() {
        Result r = run("demo", "--size", "96", "--json");
        assertEquals(0, r.code(), r.err());
        oneJsonObject(r.out());
        assertTrue(r.out().contains("\"correct\":true"), r.out());
        assertTrue(r.out().contains("\"device_faults\":3"), "a, b and r each faulted once: " + r.out());
        assertTrue(r.out().contains("\"host_faults_reading_r\":1"), r.out());
    }

    @Test
    void demoWithUserfaultfdReadsAndWritesThroughPlainLoadsAndStores() {
        boolean uffd = dev.hetmem.limits.FaultLimits.userfaultfdUnavailableReason().isEmpty();
        if ("true".equals(System.getenv("CI"))) {
            assertTrue(uffd, "CI must run the userfaultfd demo: " + dev.hetmem.limits.FaultLimits.userfaultfdUnavailableReason());
        }
        if (!uffd) {
            // the machine's lack, not a usage error: exit 1
            Result missing = run("demo", "--host-faults", "userfaultfd", "--size", "32");
            assertEquals(1, missing.code(), missing.err());
            assertTrue(missing.err().contains("--host-faults userfaultfd: userfaultfd host faults unavailable"), missing.err());
            return;
        }
        Result r = run("demo", "--host-faults", "userfaultfd", "--size", "96", "--json");
        assertEquals(0, r.code(), r.err());
        oneJsonObject(r.out());
        assertTrue(r.out().contains("\"host_faults\":\"userfaultfd\""), r.out());
        assertTrue(r.out().contains("\"correct\":true"), r.out());
        assertTrue(r.out().contains("\"device_faults\":3"), "a, b and r each faulted once: " + r.out());
        assertTrue(r.out().contains("\"host_faults_reading_r\":1,"), "r came home in one fault: " + r.out());
        assertUsageError("--host-faults sometimes must be views or userfaultfd", "demo", "--host-faults", "sometimes");
    }

    /** OpenCL commands need a platform: CI installs PoCL and must run them; elsewhere they skip without one. */
    static void needsOpenCl() {
        String why = dev.hetmem.device.opencl.OpenClPlatforms.unavailableReason();
        if ("true".equals(System.getenv("CI"))) {
            assertTrue(why == null, "CI must run the OpenCL commands: " + why);
        } else {
            org.junit.jupiter.api.Assumptions.assumeTrue(why == null, why);
        }
    }

    @Test
    void infoJsonListsTheOpenClDevices() {
        needsOpenCl();
        Result r = run("info", "--json");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().strip().matches(".*\"opencl_devices\":\\[\\{\"platform\":\"[^\"]+\".*\"global_memory_bytes\":[1-9][0-9]*,"
                + "\"max_allocation_bytes\":[1-9][0-9]*.*"), r.out());
    }

    @Test
    void demoOnOpenClComputesTheRightProductWithNoCopyWritten() {
        needsOpenCl();
        Result r = run("demo", "--device", "opencl", "--size", "200", "--json");
        assertEquals(0, r.code(), r.err());
        oneJsonObject(r.out());
        assertTrue(r.out().contains("\"device\":\"opencl\""), r.out());
        assertTrue(r.out().contains("\"correct\":true"), r.out());
        assertTrue(r.out().contains("\"device_faults\":3"), "a, b and r each faulted once: " + r.out());
        assertTrue(r.out().contains("\"host_faults_reading_r\":1"), r.out());
    }

    @Test
    void benchTranslateComparesRegionsWithPlainBuffers() {
        needsOpenCl();
        Result r = run("bench", "translate", "--size", "128", "--runs", "2", "--json");
        assertEquals(0, r.code(), r.err());
        oneJsonObject(r.out());
        for (String mode : new String[] {"plain_buffer", "region_translated", "region_plain"}) {
            assertTrue(r.out().strip().matches(".*\\{\"m\":128,\"mode\":\"" + mode + "\",\"gflops\":[0-9.]+,.*\"ratio\":[0-9.]+,.*"),
                    mode + ": " + r.out());
        }
        assertTrue(r.out().strip().endsWith("\"results_identical\":true}"), r.out());
    }

    @Test
    void benchKernelsComparesOneLaunchWithTheExplicitProgramPerKernel() {
        needsOpenCl();
        Result r = run("bench", "kernels", "--device-mib", "8", "--factor", "1.5", "--reps", "1", "--warmup", "0", "--json");
        assertEquals(0, r.code(), r.err());
        oneJsonObject(r.out());
        for (String k : new String[] {"saxpy", "sgemm", "stencil", "reduce"}) {
            for (String mode : new String[] {"one_launch", "explicit"}) {
                assertTrue(r.out().contains("{\"kernel\":\"" + k + "\",\"mode\":\"" + mode + "\",\"data_factor\":1.5,"),
                        k + " " + mode + ": " + r.out());
            }
        }
        assertTrue(r.out().contains("\"limits\":{\"memcpy_gbps\":") && !r.out().contains("\"correct\":false"), r.out());
        assertTrue(r.out().matches("(?s).*\"mode\":\"one_launch\".*\"ratio\":[0-9.]+,\"ratio_min\":[0-9.]+,\"ratio_max\":[0-9.]+.*"),
                "one_launch rows carry the per-round ratio with its spread: " + r.out());
    }

    @Test
    void benchMigrateHasRowsForBothDevices() {
        needsOpenCl();
        Result r = run("bench", "migrate", "--pages", "2M", "--sizes", "8M", "--warmup", "0", "--case-warmup-ms", "0",
                "--json");
        assertEquals(0, r.code(), r.err());
        oneJsonObject(r.out());
        assertTrue(r.out().contains("{\"device\":\"emulated\",\"direction\":\"to_device\""), r.out());
        assertTrue(r.out().contains("{\"device\":\"opencl\",\"direction\":\"to_host\""), r.out());
    }

    /** --quick moves 64 MiB on OpenCL unless --sizes says otherwise (it ignored --sizes there). */
    @Test
    void benchMigrateQuickOnOpenClMovesTheSizesAskedFor() {
        needsOpenCl();
        Result r = run("bench", "migrate", "--quick", "--device", "opencl", "--pages", "2M", "--sizes", "4M", "--warmup", "0",
                "--case-warmup-ms", "0", "--json");
        assertEquals(0, r.code(), r.err());
        oneJsonObject(r.out());
        assertTrue(r.out().contains("\"total_bytes\":4194304"), r.out());
        assertFalse(r.out().contains("\"total_bytes\":67108864"), r.out());
    }

    @Test
    void benchMigrateReportsSpreadFloorsAndKeptFrames() {
        Result r = run("bench", "migrate", "--device", "emulated", "--pages", "4K", "--sizes", "4M", "--warmup", "2",
                "--case-warmup-ms", "300", "--json");
        assertEquals(0, r.code(), r.err());
        oneJsonObject(r.out());
        assertTrue(r.out().matches("(?s).*\"warmup_rounds\":2,\"warmup_seconds\":[0-9.]+[,}].*"),
                "the warm-up ran before the cases: " + r.out());
        // and each case's own, at least one round trip, within the 0.3 s asked for (one trip may pass it)
        java.util.regex.Matcher trips = java.util.regex.Pattern
                .compile("\"warmup_trips\":([0-9]+),\"warmup_seconds\":([0-9.]+)").matcher(r.out());
        int cases = 0;
        while (trips.find()) {
            cases++;
            assertTrue(Long.parseLong(trips.group(1)) >= 1, r.out());
            assertTrue(Double.parseDouble(trips.group(2)) < 1.5, r.out());
        }
        assertTrue(cases >= 8, "every row says its case's warm-up: " + r.out());
        for (String field : new String[] {"\"strided_copy_gbps\":", "\"strided_release_gbps\":", "\"gbps_min\":", "\"gbps_max\":",
                "\"runs\":5", "\"host_retained_bytes\":", "\"host_retain_budget\":0", "\"of_strided_copy\":",
                "\"of_strided_release\":", "\"mode\":\"sustained\"", "\"steal_ms\":", "\"thp_splits\":", "\"correct\":true"}) {
            assertTrue(r.out().contains(field), () -> field + " missing: " + r.out());
        }
        assertFalse(r.out().contains("\"correct\":false"), r.out());
        // 4 MiB moved, every other page: with the default budget every frame is kept after the move
        // to the device (the first row's host_retained_bytes), none with a budget of 0
        assertTrue(r.out().contains("\"host_retain_budget\":268435456,\"gbps\""), r.out());
        assertTrue(r.out().contains("\"host_retained_bytes\":4194304"), r.out());
    }

    @Test
    void benchLoadReportsTheFreshMemoryFloor(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) {
        Result r = run("bench", "load", "--sizes", "2M", "--dir", dir.toString(), "--json");
        assertEquals(0, r.code(), r.err());
        oneJsonObject(r.out());
        for (String field : new String[] {"\"populate_gbps\":", "\"floor_gbps\":", "\"of_floor\":", "\"gbps_min\":",
                "\"gbps_max\":", "\"steal_ms\":", "\"thp_splits\":"}) {
            assertTrue(r.out().contains(field), () -> field + " missing: " + r.out());
        }
        // every row checks a sample of the loaded pages against the file (found by a review: none did)
        assertTrue(r.out().contains("\"correct\":true"), r.out());
        assertFalse(r.out().contains("\"correct\":false"), r.out());
        // the test files stay for the next run, and the user is told where and how much
        assertTrue(r.err().contains("the test files (2M) stay in " + dir), r.err());
    }

    @Test
    void humanDemoSaysWhatTheMemoryManagerDid() {
        Result r = run("demo", "--size", "64");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("result matches the CPU"), r.out());
        assertTrue(r.out().contains("device faults before the kernel ran"), r.out());
    }

    @Test
    void badUsageIsExplained() {
        assertUsageError("--size 0 is outside [1, 4096]", "demo", "--size", "0");
        assertUsageError("unknown command 'frobnicate'", "frobnicate");
        assertUsageError("unknown option --bogus", "info", "--bogus");
        // found by a review: exit 1 with no usage text, 'No value present' after the warm-up, a device size
        // that wrapped round to a valid one, a distance between seeds that overflowed
        assertUsageError("--sizes: not a size: 1x", "bench", "migrate", "--sizes", "1x");
        assertUsageError("--sizes ,: an empty item", "bench", "migrate", "--sizes", ",");
        assertUsageError("--pages 4K,: an empty item", "bench", "migrate", "--pages", "4K,");
        assertUsageError("--sizes ,: an empty item", "bench", "load", "--sizes", ",");
        // found by a review of the benches: these failed after the warm-up, half-way through the table, exit 1
        assertUsageError("--sizes 5000 is not a multiple of the page size 4K (4096 bytes)", "bench", "migrate", "--sizes", "5000");
        // the line names the command as it was typed, both words of a bench
        assertTrue(run("bench", "migrate", "--sizes", "5000").err().startsWith("hetmem bench migrate: --sizes 5000"));
        assertTrue(run("demo", "--size", "0").err().startsWith("hetmem demo: --size 0"));
        assertUsageError("--sizes 3M (3145728 bytes) is not a multiple of the page size 2M (2097152 bytes)", "bench",
                "migrate", "--sizes", "3M", "--pages", "4K,2M");
        // the benches' internal options are not the user's (they were taken, and not listed by --help)
        assertUsageError("unknown option --serve-case", "bench", "oversub", "--serve-case", "2.0/sequential/faults");
        assertUsageError("unknown option --serve-case", "bench", "decode", "--serve-case", "emulated/2.0/F32/explicit",
                "--serve-model", "m.safetensors");
        // written without a value, or with =, they are as unknown (without one it read "needs a value": the option showed)
        assertUsageError("unknown option --serve-case", "bench", "oversub", "--serve-case");
        assertUsageError("unknown option --serve-model", "bench", "decode", "--serve-model");
        assertUsageError("unknown option --serve-case=2.0/sequential/faults", "bench", "oversub", "--serve-case=2.0/sequential/faults");
        // a size is named in its largest whole unit, as it is typed, beside its bytes (it read --sizes 1099511627776)
        assertUsageError("--sizes 1T (1099511627776 bytes) is outside [1, ", "bench", "load", "--sizes", "1T");
        assertUsageError("--capacity 1T (1099511627776 bytes) is more than an eighth", "bench", "oversub", "--capacity",
                "1024G");
        assertUsageError("--capacity 5G (5368709120 bytes) must be a multiple of 2M in [16M, 4G]", "bench", "decode",
                "--capacity", "5G");
        // and these wrote a model of 64 GiB to /tmp, or held three times a 16 GiB device on the host
        assertUsageError("is more than a quarter of this machine's", "bench", "decode", "--capacity", "4G", "--factors", "16");
        assertUsageError("is more than an eighth of this machine's", "bench", "oversub", "--capacity", "1024G");
        assertUsageError("--device-mib 17592186044448 is outside [8, 4096]", "bench", "kernels", "--device-mib", "17592186044448");
        assertUsageError("--only 9223372036854775807 is outside [-9223372036854775808, ",
                "stress", "--seed", "-9223372036854775808", "--only", "9223372036854775807");
    }

    @Test
    void sizesParseAsPeopleWriteThem() {
        assertEquals(4096, Sizes.parse("4096"));
        assertEquals(64 << 10, Sizes.parse("64K"));
        assertEquals(2L << 20, Sizes.parse("2M"));
        assertEquals(3L << 30, Sizes.parse("3G"));
        assertEquals(512L << 10, Sizes.parse("512KiB"));
        assertEquals("1G", Sizes.format(1L << 30));
    }

    @Test
    void loadPutsAFileOnTheDeviceAndReportsItAsJson() throws Exception {
        byte[] data = new byte[3 * 1024 * 1024 + 17];
        java.nio.file.Path f = randomFile("weights.bin", data, 1);
        Result r = run("load", f.toString(), "--to", "1", "--json");
        assertEquals(0, r.code(), r.err());
        oneJsonObject(r.out());
        assertTrue(r.out().contains("\"bytes\":" + data.length), r.out());
        assertTrue(r.out().contains("\"kind\":\"emulated\""), r.out());
        assertTrue(r.out().contains("\"pages_on_node\":769"), "every page on the device: " + r.out());
        assertTrue(r.err().contains("100%"), "progress reached the end: " + r.err());
    }

    @Test
    void mapOfALoadTakesTheNodeByNameOrNumber() throws Exception {
        java.nio.file.Path f = randomFile("map.bin", new byte[2 * 1024 * 1024], 2);
        Result byName = run("map", "--load", f.toString(), "--to", "emulated-2");
        assertEquals(0, byName.code(), byName.err());
        assertTrue(byName.out().contains("loaded to node 2 (emulated-2)"), byName.out());
        Result byNumber = run("map", "--load", f.toString(), "--to", "1");
        assertEquals(0, byNumber.code(), byNumber.err());
        assertTrue(byNumber.out().contains("loaded to node 1 (emulated-1)"), byNumber.out());
        assertUsageError("--to opencl: the map's nodes are 0 (host), 1 (emulated-1) and 2 (emulated-2)",
                "map", "--load", f.toString(), "--to", "opencl");
    }

    /** {@code data}, filled from {@code seed}, written to target/cli-load-test/{@code name}. */
    private static java.nio.file.Path randomFile(String name, byte[] data, long seed) throws Exception {
        java.nio.file.Path dir = java.nio.file.Path.of("target", "cli-load-test").toAbsolutePath();
        java.nio.file.Files.createDirectories(dir);
        new java.util.SplittableRandom(seed).nextBytes(data);
        return java.nio.file.Files.write(dir.resolve(name), data);
    }

    private static java.nio.file.Path safetensors(String name, String header, int dataBytes) throws Exception {
        java.nio.file.Path dir = java.nio.file.Path.of("target", "cli-load-test").toAbsolutePath();
        java.nio.file.Files.createDirectories(dir);
        byte[] h = header.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(8 + h.length + dataBytes).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h);
        java.nio.file.Path f = dir.resolve(name);
        java.nio.file.Files.write(f, b.array());
        return f;
    }

    @Test
    void loadOfASafetensorsFileListsItsTensors() throws Exception {
        java.nio.file.Path f = safetensors("model.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                + "\"step\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[24,32]},\"__metadata__\":{\"format\":\"pt\"}}", 32);
        Result human = run("load", f.toString(), "--to", "1");
        assertEquals(0, human.code(), human.err());
        assertTrue(human.out().contains("safetensors: 2 tensors (1 F32, 1 I64), metadata {format=pt}"), human.out());
        assertTrue(human.out().contains("[2, 3]"), human.out());
        Result json = run("load", f.toString(), "--json");
        assertEquals(0, json.code(), json.err());
        oneJsonObject(json.out());
        assertTrue(json.out().contains("{\"name\":\"w\",\"dtype\":\"F32\",\"shape\":[2,3],\"offset\":"), json.out());
        assertTrue(json.out().contains("{\"name\":\"step\",\"dtype\":\"I64\",\"shape\":[],"), json.out());
        assertTrue(json.out().contains("\"metadata\":{\"format\":\"pt\"}"), json.out());
        // a shape of many dimensions (a valid header may give millions): the listing shows eight and counts them
        String ones = String.join(",", java.util.Collections.nCopies(40, "1"));
        java.nio.file.Path tall = safetensors("tall.safetensors", "{\"t\":{\"dtype\":\"U8\",\"shape\":[" + ones
                + "],\"data_offsets\":[0,1]}}", 1);
        Result listed = run("load", tall.toString());
        assertEquals(0, listed.code(), listed.err());
        assertTrue(listed.out().contains("[1, 1, 1, 1, 1, 1, 1, 1, ... (40 dimensions)]"), listed.out());
        // and so does a refusal naming it (the message is whole in --json's "error")
        java.nio.file.Path wrong = safetensors("tall-wrong.safetensors", "{\"t\":{\"dtype\":\"U8\",\"shape\":[" + ones
                + "],\"data_offsets\":[0,2]}}", 2);
        Result refused = run("load", wrong.toString(), "--json");
        assertEquals(1, refused.code());
        assertTrue(refused.out().contains("... (40 dimensions)]") && !refused.out().contains(ones.replace(",", ", ")),
                refused.out());
    }

    /** After "--", "--json" is a file's name: its failure is not answered as JSON (it was, read from the raw arguments). */
    @Test
    void jsonAfterTheEndOfOptionsIsAFileNameNotTheOption() {
        Result r = run("load", "--", "--json");
        assertEquals(1, r.code(), r.err());
        assertTrue(r.err().contains("--json"), "names the file: " + r.err());
        assertEquals("", r.out(), "no JSON object: --json was not asked for");
        Result asked = run("load", "no-such-file.safetensors", "--json");
        assertEquals(1, asked.code(), asked.err());
        oneJsonObject(asked.out());
    }

    @Test
    void loadOfABrokenSafetensorsFileNamesWhatIsWrong() throws Exception {
        java.nio.file.Path f = safetensors("broken.safetensors",
                "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 20);
        Result r = run("load", f.toString());
        assertEquals(1, r.code());
        assertTrue(r.err().contains("\"w\"") && r.err().contains("24") && r.err().contains("20"),
                "names the tensor, the bytes its shape needs and the bytes its offsets give: " + r.err());
    }

    /**
     * A file over 1 TiB (sparse) loaded to the host is refused by the loader, for this machine's
     * memory; it was refused as the capacity of an emulated device the user never asked for (the
     * command sized its device by the file whatever the target).
     */
    @Test
    void loadOfAFileLargerThanTheMachineToTheHostSaysSoNotSomethingAboutADevice() throws Exception {
        java.nio.file.Path dir = java.nio.file.Path.of("target", "cli-load-test").toAbsolutePath();
        java.nio.file.Files.createDirectories(dir);
        java.nio.file.Path f = dir.resolve("sparse-2T.bin");
        try (java.io.RandomAccessFile raf = new java.io.RandomAccessFile(f.toFile(), "rw")) {
            raf.setLength(2L << 40);   // sparse: no block is written
        }
        try {
            Result r = run("load", f.toString());
            assertEquals(1, r.code(), r.err());
            assertTrue(r.err().contains(String.valueOf(2L << 40)) && r.err().contains("more than this machine's")
                    && !r.err().contains("emulated device capacity"), r.err());
        } finally {
            java.nio.file.Files.deleteIfExists(f);
        }
    }

    @Test
    void loadOfAMissingFileSaysSo() {
        Result r = run("load", "/no/such/file.bin");
        assertEquals(1, r.code());
        assertTrue(r.err().contains("/no/such/file.bin") && r.err().contains("no such file"), r.err());
        // a model the safetensors reader opens itself: it said the path alone
        Result model = run("load", "/no/such/model.safetensors");
        assertEquals(1, model.code());
        assertTrue(model.err().contains("/no/such/model.safetensors") && model.err().contains("no such file"), model.err());
    }

    @Test
    void benchOversubQuickIsCorrectAndFollowsTheJsonContract() {
        Result r = run("bench", "oversub", "--quick", "--json", "--capacity", "16M", "--reps", "2", "--warmup", "0",
                "--runs-per-round", "2");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("\"runs\":4"), "sequential cases run --runs-per-round times in each of --reps rounds: "
                + r.out());
        // no warm-up asked for: none run, and no row claims its JIT was quiet
        assertEquals(10, r.out().split("\"warmup_s\":0.0,\"jit_quiet\":false", -1).length - 1, r.out());
        oneJsonObject(r.out());
        assertTrue(r.out().startsWith("{\"bench\":\"oversub\",\"limits\":{\"memcpy_gbps\":"), r.out());
        assertEquals(10, r.out().split("\"ws_factor\"", -1).length - 1, "ten rows in --quick: " + r.out());
        assertTrue(!r.out().contains("\"correct\":false"), r.out());
        for (String mode : new String[] {"faults", "prefetch", "explicit", "faults_no_thrash_control", "one_launch",
                "one_launch_windows", "one_launch_no_thrash_control"}) {
            assertTrue(r.out().contains("\"mode\":\"" + mode + "\""), mode + " missing: " + r.out());
        }
        // every row has an explicit program of its factor and pattern to be compared with, round by round
        assertEquals(10, r.out().split("\"of_explicit\":", -1).length - 1, r.out());
        assertTrue(r.out().contains("\"of_explicit_min\":") && r.out().contains("\"of_explicit_max\":"), r.out());
        assertUsageError("--warmup 21 is outside [0, 20]", "bench", "oversub", "--warmup", "21");
        assertUsageError("--runs-per-round 0 is outside [1, 20]", "bench", "oversub", "--runs-per-round", "0");
        // --modes: only those modes' rows (of_explicit where the explicit program ran beside them);
        // --same-jvm: all cases in this JVM (above, each case ran in a JVM of its own)
        Result some = run("bench", "oversub", "--quick", "--json", "--capacity", "16M", "--reps", "1", "--warmup", "0",
                "--runs-per-round", "1", "--modes", "explicit,one_launch_windows", "--same-jvm");
        assertEquals(0, some.code(), some.err());
        assertEquals(3, some.out().split("\"ws_factor\"", -1).length - 1, "explicit twice, windows once: " + some.out());
        assertTrue(some.out().contains("\"mode\":\"one_launch_windows\"") && !some.out().contains("\"mode\":\"faults\""),
                some.out());
        Result unknown = run("bench", "oversub", "--modes", "explicit,fast");
        assertEquals(2, unknown.code(), unknown.err());
        assertTrue(unknown.err().contains("unknown mode 'fast'") && unknown.err().contains("one_launch_windows"), unknown.err());
        assertUsageError("--same-jvm and --jvm-per-case: choose one", "bench", "oversub", "--same-jvm", "--jvm-per-case");
        assertUsageError("--same-jvm and --jvm-per-round: choose one", "bench", "oversub", "--jvm-per-round", "--same-jvm");
        assertUsageError("unknown option --serve-case", "bench", "oversub", "--serve-case", "2.0/sequential/fastest");
        // a warm-up waits for the JIT: past the floor, a quiet spell watched from there (or, never quiet, the limit)
        Result warmed = run("bench", "oversub", "--quick", "--json", "--capacity", "16M", "--reps", "1", "--warmup", "1",
                "--runs-per-round", "1", "--modes", "explicit", "--same-jvm");
        assertEquals(0, warmed.code(), warmed.err());
        java.util.regex.Matcher warm = java.util.regex.Pattern.compile("\"warmup_s\":([0-9.]+),\"jit_quiet\":(true|false)")
                .matcher(warmed.out());
        int rows = 0;
        while (warm.find()) {
            assertTrue(Double.parseDouble(warm.group(1)) >= (CaseJvm.WARM_UP_NANOS + CaseJvm.QUIET_NANOS) / 1e9 - 0.01,
                    warm.group());
            rows++;
        }
        assertEquals(2, rows, "the explicit program, sequential and random: " + warmed.out());
    }

    @Test
    void benchDecodeCasesInJvmsOfTheirOwnAreWarmedUpThroughTheirProtocol() {
        // each case in a child JVM: warm-up runs asked for by "warm", their answers carrying the child's compilation time
        Result r = run("bench", "decode", "--quick", "--json", "--capacity", "16M", "--reps", "1", "--tokens", "1",
                "--warmup", "1", "--runs-per-round", "1", "--device", "emulated", "--dtypes", "bf16", "--jvm-per-round");
        assertEquals(0, r.code(), r.err());
        oneJsonObject(r.out());
        assertTrue(r.out().contains("\"jvm\":\"jvm-per-round\""), r.out());
        assertEquals(3, r.out().split("\"correct\":true", -1).length - 1, r.out());
        java.util.regex.Matcher warm = java.util.regex.Pattern.compile("\"warmup_s\":([0-9.]+),\"jit_quiet\":(true|false)")
                .matcher(r.out());
        int warmed = 0;
        while (warm.find()) {
            assertTrue(Double.parseDouble(warm.group(1)) >= CaseJvm.WARM_UP_NANOS / 1e9 - 0.01, warm.group());
            warmed++;
        }
        assertEquals(3, warmed, r.out());
    }

    @Test
    void benchDecodeQuickIsCorrectAndFollowsTheJsonContract() {
        Result r = run("bench", "decode", "--quick", "--json", "--capacity", "16M", "--reps", "1", "--tokens", "1",
                "--warmup", "1", "--runs-per-round", "2", "--device", "emulated", "--dtypes", "bf16");
        assertEquals(0, r.code(), r.err());
        oneJsonObject(r.out());
        assertTrue(r.out().startsWith("{\"bench\":\"decode\",\"limits\":{\"memcpy_gbps\":"), r.out());
        for (String mode : new String[] {"one_launch", "prefetch", "explicit"}) {
            assertTrue(r.out().contains("\"mode\":\"" + mode + "\""), mode + " missing: " + r.out());
        }
        // --quick's factor, the element type asked for (only: no F32 row)
        assertTrue(!r.out().contains("\"dtype\":\"F32\""), r.out());
        for (String key : new String[] {"\"device\":\"emulated\"", "\"weights_factor\":2.0", "\"dtype\":\"BF16\"",
                "\"tokens_per_s\":", "\"gbps\":", "\"migrated_bytes\":", "\"evictions\":", "\"correct\":true",
                "\"of_explicit\":", "\"of_explicit_min\":", "\"of_explicit_max\":"}) {
            assertTrue(r.out().contains(key), key + " missing: " + r.out());
        }
        // the warm-up runs ran and are not counted: each row stands for the two runs of the one round asked for
        assertEquals(3, r.out().split("\"runs\":2,", -1).length - 1, r.out());
        // --quick runs its cases in this JVM, each warmed up for at least the floor, at most the quick limit
        assertTrue(r.out().contains("\"jvm\":\"same-jvm\",\"warmup_max_s\":6.0,"), r.out());
        java.util.regex.Matcher warm = java.util.regex.Pattern.compile("\"warmup_s\":([0-9.]+),\"jit_quiet\":(true|false)")
                .matcher(r.out());
        int warmed = 0;
        while (warm.find()) {
            double s = Double.parseDouble(warm.group(1));
            assertTrue(s >= CaseJvm.WARM_UP_NANOS / 1e9 - 0.01 && s < CaseJvm.QUICK_MAX_WARM_UP_NANOS / 1e9 + 5, warm.group());
            warmed++;
        }
        assertEquals(3, warmed, r.out());
        assertTrue(!r.out().contains("\"correct\":false"), r.out());
        assertUsageError("--reps 0 is outside [1, 50]", "bench", "decode", "--reps", "0");
        assertUsageError("--runs-per-round 0 is outside [1, 20]", "bench", "decode", "--runs-per-round", "0");
        assertUsageError("--factors 2,x: 'x' is not a number", "bench", "decode", "--factors", "2,x");
        assertUsageError("--factors 0: 0 outside (0, 16]", "bench", "decode", "--factors", "0");
        assertUsageError("--dtypes F16: 'F16' is neither F32 nor BF16", "bench", "decode", "--dtypes", "F16");
        assertUsageError("--same-jvm and --jvm-per-case: choose one", "bench", "decode", "--same-jvm", "--jvm-per-case");
        assertUsageError("--jvm-per-case and --jvm-per-round: choose one", "bench", "decode", "--jvm-per-round",
                "--jvm-per-case");
        // the internal options that make a JVM serve one case are a case JVM's only (its environment says so)
        assertUsageError("unknown option --serve-case", "bench", "decode", "--serve-case", "emulated/2.0/F32/explicit");
    }

    @Test
    void helpAndVersionFollowTheCommandLinesConventions() {
        for (String v : new String[] {"--version", "-V", "version"}) {
            Result r = run(v);
            assertEquals(0, r.code(), v + ": " + r.err());
            assertTrue(r.out().startsWith("hetmem ") && !r.out().contains("unknown"), v + " prints the version: " + r.out());
        }
        for (String h : new String[] {"-h", "--help", "help"}) {
            Result r = run(h);
            assertEquals(0, r.code(), h);
            assertTrue(r.out().contains("bench decode") && r.out().contains("bench translate") && r.out().contains("jmh"), r.out());
        }
        // COMMAND --help (or -h) prints that command's usage and runs nothing
        for (String[] c : new String[][] {{"demo", "--help"}, {"demo", "-h"}, {"load", "--help"}, {"info", "-h"},
                {"bench", "migrate", "--help"}, {"bench", "decode", "-h"}}) {
            Result r = run(c);
            assertEquals(0, r.code(), String.join(" ", c) + ": " + r.err());
            String words = c[0].equals("bench") ? "bench " + c[1] : c[0];
            assertTrue(r.out().startsWith("usage: hetmem " + words) && r.out().contains("  " + words + " "),
                    String.join(" ", c) + ": " + r.out());
            assertTrue(!r.out().contains("\"nodes\"") && !r.out().contains("GFLOP"), "help only: " + r.out());
        }
        // 'help COMMAND' is that command's help; a word after the version, or help of no command, a usage error
        Result helpOf = run("help", "bench", "decode");
        assertEquals(0, helpOf.code(), helpOf.err());
        assertTrue(helpOf.out().startsWith("usage: hetmem bench decode"), helpOf.out());
        assertEquals(2, run("help", "nosuch").code());
        Result versionAnd = run("version", "--bogus");
        assertEquals(2, versionAnd.code(), versionAnd.out());
        assertTrue(versionAnd.err().contains("unexpected argument '--bogus'"), versionAnd.err());
        Result bench = run("bench", "--help");
        assertEquals(0, bench.code());
        assertTrue(bench.out().contains("bench migrate") && bench.out().contains("bench oversub"), bench.out());
    }

    @Test
    void extraWordsAndUnknownShortOptionsAreUsageErrors() {
        Result extra = assertUsageError("unexpected argument 'extra'", "info", "--json", "extra");
        oneJsonObject(extra.out());   // --json was asked for: the error is the one object on stdout
        assertTrue(extra.out().contains("\"error\":\"unexpected argument 'extra'\""), extra.out());
        assertUsageError("unknown option -x", "info", "-x");
    }

    @Test
    void benchOversubRefusesARepeatCountOutsideItsRange() {
        assertUsageError("--reps 0 is outside [1, 100]", "bench", "oversub", "--quick", "--reps", "0");
    }

    @Test
    void benchFaultQuickFollowsTheJsonContract() {
        Result r = run("bench", "fault", "--quick", "--json");
        assertEquals(0, r.code(), r.err());
        oneJsonObject(r.out());
        assertTrue(r.out().startsWith("{\"bench\":\"fault\",\"limits\":{\"uffd_raw_ns\":"), r.out());
        assertTrue(r.out().contains("\"minor_fault_ns\":"), r.out());
        boolean uffd = dev.hetmem.limits.FaultLimits.userfaultfdUnavailableReason().isEmpty();
        if ("true".equals(System.getenv("CI"))) {
            assertTrue(uffd, "CI must measure the userfaultfd path");
        }
        if (uffd) {
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("\"uffd_raw_copy_ns\":(-?\\d+)").matcher(r.out());
            assertTrue(m.find() && Long.parseLong(m.group(1)) > 0, "the round trip with the page copied in measured: " + r.out());
        }
        for (String path : uffd ? new String[] {"host_view", "userfaultfd", "device"} : new String[] {"host_view", "device"}) {
            for (long g : new long[] {4096, 2097152}) {
                assertTrue(r.out().contains("{\"path\":\"" + path + "\",\"granule_bytes\":" + g + ",\"median_ns\":"),
                        path + " " + g + " missing: " + r.out());
            }
        }
    }

    @Test
    void aJsonCommandThatFailsPrintsOneJsonErrorObject() {
        Result usage = run("load", "x.bin", "--to", "5", "--json");
        assertEquals(2, usage.code());
        oneJsonObject(usage.out());
        assertTrue(usage.out().contains("\"error\":\"--to 5: the nodes are 0 (host), 1 (emulated) and 2 (opencl)\""), usage.out());
        assertTrue(usage.out().contains("\"exit\":2"), usage.out());
        Result missing = run("load", "/no/such/file.bin", "--json");
        assertEquals(1, missing.code());
        oneJsonObject(missing.out());
        assertTrue(missing.out().contains("\"error\":") && missing.out().contains("\"command\":\"load\""), missing.out());
        Result human = run("load", "/no/such/file.bin");
        assertEquals("", human.out(), "without --json stdout stays empty");
        Result ring = run("load", "x.bin", "--ring", "1");   // a value outside the option's limits: a usage error too
        assertEquals(2, ring.code(), ring.err());
        assertTrue(ring.err().contains("--ring 1: ring of 1 bytes must hold at least one chunk"), ring.err());
        // a size past 2^63 bytes names the ring's own limit, as one below it does (it named the parser's 2^63 - 1)
        Result huge = run("load", "x.bin", "--ring", "9999999999T");
        assertEquals(2, huge.code(), huge.err());
        assertTrue(huge.err().contains("--ring 9999999999T is more than 16G (17179869184 bytes), the most a ring may hold"), huge.err());
    }

    @Test
    void loadTargetsTheOpenClDeviceByNameAndStaysQuietWithNoProgress() throws Exception {
        needsOpenCl();
        java.nio.file.Path f = randomFile("to-opencl.bin", new byte[2 * 1024 * 1024 + 5], 3);
        Result r = run("load", f.toString(), "--to", "opencl", "--json", "--no-progress");
        assertEquals(0, r.code(), r.err());
        oneJsonObject(r.out());
        assertTrue(r.out().contains("\"kind\":\"opencl\"") && r.out().contains("\"node\":2"), r.out());
        assertTrue(r.out().contains("\"pages_on_node\":513"), "every page on the OpenCL device: " + r.out());
        assertEquals("", r.err(), "--no-progress: nothing on stderr");
        Result withBar = run("load", f.toString(), "--to", "host");
        assertTrue(withBar.err().contains("100%") && !withBar.err().contains("\r"),
                "stderr is not a terminal here: lines, no redraws: " + withBar.err());
    }

    @Test
    void stressRepeatsOneConfigurationOfItsSequence() {
        Result r = run("stress", "--seconds", "120", "--seed", "5", "--only", "7", "--repeat", "2", "--device", "emulated", "--json");
        assertEquals(0, r.code(), r.err() + r.out());
        oneJsonObject(r.out());
        assertTrue(r.out().contains("\"runs\":2,"), "the one configuration, twice: " + r.out());
        assertTrue(r.out().contains("\"first_seed\":5,\"last_seed\":7,"), r.out());
        assertEquals(2, r.err().split("ok  seed 7, ", -1).length - 1, "each run's line on stderr with --json too: " + r.err());
        // seed 7 is the third configuration of the sequence from 5 (two devices); a sequence started
        // at 7 would run its first (one device) instead
        Result text = run("stress", "--seconds", "120", "--seed", "5", "--only", "7", "--device", "emulated");
        assertEquals(0, text.code(), text.err() + text.out());
        assertEquals(1, text.err().split("ok  seed 7, devices emulated\\+emulated, host views", -1).length - 1, text.err());
        assertTrue(text.out().startsWith("1 runs of the configuration of seed 7,"), text.out());
        assertUsageError("--repeat needs --only", "stress", "--repeat", "3");
        assertUsageError("--only 9 is outside [10, 1000010]", "stress", "--seed", "10", "--only", "9");
        Result far = run("stress", "--seed", "10", "--only", "1000011");
        assertEquals(2, far.code(), far.err());
        for (String n : new String[] {"0", "100001"}) {
            Result bad = run("stress", "--only", "1", "--repeat", n);
            assertEquals(2, bad.code(), bad.err());
            assertTrue(bad.err().contains("--repeat " + n + " is outside [1, 100000]"), bad.err());
        }
    }

    /**
     * Every command and bench, the same conventions: --help prints its usage and exits 0; an
     * unknown option and an extra word are usage errors (exit 2, one line naming them); with
     * --json the error is one JSON object on stdout.
     */
    @Test
    void everyCommandKeepsTheConventions() {
        String[][] commands = {{"info"}, {"demo"}, {"load", "f.bin"}, {"map"}, {"stress"}, {"bench", "migrate"},
                {"bench", "load"}, {"bench", "oversub"}, {"bench", "decode"}, {"bench", "fault"}, {"bench", "translate"},
                {"bench", "kernels"}};
        for (String[] c : commands) {
            String name = String.join(" ", c);
            Result help = run(concat(c, "--help"));
            assertEquals(0, help.code(), name);
            assertTrue(help.out().contains("usage: hetmem " + (c[0].equals("bench") ? name : c[0])), name + ": " + help.out());
            Result bogus = run(concat(c, "--bogus"));
            assertEquals(2, bogus.code(), name);
            assertTrue(bogus.err().contains("unknown option --bogus"), name + ": " + bogus.err());
            Result extra = run(concat(c, "extra-word"));
            assertEquals(2, extra.code(), name);
            assertTrue(extra.err().contains("unexpected argument 'extra-word'"), name + ": " + extra.err());
            Result json = run(concat(c, "--bogus", "--json"));
            assertEquals(2, json.code(), name);
            oneJsonObject(json.out());
            assertTrue(json.out().contains("\"error\":\"unknown option --bogus\""), name + ": " + json.out());
            assertTrue(!bogus.err().contains("Exception") && !bogus.err().contains("\tat "), "no class names: " + bogus.err());
        }
    }

    private static String[] concat(String[] a, String... b) {
        String[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    /**
     * The command line refuses {@code args} as a usage error: exit status 2, {@code message} on
     * standard error. Returns the result, for what else a test checks of it.
     */
    /**
     * From a review of the command line: counts read as sizes ("size -1 out of range", no range
     * named; "--reps 1K" was 1024 reps), a factor of NaN accepted, an empty kernel list run as
     * none, a --dir that is a file failing late with only its name, a chart path that is a folder
     * or in a folder root cannot write failing after the run, sizes read in the machine's locale.
     */
    @Test
    void countsFactorsAndPathsAreCheckedUpFront() {
        assertUsageError("--threads -1 is outside [1, 64]", "load", "x", "--threads", "-1");
        assertUsageError("--reps 1K is not a whole number in [1, 100]", "bench", "oversub", "--reps", "1K");
        assertUsageError("--tokens -3 is outside [1, 1000]", "bench", "decode", "--tokens", "-3");
        assertUsageError("--seconds 0 is outside [1, 604800]", "stress", "--seconds", "0");
        assertUsageError("--factor NaN is not a number in [0.1, 16.0]", "bench", "kernels", "--factor", "NaN");
        assertUsageError("--factor 0x1p1 is not a number", "bench", "kernels", "--factor", "0x1p1");
        assertUsageError("--kernels ,: an empty item", "bench", "kernels", "--kernels", ",");
        assertUsageError("--factors 0x1p1: '0x1p1' is not a number", "bench", "decode", "--factors", "0x1p1");
        assertUsageError("--repeat needs --only", "stress", "--repeat", "0");
        long t0 = System.nanoTime();   // a long run of digits is refused in linear time (the pattern once backtracked)
        assertEquals(2, run("bench", "kernels", "--factor", "1".repeat(100_000) + "x").code());
        assertTrue(System.nanoTime() - t0 < 10_000_000_000L, "refused in " + (System.nanoTime() - t0) / 1_000_000 + " ms");
        assertUsageError("--sizes: size 8388608T is outside [0, 9223372036854775807] bytes", "bench", "migrate", "--sizes",
                "8388608T");
        assertUsageError("more than a quarter of this machine's", "bench", "kernels", "--device-mib", "4096", "--factor", "16");
        java.util.Locale before = java.util.Locale.getDefault();
        try {
            java.util.Locale.setDefault(java.util.Locale.forLanguageTag("tr-TR"));
            assertEquals(64 * 1024, Sizes.parse("64kib"), "the size's letters read the same in every locale");
        } finally {
            java.util.Locale.setDefault(before);
        }
    }

    @Test
    void benchPathsThatCannotBeWrittenAreUsageErrors(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir)
            throws java.io.IOException {
        java.nio.file.Path file = java.nio.file.Files.writeString(dir.resolve("a-file"), "x");
        assertUsageError("that is a file, not a folder", "bench", "load", "--dir", file.toString());
        java.nio.file.Path folder = java.nio.file.Files.createDirectory(dir.resolve("chart.png"));
        assertUsageError("that is a folder, not a file", "bench", "migrate", "--plot", folder.toString());
        assertUsageError("cannot be written", "bench", "migrate", "--plot", "/proc/chart.png");
        // an empty file name read as the current folder ("is a directory", exit 1)
        assertUsageError("FILE is empty", "load", "");
        assertUsageError("--load is empty", "map", "--load", "");
        // a folder that is there and refuses files (it said only the first file's path, with exit 1)
        assertUsageError("the test files cannot be written there", "bench", "load", "--sizes", "1", "--dir", "/proc");
    }

    /** A chart that cannot be drawn at the end loses nothing: the rows are printed, the status is 1. */
    @Test
    void aChartThatFailsAtTheEndKeepsTheResults(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) {
        java.util.Map<String, Object> root = new java.util.LinkedHashMap<>();
        root.put("bench", "kernels");
        root.put("limits", java.util.Map.of("memcpy_gbps", 10.0));
        java.util.Map<String, Object> row = new java.util.LinkedHashMap<>();
        row.put("kernel", "saxpy");
        row.put("mode", "explicit");
        row.put("gbps", 1.5);
        root.put("rows", java.util.List.of(row));
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        // the folder checked up front, gone by the end of the run
        BenchPlots.write(dir.resolve("gone").resolve("chart.png").toString(), root,
                new PrintStream(err, true, StandardCharsets.UTF_8));
        assertTrue(BenchPlots.failed(root));
        assertTrue(((String) root.get("plot_error")).startsWith("cannot write the chart to "), root.toString());
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("(the results follow)"), err.toString(StandardCharsets.UTF_8));
    }

    private static Result assertUsageError(String message, String... args) {
        Result r = run(args);
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains(message), r.err());
        return r;
    }
}
