package dev.hetmem.io;

import dev.hetmem.Region;
import dev.hetmem.UnifiedMemory;
import dev.hetmem.loader.FileIdentity;

import java.io.IOException;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

import static dev.hetmem.io.SafeTensorsException.Kind.*;

/**
 * A safetensors model file loaded into a region: 8 bytes of little-endian header length, a UTF-8
 * JSON header naming each tensor's dtype, shape and data offsets, then the data. The header is read
 * and validated first, with the reference implementation's rules, so a bad file costs no data I/O;
 * then the whole file is loaded (overlapped direct I/O, to the host or straight to a device) and
 * each tensor is a slice of the region.
 *
 * <p>Headers are decided as the reference (safetensors on serde_json) decides them: "-0" is not
 * an unsigned integer, a backslash-u escape takes exactly four hex digits and surrogates only in
 * pairs, {@code "__metadata__": null} means no metadata, nesting goes to 127 levels, numbers of
 * any length are read where nothing uses them, and the FNUZ eight-bit floats are known. The
 * differences: a header that names a tensor twice is refused (the reference keeps the last), on
 * purpose, because the format's documentation forbids duplicate names and either reading of such a
 * file would be a guess; a key repeated anywhere else (in the metadata, in a tensor's entry) is
 * refused too, where the reference keeps the last metadata value; a dimension must fit 63 bits and
 * the shape's product is checked as it goes in 63 bits (the reference: 64 unsigned), so a shape such
 * as [2^62, 2, 0], whose product is 0, is refused as an overflow; and a number beyond a double's
 * range where nothing reads it is accepted (serde_json refuses it).
 *
 * <p>Closing frees the region.
 */
public final class SafeTensors implements AutoCloseable {
    /** The reference implementation's limit on the header: 100,000,000 bytes of JSON. */
    public static final long MAX_HEADER_BYTES = 100_000_000L;

    private final Region region;
    private final Map<String, String> metadata;
    private final List<Tensor> tensors;
    private final Map<String, Tensor> byName;
    private final LoadResult load;

    private SafeTensors(Region region, Map<String, String> metadata, List<Tensor> tensors, LoadResult load) {
        this.region = region;
        this.metadata = metadata;
        this.tensors = tensors;
        this.load = load;
        Map<String, Tensor> m = new LinkedHashMap<>();
        for (Tensor t : tensors) {
            m.put(t.name(), t);
        }
        this.byName = Collections.unmodifiableMap(m);
    }

    /**
     * Loads a safetensors file to {@code node} with {@link LoadOptions#defaults()}; see
     * {@link #load(UnifiedMemory, Path, int, LoadOptions)}.
     *
     * @param mem the memory to allocate the file's region in
     * @param path the file
     * @param node the node to load to: 0 for the host, 1..n for a device
     * @return the loaded file, whose tensors are slices of one new region
     * @throws SafeTensorsException if the header breaks a rule of the format (nothing is then loaded)
     * @throws IOException if the file is missing, unreadable or not a regular file, its read fails,
     *         or it changes during the load
     * @throws IllegalArgumentException if {@code node} is not a node of {@code mem}
     */
    public static SafeTensors load(UnifiedMemory mem, Path path, int node) throws IOException {
        return load(mem, path, node, LoadOptions.defaults());
    }

    /**
     * Loads a safetensors file to {@code node}: reads and validates the header, then loads the
     * whole file, header included, into one new region with {@link UnifiedMemory#load} and makes
     * each tensor a slice of it. On any failure no region is left allocated.
     *
     * @param mem the memory to allocate the file's region in
     * @param path the file
     * @param node the node to load to: 0 for the host, 1..n for a device
     * @param options how the file is read
     * @return the loaded file; closing it frees its region
     * @throws SafeTensorsException if the header breaks a rule of the format (nothing is then
     *         loaded); {@link SafeTensorsException#kind()} says which
     * @throws IOException if the file is missing, unreadable or not a regular file, its read fails,
     *         or it changes between reading the header and loading the data
     * @throws IllegalArgumentException if {@code node} is not a node of {@code mem}
     * @throws NullPointerException if {@code mem}, {@code path} or {@code options} is null
     */
    public static SafeTensors load(UnifiedMemory mem, Path path, int node, LoadOptions options) throws IOException {
        return load(mem, path, node, options, () -> { });
    }

