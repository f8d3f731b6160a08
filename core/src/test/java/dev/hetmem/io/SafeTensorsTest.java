package dev.hetmem.io;

import dev.hetmem.Access;
import dev.hetmem.HostView;
import dev.hetmem.UnifiedMemory;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static dev.hetmem.io.SafeTensorsException.Kind.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SafeTensorsTest {
    static final Path DIR = Path.of("target", "safetensors-test-files").toAbsolutePath();
    static UnifiedMemory mem;

    @BeforeAll
    static void setUp() throws IOException {
        Files.createDirectories(DIR);
        mem = UnifiedMemory.builder().device(dev.hetmem.TestDevice.create(64L << 20).driver()).copyThreads(2).build();
    }

    @AfterAll
    static void tearDown() {
        mem.close();
    }

    /** A file: 8-byte little-endian {@code declaredLength}, then header bytes, then data. */
    static Path write(String name, long declaredLength, byte[] header, byte[] data) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(declaredLength).array());
        out.write(header);
        out.write(data);
        Path p = DIR.resolve(name + ".safetensors");
        Files.write(p, out.toByteArray());
        return p;
    }

    static Path write(String name, String json, int dataBytes) throws IOException {
        byte[] h = json.getBytes(StandardCharsets.UTF_8);
        return write(name, h.length, h, new byte[dataBytes]);
    }

    /** Asserts that {@code call} throws {@code type} with a message containing {@code expected}. */
    static void names(Class<? extends Throwable> type, String expected, org.junit.jupiter.api.function.Executable call) {
        Throwable t = assertThrows(type, call);
        assertTrue(t.getMessage() != null && t.getMessage().contains(expected),
                () -> "message should name '" + expected + "': " + t.getMessage());
    }

    static void refused(SafeTensorsException.Kind kind, String expectedInMessage, Path p) {
        int before = mem.regions().size();
        SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> SafeTensors.load(mem, p, 0));
        assertEquals(kind, e.kind(), e.getMessage());
        assertTrue(e.getMessage().contains(expectedInMessage), () -> "message should contain '" + expectedInMessage + "': " + e.getMessage());
        assertEquals(before, mem.regions().size(), "nothing allocated for a refused file");
    }

    /**
     * Bad arguments are named before the header is read: a null memory or path, and a node the
     * memory does not have (a bad header beside it is not the error reported); the memory and the
     * path were used only after the parse (a NullPointerException from inside the JDK for a null path).
     */
    @Test
    void badArgumentsAreNamedBeforeTheHeaderIsRead() throws IOException {
        Path bad = write("bad-header-beside-bad-node", "{\"a\":", 0);
        names(NullPointerException.class, "mem", () -> SafeTensors.load(null, bad, 0));
        names(NullPointerException.class, "path", () -> SafeTensors.load(mem, null, 0));
        names(IllegalArgumentException.class, "unknown node 7", () -> SafeTensors.load(mem, bad, 7));
    }

    /** A tensor made by hand is checked as the reader checks one: no negative or overflowing shape, data inside its region. */
    @Test
    void aTensorRefusesAShapeOrSliceNoHeaderCouldGive() {
        dev.hetmem.Region r = mem.allocate(4096);
        try {
            names(IllegalArgumentException.class, "dimension -2",
                    () -> new Tensor("t", DType.F32, new long[] {3, -2}, r, 0, 0));
            names(IllegalArgumentException.class, "[4611686018427387904, 4]",
                    () -> new Tensor("t", DType.F32, new long[] {1L << 62, 4}, r, 0, 0));
            names(IllegalArgumentException.class, "data at -1",
                    () -> new Tensor("t", DType.F32, new long[] {1}, r, -1, 4));
            names(IllegalArgumentException.class, "4096 bytes",
                    () -> new Tensor("t", DType.F32, new long[] {2}, r, 4090, 8));
            names(NullPointerException.class, "region",
                    () -> new Tensor("t", DType.F32, new long[] {1}, null, 0, 4));
            assertEquals(6, new Tensor("t", DType.F32, new long[] {2, 3}, r, 0, 24).elements());
        } finally {
            r.free();
        }
    }

    @Test
    void eachHeaderErrorOfTheReferenceReaderIsRefusedWithItsOwnMessage() throws IOException {
        Path tiny = DIR.resolve("tiny.safetensors");
        Files.write(tiny, new byte[5]);
        refused(HEADER_TOO_SMALL, "5 bytes", tiny);
        refused(HEADER_TOO_LARGE, "100000001", write("huge", 100_000_001L, new byte[0], new byte[0]));
        refused(INVALID_HEADER_LENGTH, "header length 500", write("past", 500, "{}".getBytes(), new byte[10]));
        // where the bad byte is, and which (it said the decoder's "Input length = 1" alone)
        refused(INVALID_HEADER, "UTF-8: byte 0xc3 at header offset 1 (file offset 9)",
                write("utf8", 4, new byte[] {'{', (byte) 0xC3, (byte) 0x28, '}'}, new byte[0]));
        refused(INVALID_HEADER, "byte 0xe2 0x82 at header offset 3", write("utf8cut", 5, new byte[] {'{', '"', 'a', (byte) 0xE2, (byte) 0x82},
                new byte[0]));
        refused(INVALID_HEADER_DESERIALIZATION, "not valid JSON", write("json", "{\"a\":", 0));
        refused(INVALID_HEADER_START, "not a JSON object", write("array", "[1,2]", 0));
        refused(UNKNOWN_DTYPE, "\"F17\"", write("dtype", "{\"t\":{\"dtype\":\"F17\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4));
        refused(VALIDATION_OVERFLOW, "\"t\"", write("overflow",
                "{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4));
        refused(TENSOR_INVALID_INFO, "hold 8", write("mismatch", "{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8));
        refused(INVALID_OFFSET, "(a hole)", write("start", "{\"t\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}", 8));
        refused(INVALID_OFFSET, "(overlap)", write("overlap",
                "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}", 6));
        refused(INVALID_OFFSET, "\"b\"", write("hole",
                "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[6,10]}}", 10));
        refused(METADATA_INCOMPLETE_BUFFER, "file has 12", write("short",
                "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 12));
        refused(INVALID_METADATA, "\"n\"", write("meta", "{\"__metadata__\":{\"n\":3}}", 0));
        refused(INVALID_METADATA, "not an object", write("meta2", "{\"__metadata__\":[\"x\"]}", 0));
        refused(MISALIGNED_SLICE, "3 F4 elements is 12 bits", write("f4", "{\"t\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", 2));
        refused(INVALID_HEADER_DESERIALIZATION, "shape[0] = -1", write("negative",
                "{\"t\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0));
        refused(INVALID_HEADER_DESERIALIZATION, "duplicate key", write("dup",
                "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1));
        // an exponent no number can hold: a header error naming it, not a NumberFormatException
        refused(INVALID_HEADER_DESERIALIZATION, "out of range", write("exponent",
                "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"x\":1e9999999999}}", 1));
        StringBuilder deep = new StringBuilder();
        deep.append("[".repeat(10_000)).append("]".repeat(10_000));
        refused(INVALID_HEADER_DESERIALIZATION, "nesting deeper", write("deep", "{\"x\":" + deep + "}", 0));
    }

    /**
     * The header is read through an open of its own before the load opens the file: a file replaced
     * in between by another of the same size, whose header places its tensors differently, passed
     * (the load checked its own start against its end, and the size matched), leaving tensors that
     * pointed into the other file's bytes by the first file's header. Also a write in place there.
     */
    @Test
    void aFileReplacedOrWrittenBetweenItsHeaderAndItsLoadFailsAndLeavesNothing() throws IOException {
        String a = "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                + "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}";
        String b = "{\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}  ";   // padded to a's length, as writers pad
        assertEquals(a.length(), b.length(), "the two files have one size");
        for (String change : java.util.List.of("replaced", "written")) {
            for (int node : new int[] {0, 1}) {
                Path p = write("swapped", a, 24);
                // an hour old: a write in place then changes its modification time even within the clock's tick
                Files.setLastModifiedTime(p, java.nio.file.attribute.FileTime.fromMillis(System.currentTimeMillis() - 3_600_000));
                Path other = write("swapped-other", b, 24);
                long size = Files.size(p);
                int before = mem.regions().size();
                IOException e = assertThrows(IOException.class, () -> SafeTensors.load(mem, p, node, LoadOptions.defaults(), () -> {
                    try {
                        if (change.equals("replaced")) {
                            Files.move(other, p, java.nio.file.StandardCopyOption.REPLACE_EXISTING,
                                    java.nio.file.StandardCopyOption.ATOMIC_MOVE);
                        } else {
                            try (FileChannel ch = FileChannel.open(p, java.nio.file.StandardOpenOption.WRITE)) {
                                ch.write(ByteBuffer.wrap(Files.readAllBytes(other)), 0);   // in place
                            }
                        }
                    } catch (IOException x) {
                        throw new java.io.UncheckedIOException(x);
                    }
                }), change + " to node " + node);
                String says = change.equals("replaced") ? "was replaced by another file between reading its header and loading its data"
                        : "was written between reading its header and loading its data";
                assertTrue(e.getMessage().contains(says) && e.getMessage().contains(p.toString()), e.getMessage());
                assertEquals(size, Files.size(p));
                assertEquals(before, mem.regions().size(), change + " to node " + node + ": the region was freed");
            }
        }
        assertEquals(64L << 20, mem.stats().node(1).freeBytes(), "no device frame leaked");
    }

    /**
     * From a review: the check that the file is unchanged since its header was read ran after the load
     * had returned, and its failure freed the region with a plain free, which a view another thread
     * had opened on the listed region refused: the region stayed allocated. The check runs inside the
     * load now, and its failure frees the region as a failed load does, once that view closes.
     */
    @Test
    void aFileChangedSinceItsHeaderWhileAnotherThreadViewsTheRegionFailsAndFreesItOnceTheViewCloses() throws Exception {
        String a = "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
        Path p = write("viewed", a, 16);
        Files.setLastModifiedTime(p, java.nio.file.attribute.FileTime.fromMillis(System.currentTimeMillis() - 3_600_000));
        int before = mem.regions().size();
        java.util.concurrent.CountDownLatch opened = new java.util.concurrent.CountDownLatch(1);
        java.util.concurrent.atomic.AtomicReference<Throwable> viewer = new java.util.concurrent.atomic.AtomicReference<>();
        LoadOptions o = LoadOptions.defaults().withProgress((done, total) -> {
            if (done == total) {
                // another thread finds the region being loaded and keeps a view of it open a while
                dev.hetmem.Region r = mem.regions().getLast();
                Thread.ofPlatform().start(() -> {
                    try (HostView v = r.host(0, 8, Access.READ)) {
                        opened.countDown();
                        Thread.sleep(300);
                    } catch (Throwable t) {
                        viewer.set(t);
                        opened.countDown();
                    }
                });
                try {
                    assertTrue(opened.await(10, java.util.concurrent.TimeUnit.SECONDS));
                } catch (InterruptedException e) {
                    throw new AssertionError(e);
                }
            }
        });
        IOException e = assertThrows(IOException.class, () -> SafeTensors.load(mem, p, 0, o, () -> {
            try (FileChannel ch = FileChannel.open(p, java.nio.file.StandardOpenOption.WRITE)) {
                ch.write(ByteBuffer.wrap(new byte[] {1, 2, 3, 4}), 8 + a.length());   // in place, the data's first bytes
            } catch (IOException x) {
                throw new java.io.UncheckedIOException(x);
            }
        }));
        assertTrue(e.getMessage().contains("was written between reading its header and loading its data"), e.getMessage());
        assertEquals(null, viewer.get(), "the other thread's view");
        assertEquals(before, mem.regions().size(), "the region was freed once the view closed");
    }

    @Test
    void aRealLayoutFileLoadsElementByElementOnHostAndDevice() throws IOException {
        // tensors written in data order, several dtypes, a scalar and a zero-size tensor
        float[] f32 = {1.5f, -2.25f, 3e7f, 0f, Float.MIN_VALUE, -0f};
        short[] f16 = {0x3C00, (short) 0xC000, 0x7BFF};          // 1.0, -2.0, 65504
        short[] bf16 = {0x3F80, (short) 0xBF80};                  // 1.0, -1.0
        long[] i64 = {Long.MIN_VALUE, -1, 0, Long.MAX_VALUE};
        byte[] u8 = {0, 1, (byte) 255, 7, 8, 9, 10, 11, 12, 13, 14, 15};
        byte[] bools = {1, 0, 1};
        double scalar = Math.PI;
        ByteBuffer data = ByteBuffer.allocate(4 * 6 + 2 * 3 + 2 * 2 + 8 * 4 + 12 + 3 + 8).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : f32) data.putFloat(v);
        for (short v : f16) data.putShort(v);
        for (short v : bf16) data.putShort(v);
        for (long v : i64) data.putLong(v);
        data.put(u8);
        data.put(bools);
        data.putDouble(scalar);
        String header = "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"caf\\u00e9\"},"
                + "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                + "\"h\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[24,30]},"
                + "\"b\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[30,34]},"
                + "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[34,34]},"
                + "\"i\":{\"dtype\":\"I64\",\"shape\":[4],\"data_offsets\":[34,66]},"
                + "\"u\":{\"dtype\":\"U8\",\"shape\":[3,2,2],\"data_offsets\":[66,78]},"
                + "\"mask\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[78,81]},"
                + "\"pi\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[81,89]}}";
        // pad the header with spaces to 8-byte alignment, as writers do
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        int padded = (h.length + 7) & -8;
        byte[] hp = new byte[padded];
        System.arraycopy(h, 0, hp, 0, h.length);
        for (int i = h.length; i < padded; i++) hp[i] = ' ';
        Path p = write("real", padded, hp, data.array());
        for (int node : new int[] {0, 1}) {
            try (SafeTensors st = SafeTensors.load(mem, p, node)) {
                assertEquals("pt", st.metadata().get("format"));
                assertEquals("café", st.metadata().get("note"));
                assertEquals(8, st.tensors().size());
                assertEquals(node, st.loadResult().node());
                Tensor w = st.tensor("w");
                assertEquals(DType.F32, w.dtype());
                assertArrayEquals(new long[] {2, 3}, w.shape());
                assertEquals(8 + padded, w.offset());
                assertEquals(0, st.tensor("empty").length());
                assertEquals(1, st.tensor("pi").elements());
                assertEquals(0, st.tensor("pi").shape().length);
                try (HostView v = st.region().host(0, st.region().size(), Access.READ)) {
                    MemorySegment s = v.segment();
                    for (int k = 0; k < f32.length; k++) {
                        assertEquals(Float.floatToRawIntBits(f32[k]), s.get(ValueLayout.JAVA_INT_UNALIGNED, w.offset() + 4L * k));
                    }
                    for (int k = 0; k < f16.length; k++) {
                        assertEquals(f16[k], s.get(ValueLayout.JAVA_SHORT_UNALIGNED, st.tensor("h").offset() + 2L * k));
                    }
                    for (int k = 0; k < bf16.length; k++) {
                        assertEquals(bf16[k], s.get(ValueLayout.JAVA_SHORT_UNALIGNED, st.tensor("b").offset() + 2L * k));
                    }
                    for (int k = 0; k < i64.length; k++) {
                        assertEquals(i64[k], s.get(ValueLayout.JAVA_LONG_UNALIGNED, st.tensor("i").offset() + 8L * k));
                    }
                    for (int k = 0; k < u8.length; k++) {
                        assertEquals(u8[k], s.get(ValueLayout.JAVA_BYTE, st.tensor("u").offset() + k));
                    }
                    for (int k = 0; k < bools.length; k++) {
                        assertEquals(bools[k], s.get(ValueLayout.JAVA_BYTE, st.tensor("mask").offset() + k));
                    }
                    assertEquals(scalar, s.get(ValueLayout.JAVA_DOUBLE_UNALIGNED, st.tensor("pi").offset()));
                }
                assertThrows(IllegalArgumentException.class, () -> st.tensor("missing"));
            }
        }
    }

    @Test
    void aHeaderOfMillionsOfSmallNumbersParsesWithoutAnObjectPerNumber() throws IOException {
        // a valid header: one U8 tensor whose shape is four million ones (one element, one byte)
        int n = 4_000_000;
        StringBuilder json = new StringBuilder(2 * n + 100).append("{\"w\":{\"dtype\":\"U8\",\"shape\":[1");
        for (int i = 1; i < n; i++) {
            json.append(",1");
        }
        String text = json.append("],\"data_offsets\":[0,1]}}").toString();
        long before = allocatedByThisThread();
        SafeTensors.Header h = SafeTensors.parse(DIR.resolve("ones.safetensors"), text, text.length(), 8L + text.length() + 1);
        long allocated = allocatedByThisThread() - before;
        assertEquals(1, h.entries().size());
        assertEquals(1, h.dataBytes(), "four million ones multiply to one element");
        // the list of numbers and the shape's long[] are about 20 bytes a number; a substring and a
        // BigInteger per number were about 130 (a 100 MB header of them: gigabytes of heap)
        assertTrue(allocated < 40L * n, "parsing " + n + " numbers allocated " + allocated + " bytes");
    }

    /** The JVM's count of bytes this thread allocated (jdk.management, reached by reflection: the core module does not read it). */
    private static long allocatedByThisThread() {
        try {
            Object bean = Class.forName("java.lang.management.ManagementFactory").getMethod("getThreadMXBean").invoke(null);
            return (long) Class.forName("com.sun.management.ThreadMXBean").getMethod("getCurrentThreadAllocatedBytes").invoke(bean);
        } catch (ReflectiveOperationException e) {
            throw new AssertionError("this JVM does not count allocated bytes per thread", e);
        }
    }

    @Test
    void everyDtypeOfTheFormatIsKnown() {
        assertEquals(22, DType.values().length);
        // the FNUZ eight-bit floats the reference knows since v0.8.0
        assertEquals(8, DType.valueOf("F8_E4M3FNUZ").bits());
        assertEquals(8, DType.valueOf("F8_E5M2FNUZ").bits());
        assertEquals(4, DType.F4.bits());
        assertEquals(6, DType.F6_E2M3.bits());
        assertEquals(8, DType.F8_E8M0.bits());
        assertEquals(64, DType.C64.bits());
    }

    /** Where the reference (serde_json under safetensors) accepts or refuses, hetmem decides the same. */
    @Test
    void headersAreDecidedAsTheReferenceDecides() throws IOException {
        String ok = "\"t\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]";
        // refused: -0 is a float to the reference, \\u takes four hex digits, surrogates come in pairs
        refused(INVALID_HEADER_DESERIALIZATION, "shape[0] = -0", write("negzero",
                "{\"t\":{\"dtype\":\"U8\",\"shape\":[-0],\"data_offsets\":[0,0]}}", 0));
        refused(INVALID_HEADER_DESERIALIZATION, "bad \\u escape", write("plus", "{\"\\u+041\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4));
        refused(INVALID_HEADER_DESERIALIZATION, "lone leading surrogate", write("high", "{\"\\ud800\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4));
        refused(INVALID_HEADER_DESERIALIZATION, "lone trailing surrogate", write("low", "{\"\\udc00\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4));
        // accepted: null metadata, 127 levels of nesting, a long number where nothing reads it, FNUZ dtypes
        try (SafeTensors st = SafeTensors.load(mem, write("nullmeta", "{\"__metadata__\":null," + ok + "}}", 4), 0)) {
            assertEquals(Map.of(), st.metadata());
        }
        String deep = "[".repeat(125) + "]".repeat(125);   // with the header and the tensor: 127 levels
        try (SafeTensors st = SafeTensors.load(mem, write("deep127", "{" + ok + ",\"x\":" + deep + "}}", 4), 0)) {
            assertEquals(1, st.tensors().size());
        }
        refused(INVALID_HEADER_DESERIALIZATION, "nesting deeper than 127",
                write("deep128", "{" + ok + ",\"x\":[" + deep + "]}}", 4));
        try (SafeTensors st = SafeTensors.load(mem, write("longnum", "{" + ok + ",\"x\":" + "9".repeat(500) + "}}", 4), 0)) {
            assertEquals(1, st.tensors().size());
        }
        try (SafeTensors st = SafeTensors.load(mem, write("fnuz",
                "{\"a\":{\"dtype\":\"F8_E4M3FNUZ\",\"shape\":[2],\"data_offsets\":[0,2]},"
                        + "\"b\":{\"dtype\":\"F8_E5M2FNUZ\",\"shape\":[2],\"data_offsets\":[2,4]}}", 4), 0)) {
            assertEquals(DType.F8_E5M2FNUZ, st.tensor("b").dtype());
        }
        // kept refused although the reference lets the last one win: the format forbids duplicate names
        refused(INVALID_HEADER_DESERIALIZATION, "duplicate key", write("dup2", "{" + ok + "}," + ok + "}}", 4));
    }
}
