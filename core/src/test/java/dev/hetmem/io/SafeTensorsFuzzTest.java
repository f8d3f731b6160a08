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
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A seeded mutator of valid safetensors files for a fixed budget: bit flips, truncation, length
 * lies, huge numbers, deep nesting, bad UTF-8 and escapes, shape and offset overflows. Only
 * {@link SafeTensorsException} or {@link IOException} may come out, nothing may be left
 * allocated, and every accepted file's bytes must be exact in the region.
 */
class SafeTensorsFuzzTest {
    static final long BUDGET_MS = Long.getLong("hetmem.fuzz.millis", 5_000);
    static final Path DIR = Path.of("target", "safetensors-fuzz").toAbsolutePath();
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

    private static final String[] DTYPES = {"F32", "F16", "BF16", "U8", "I64", "F8_E4M3FNUZ", "BOOL", "F4"};

    /** A valid file: a few tensors of random dtypes and shapes, random data, sometimes metadata. */
    static byte[] validFile(Random rnd) {
        StringBuilder h = new StringBuilder("{");
        if (rnd.nextBoolean()) {
            h.append("\"__metadata__\":{\"format\":\"pt\",\"n\\u00e9\":\"\\ud83d\\ude00\"},");
        }
        int tensors = 1 + rnd.nextInt(4);
        long at = 0;
        for (int t = 0; t < tensors; t++) {
            String dt = DTYPES[rnd.nextInt(DTYPES.length)];
            int bits = switch (dt) {
                case "F32" -> 32;
                case "F16", "BF16" -> 16;
                case "I64" -> 64;
                case "F4" -> 4;
                default -> 8;
            };
            int n = 2 * (1 + rnd.nextInt(300));
            long bytes = (long) n * bits / 8;
            h.append(t == 0 ? "" : ",").append("\"t").append(t).append("\":{\"dtype\":\"").append(dt)
                    .append("\",\"shape\":[").append(n / 2).append(",2],\"data_offsets\":[").append(at).append(',')
                    .append(at + bytes).append("]}");
            at += bytes;
        }
        h.append('}');
        byte[] header = h.toString().getBytes(StandardCharsets.UTF_8);
        byte[] data = new byte[(int) at];
        rnd.nextBytes(data);
        return file(header.length, header, data);
    }