    /**
     * As {@link #load(UnifiedMemory, Path, int, LoadOptions)}, running {@code afterHeader} between
     * reading the header and loading the file (a test's way into that window).
     */
    static SafeTensors load(UnifiedMemory mem, Path path, int node, LoadOptions options, Runnable afterHeader)
            throws IOException {
        // before the header is read (up to 100 MB): a bad argument is named as itself, not after a parse
        // (or as the header's own fault)
        Objects.requireNonNull(mem, "mem");
        Objects.requireNonNull(path, "path");
        Objects.requireNonNull(options, "options");
        mem.node(node);
        // the header and the data are read through separate opens: the file as it was before the header
        // was read must still be there, unchanged, once the load has read the data (the load checks its
        // own start against its end; a file replaced between the header and the load's start is caught
        // here, even one of the same size whose tensors the header would then misdescribe). Checked
        // inside the load, by its last progress report (every byte read by then), so that a failure
        // frees the region as any failed load does, waiting for views other threads opened on it
        FileIdentity identity = java.nio.file.Files.exists(path) ? FileIdentity.of(path) : null;
        Header h = readHeader(path);
        afterHeader.run();
        UnchangedSinceHeader check = identity == null ? null : new UnchangedSinceHeader(path, identity, options.progress());
        LoadResult r;
        try {
            r = mem.load(path, node, check == null ? options : options.withProgress(check));
        } catch (RuntimeException e) {
            for (Throwable c = e; c != null; c = c.getCause()) {
                if (c instanceof UnchangedSinceHeader.Changed changed) {
                    throw changed.getCause();   // its wrappers add nothing (and hold it: no suppressed cycle)
                }
            }
            throw e;
        }
        try {
            if (check != null && !check.checked) {
                check.check();   // no last report came (none is promised for every scheme): checked now
            }
            long dataStart = 8 + h.headerBytes;
            if (r.bytes() != dataStart + h.dataBytes) {
                throw new IOException(path + " changed between reading its header and loading it: " + r.bytes()
                        + " bytes loaded, header describes " + (dataStart + h.dataBytes));
            }
            List<Tensor> ts = new ArrayList<>();
            for (Entry e : h.entries) {
                ts.add(new Tensor(e.name, e.dtype, e.shape, r.region(), dataStart + e.begin, e.end - e.begin));
            }
            return new SafeTensors(r.region(), h.metadata, List.copyOf(ts), r);
        } catch (IOException | RuntimeException | Error e) {
            try {
                r.region().close();   // freed already by another thread's free: as wanted
            } catch (RuntimeException cleanup) {
                // the memory is closing (it frees the region itself): the load's own failure is the news
                e.addSuppressed(cleanup);
            }
            throw e;
        }
    }

    /**
     * The caller's progress listener, and then, at the report of the last byte, the check that the
     * file is still the one whose header was read ({@link FileIdentity}), unchanged; its failure
     * leaves the load as {@link Changed}.
     */
    private static final class UnchangedSinceHeader implements LoadProgress {
        private final Path path;
        private final FileIdentity identity;
        private final LoadProgress caller;
        private volatile boolean checked;

        UnchangedSinceHeader(Path path, FileIdentity identity, LoadProgress caller) {
            this.path = path;
            this.identity = identity;
            this.caller = caller;
        }

        @Override
        public void progress(long bytesDone, long bytesTotal) {
            if (caller != null) {
                caller.progress(bytesDone, bytesTotal);
            }
            if (bytesDone == bytesTotal) {
                try {
                    check();
                } catch (IOException e) {
                    throw new Changed(e);
                }
            }
        }

        void check() throws IOException {
            identity.checkUnchanged(path, "between reading its header and loading its data", "when its header was read",
                    "when its data had been read");
            checked = true;
        }

        /** The check's failure on its way through the load. */
        static final class Changed extends java.io.UncheckedIOException {
            Changed(IOException cause) {
                super(cause);
            }
        }
    }

    /**
     * Returns the region that holds the whole file: the 8-byte length, the header, then the data.
     * It is freed by {@link #close()}.
     *
     * @return the file's region
     */
    public Region region() {
        return region;
    }

    /**
     * The tensors in data order.
     *
     * @return an unmodifiable list of every tensor of the file, empty if it has none
     */
    public List<Tensor> tensors() {
        return tensors;
    }

    /**
     * Returns the tensor named {@code name} in the header.
     *
     * @param name the tensor's name
     * @return the tensor of that name
     * @throws IllegalArgumentException if the file has no tensor of that name
     */
    public Tensor tensor(String name) {
        Tensor t = byName.get(name);
        if (t == null) {
            throw new IllegalArgumentException("no tensor named \"" + name + "\" (the file has " + tensors.size() + ")");
        }
        return t;
    }

    /**
     * The header's {@code __metadata__}, empty when it has none.
     *
     * @return an unmodifiable map of the metadata's string keys to string values, in header order
     */
    public Map<String, String> metadata() {
        return metadata;
    }

    /**
     * Returns how the file was loaded: time taken, bytes, whether direct I/O was used, and the
     * host memory the load used besides the region.
     *
     * @return the result of the load behind this file
     */
    public LoadResult loadResult() {
        return load;
    }

    @Override
    public void close() {
        region.close();   // a free by another thread meanwhile is no failure of this close
    }

    // ---- the header -------------------------------------------------------------------------

    private record Entry(String name, DType dtype, long[] shape, long begin, long end) {}

    /** A validated header: its length, metadata, tensors in data order, and the data length it describes. */
    record Header(long headerBytes, Map<String, String> metadata, List<Entry> entries, long dataBytes) {}