    static byte[] file(long declared, byte[] header, byte[] data) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(declared).array());
        out.writeBytes(header);
        out.writeBytes(data);
        return out.toByteArray();
    }

    /** One mutation of a valid file. */
    static byte[] mutate(byte[] f, Random rnd) {
        long headerLen = f.length < 8 ? -1 : ByteBuffer.wrap(f, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        if (headerLen < 0 || headerLen > f.length - 8 || f.length < 9) {
            // already broken past its header: only flip bits or cut
            byte[] g = Arrays.copyOf(f, Math.max(1, f.length));
            g[rnd.nextInt(g.length)] ^= (byte) (1 << rnd.nextInt(8));
            return rnd.nextBoolean() ? g : Arrays.copyOf(g, rnd.nextInt(g.length + 1));
        }
        String header = new String(f, 8, (int) headerLen, StandardCharsets.UTF_8);
        byte[] data = Arrays.copyOfRange(f, (int) (8 + headerLen), f.length);
        switch (rnd.nextInt(12)) {
            case 0 -> {   // bit flips anywhere
                byte[] g = f.clone();
                for (int k = 1 + rnd.nextInt(4); k > 0; k--) {
                    int i = rnd.nextInt(g.length);
                    g[i] ^= (byte) (1 << rnd.nextInt(8));
                }
                return g;
            }
            case 1 -> {   // truncation
                return Arrays.copyOf(f, rnd.nextInt(Math.max(1, f.length)));
            }
            case 2 -> {   // the length lies
                long[] lies = {headerLen + 1, headerLen - 1, 0, -1, Long.MAX_VALUE, 100_000_001L, f.length, 1L << 40};
                byte[] g = f.clone();
                ByteBuffer.wrap(g, 0, 8).order(ByteOrder.LITTLE_ENDIAN).putLong(lies[rnd.nextInt(lies.length)]);
                return g;
            }
            case 3 -> {   // huge numbers in shapes and offsets
                String[] huge = {"18446744073709551616", "9223372036854775808", "1e9999999999", "-0", "-1", "1.5",
                        "4294967296", "9".repeat(500), "0.".concat("0".repeat(450)).concat("1")};
                String g = header.replaceFirst("\\[(\\d+),", "[" + huge[rnd.nextInt(huge.length)] + ",");
                return withHeader(g, data);
            }
            case 4 -> {   // deep nesting as an unknown field
                int depth = 100 + rnd.nextInt(60);
                String g = header.replaceFirst("\\{\"dtype\"", "{\"x\":" + "[".repeat(depth) + "]".repeat(depth) + ",\"dtype\"");
                return withHeader(g, data);
            }
            case 5 -> {   // bad UTF-8
                byte[] hb = header.getBytes(StandardCharsets.UTF_8);
                if (hb.length < 2) {
                    return f;
                }
                int i = 1 + rnd.nextInt(hb.length - 1);
                hb[i] = (byte) new int[] {0xC3, 0xFF, 0x80, 0xED, 0xF8}[rnd.nextInt(5)];
                return file(hb.length, hb, data);
            }
            case 6 -> {   // bad escapes and lone surrogates in a name
                String[] esc = {"\\u+041", "\\ud800", "\\udc00", "\\ud800\\u0041", "\\x41", "\\u00", "\\u12G4", "\\"};
                String g = header.replaceFirst("\"t", "\"" + esc[rnd.nextInt(esc.length)] + "t");
                return withHeader(g, data);
            }
            case 7 -> {   // shape overflow
                String g = header.replaceFirst("\"shape\":\\[", "\"shape\":[4294967296,4294967296,");
                return withHeader(g, data);
            }
            case 8 -> {   // offsets moved
                String g = header.replaceFirst("\"data_offsets\":\\[(\\d+),(\\d+)\\]",
                        "\"data_offsets\":[$1," + rnd.nextInt(1 << 20) + "]");
                return withHeader(g, data);
            }
            case 9 -> {   // a duplicated tensor name
                String g = header.replaceFirst("\"t\\d\"", "\"t0\"");
                return withHeader(g, data);
            }
            case 10 -> {   // metadata of the wrong shape, or null (valid)
                String[] meta = {"null", "[]", "{\"a\":1}", "{\"a\":null}", "\"x\""};
                String g = header.replaceFirst("\\{", "{\"__metadata__\":" + meta[rnd.nextInt(meta.length)] + ",");
                if (g.contains("\"__metadata__\":{\"format\"") && !g.startsWith("{\"__metadata__\":{\"format\"")) {
                    return withHeader(header, data);
                }
                return withHeader(g, data);
            }
            default -> {   // data shorter or longer than described
                return withHeader(header, Arrays.copyOf(data, Math.max(0, data.length + rnd.nextInt(9) - 4)));
            }
        }
    }

    static byte[] withHeader(String header, byte[] data) {
        byte[] hb = header.getBytes(StandardCharsets.UTF_8);
        return file(hb.length, hb, data);
    }

    @Test
    void onlyFormatErrorsComeOutAndAcceptedBytesAreExact() throws IOException {
        Random rnd = new Random(20261203);
        long end = System.nanoTime() + BUDGET_MS * 1_000_000L;
        int files = 0;
        int accepted = 0;
        int regions = mem.regions().size();
        Path p = DIR.resolve("fuzz.safetensors");
        while (System.nanoTime() < end || files < 200) {
            byte[] f = validFile(rnd);
            int mutations = rnd.nextInt(3);
            for (int m = 0; m < mutations; m++) {
                f = mutate(f, rnd);
            }
            Files.write(p, f);
            files++;
            SafeTensors st;
            try {
                st = SafeTensors.load(mem, p, rnd.nextInt(2));
            } catch (IOException expected) {   // SafeTensorsException is one
                assertEquals(regions, mem.regions().size(), "a refused file left a region behind");
                continue;
            } catch (Throwable t) {
                throw new AssertionError("file " + files + " (" + mutations + " mutations, seed 20261203) threw "
                        + t + "; first bytes " + new String(f, 0, Math.min(f.length, 300), StandardCharsets.ISO_8859_1), t);
            }
            try (st) {
                accepted++;
                byte[] got = new byte[f.length];
                try (HostView v = st.region().host(0, f.length, Access.READ)) {
                    MemorySegment.copy(v.segment(), ValueLayout.JAVA_BYTE, 0, got, 0, f.length);
                }
                assertTrue(Arrays.equals(got, f), "file " + files + ": the loaded bytes differ from the file's");
            }
        }
        System.out.println("safetensors fuzz: " + files + " files, " + accepted + " accepted");
        assertTrue(accepted > 0 && accepted < files, accepted + " of " + files + " accepted: the mutator is not reaching both sides");
    }
}