    /** Reads and validates the header as the reference implementation does. */
    static Header readHeader(Path path) throws IOException {
        if (java.nio.file.Files.exists(path) && !java.nio.file.Files.isRegularFile(path)) {
            // never open a FIFO (the open would wait for a writer) or a device
            throw new IOException(path + " is not a regular file (a FIFO, device, socket or directory); "
                    + "only regular files can be loaded");
        }
        FileChannel opened;
        try {
            opened = FileChannel.open(path, StandardOpenOption.READ);
        } catch (java.nio.file.FileSystemException e) {
            throw dev.hetmem.loader.FileErrors.explained(e, path);
        }
        try (FileChannel ch = opened) {
            long fileBytes = ch.size();
            if (fileBytes < 8) {
                throw new SafeTensorsException(HEADER_TOO_SMALL, path + " has " + fileBytes
                        + " bytes, fewer than the 8 of a safetensors header length");
            }
            ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(path, ch, len, 0);
            long n = len.getLong(0);
            if (n < 0 || n > MAX_HEADER_BYTES) {
                throw new SafeTensorsException(HEADER_TOO_LARGE, path + ": header length "
                        + Long.toUnsignedString(n) + " is over the limit of " + MAX_HEADER_BYTES + " bytes");
            }
            if (8 + n > fileBytes) {
                throw new SafeTensorsException(INVALID_HEADER_LENGTH, path + ": header length " + n
                        + " runs past the end of the file (" + fileBytes + " bytes, header would end at " + (8 + n) + ")");
            }
            ByteBuffer raw = ByteBuffer.allocate((int) n);
            readFully(path, ch, raw, 8);
            raw.flip();
            String text;
            try {
                text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT).decode(raw).toString();
            } catch (CharacterCodingException e) {
                throw new SafeTensorsException(INVALID_HEADER, path + ": the " + n + "-byte header is not valid UTF-8: "
                        + firstMalformed(raw.rewind()));
            }
            return parse(path, text, n, fileBytes);
        }
    }

    /** Where the first sequence that is not UTF-8 lies in {@code raw}, and its bytes, in words (raw holds one). */
    private static String firstMalformed(ByteBuffer raw) {
        java.nio.charset.CharsetDecoder d = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
        java.nio.CharBuffer out = java.nio.CharBuffer.allocate(4096);
        while (true) {
            java.nio.charset.CoderResult r = d.decode(raw, out, true);
            if (r.isError()) {
                int at = raw.position();
                StringBuilder bytes = new StringBuilder();
                for (int i = 0; i < r.length(); i++) {
                    bytes.append(i == 0 ? "" : " ").append(String.format(java.util.Locale.ROOT, "0x%02x", raw.get(at + i) & 0xff));
                }
                // the header starts after the file's 8-byte length
                return "byte " + bytes + " at header offset " + at + " (file offset " + (8L + at) + ")";
            }
            if (r.isUnderflow()) {
                return "a byte the decoder refused";   // not reached: raw holds one, and the end is input's end
            }
            out.clear();   // overflow: go on with room again
        }
    }

    private static void readFully(Path path, FileChannel ch, ByteBuffer b, long at) throws IOException {
        long pos = at;
        while (b.hasRemaining()) {
            int r = ch.read(b, pos);
            if (r < 0) {
                throw new IOException(path + ": the file ended at byte " + pos + " while its header was read (it "
                        + "ends at byte " + (at + b.limit()) + "): it shrank while it was opened");
            }
            pos += r;
        }
    }

    static Header parse(Path path, String text, long headerBytes, long fileBytes) throws SafeTensorsException {
        Object root;
        try {
            root = JsonReader.parse(text);
        } catch (JsonReader.JsonException e) {
            throw new SafeTensorsException(INVALID_HEADER_DESERIALIZATION, path + ": header is not valid JSON: " + e.getMessage());
        }
        if (!(root instanceof Map<?, ?> map)) {
            throw new SafeTensorsException(INVALID_HEADER_START, path + ": header is not a JSON object");
        }
        Map<String, String> metadata = Map.of();
        List<Entry> entries = new ArrayList<>();
        for (Map.Entry<?, ?> e : map.entrySet()) {
            String name = (String) e.getKey();
            if (name.equals("__metadata__")) {
                // null means none, as the reference reads an absent or null map
                metadata = e.getValue() == null ? Map.of() : metadata(path, e.getValue());
                continue;
            }
            entries.add(entry(path, name, e.getValue()));
        }
        entries.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
        long start = 0;
        for (Entry t : entries) {
            if (t.begin != start || t.end < t.begin) {
                throw new SafeTensorsException(INVALID_OFFSET, path + ": tensor \"" + t.name + "\" has data_offsets ["
                        + t.begin + ", " + t.end + "] but the previous tensor ends at " + start
                        + (t.begin > start ? " (a hole)" : t.begin < start ? " (overlap)" : " (end before begin)"));
            }
            start = t.end;
            long elements = 1;
            for (long d : t.shape) {
                elements = multiply(path, t.name, elements, d);
            }
            long bits = multiply(path, t.name, elements, t.dtype.bits());
            if (bits % 8 != 0) {
                throw new SafeTensorsException(MISALIGNED_SLICE, path + ": tensor \"" + t.name + "\" of " + elements
                        + " " + t.dtype + " elements is " + bits + " bits, not a whole number of bytes");
            }
            if (bits / 8 != t.end - t.begin) {
                throw new SafeTensorsException(TENSOR_INVALID_INFO, path + ": tensor \"" + t.name + "\" has shape "
                        + Tensor.shapeText(t.shape) + " of " + t.dtype + " = " + bits / 8
                        + " bytes, but data_offsets [" + t.begin + ", " + t.end + "] hold " + (t.end - t.begin));
            }
        }
        long dataBytes = fileBytes - 8 - headerBytes;
        if (start != dataBytes) {
            throw new SafeTensorsException(METADATA_INCOMPLETE_BUFFER, path + ": tensors cover " + start
                    + " bytes of data but the file has " + dataBytes + " after its header");
        }
        return new Header(headerBytes, metadata, List.copyOf(entries), dataBytes);
    }

    private static long multiply(Path path, String name, long a, long b) throws SafeTensorsException {
        try {
            return Math.multiplyExact(a, b);
        } catch (ArithmeticException e) {
            throw new SafeTensorsException(VALIDATION_OVERFLOW, path + ": tensor \"" + name
                    + "\": shape product times element size overflows 64 bits (" + a + " x " + b + ")");
        }
    }

    private static Map<String, String> metadata(Path path, Object v) throws SafeTensorsException {
        if (!(v instanceof Map<?, ?> m)) {
            throw new SafeTensorsException(INVALID_METADATA, path + ": __metadata__ is not an object of strings");
        }
        Map<String, String> out = new LinkedHashMap<>();
        for (Map.Entry<?, ?> e : m.entrySet()) {
            if (!(e.getValue() instanceof String s)) {
                throw new SafeTensorsException(INVALID_METADATA, path + ": __metadata__ value of \"" + e.getKey()
                        + "\" is not a string");
            }
            out.put((String) e.getKey(), s);
        }
        return Collections.unmodifiableMap(out);
    }

    private static Entry entry(Path path, String name, Object v) throws SafeTensorsException {
        if (!(v instanceof Map<?, ?> m)) {
            throw new SafeTensorsException(INVALID_HEADER_DESERIALIZATION, path + ": tensor \"" + name + "\" is not an object");
        }
        Object dt = m.get("dtype");
        if (!(dt instanceof String dts)) {
            throw new SafeTensorsException(INVALID_HEADER_DESERIALIZATION, path + ": tensor \"" + name + "\" has no string dtype");
        }
        DType dtype;
        try {
            dtype = DType.valueOf(dts);
        } catch (IllegalArgumentException e) {
            throw new SafeTensorsException(UNKNOWN_DTYPE, path + ": tensor \"" + name + "\" has unknown dtype \"" + dts
                    + "\" (known: " + java.util.Arrays.toString(DType.values()) + ")");
        }
        long[] shape = longs(path, name, "shape", m.get("shape"), -1);
        long[] offsets = longs(path, name, "data_offsets", m.get("data_offsets"), 2);
        return new Entry(name, dtype, shape, offsets[0], offsets[1]);
    }

    private static final BigInteger MAX = BigInteger.valueOf(Long.MAX_VALUE);

    private static long[] longs(Path path, String name, String field, Object v, int count) throws SafeTensorsException {
        if (!(v instanceof List<?> l) || (count >= 0 && l.size() != count)) {
            throw new SafeTensorsException(INVALID_HEADER_DESERIALIZATION, path + ": tensor \"" + name + "\" field "
                    + field + " is not " + (count >= 0 ? "an array of " + count + " integers" : "an array of integers"));
        }
        long[] out = new long[l.size()];
        for (int i = 0; i < out.length; i++) {
            Object o = l.get(i);
            // the reader's integers are Longs up to 18 digits, BigIntegers past them
            boolean negative = o instanceof Long n ? n < 0 : o instanceof BigInteger b && b.signum() < 0;
            if (!(o instanceof Long || o instanceof BigInteger) || negative) {
                throw new SafeTensorsException(INVALID_HEADER_DESERIALIZATION, path + ": tensor \"" + name + "\" field "
                        + field + "[" + i + "] = " + o + " is not a non-negative integer");
            }
            if (o instanceof BigInteger b && b.compareTo(MAX) > 0) {
                throw new SafeTensorsException(VALIDATION_OVERFLOW, path + ": tensor \"" + name + "\" field "
                        + field + "[" + i + "] = " + b + " does not fit 63 bits");
            }
            out[i] = ((Number) o).longValue();
        }
        return out;
    }
}
