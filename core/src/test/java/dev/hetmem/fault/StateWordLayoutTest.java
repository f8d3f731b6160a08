package dev.hetmem.fault;

import dev.hetmem.FaultServiceCounters;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The state-word layout, the sync kinds, the view bits and the counter order are defined once, in
 * the C header the fault service is built with; the Java side must read the same bits. This reads
 * the header and compares every value, so a change on one side only fails here, not in a lost store.
 */
class StateWordLayoutTest {
    private static final Pattern DEFINE = Pattern.compile("^#define\\s+(\\w+)\\s+(.+?)\\s*(/\\*.*)?$");

    private static Map<String, Long> header() throws IOException {
        // the core module's folder, or (the core suite run again by another module) its sibling
        Path h = Path.of("src/main/c/hetmem_uffd_layout.h");
        if (!Files.exists(h)) {
            h = Path.of("../core/src/main/c/hetmem_uffd_layout.h");
        }
        assertTrue(Files.isRegularFile(h), "the layout header is at " + h.toAbsolutePath());
        Map<String, Long> values = new HashMap<>();
        for (String line : Files.readAllLines(h)) {
            Matcher m = DEFINE.matcher(line.trim());
            if (m.matches() && !m.group(1).endsWith("_H")) {
                values.put(m.group(1), evaluate(m.group(2)));
            }
        }
        return values;
    }

    /** The header's values: decimal or hex literals with a ULL suffix, or ~literal, in parentheses. */
    private static long evaluate(String expr) {
        String e = expr.replace("(", "").replace(")", "").replace("ULL", "").trim();
        boolean not = e.startsWith("~");
        if (not) {
            e = e.substring(1);
        }
        long v = e.startsWith("0x") || e.startsWith("0X") ? Long.parseUnsignedLong(e.substring(2), 16) : Long.parseLong(e);
        return not ? ~v : v;
    }

    @Test
    void stateWordBitsAreTheHeaders() throws IOException {
        Map<String, Long> c = header();
        assertEquals(c.get("MAX_REGIONS"), (long) FaultService.MAX_REGIONS, "MAX_REGIONS");
        assertEquals(c.get("ST_LOCK"), HostMirror.LOCK, "LOCK");
        assertEquals(c.get("ST_KIND"), HostMirror.KIND, "KIND");
        assertEquals(c.get("K_HOST"), HostMirror.KIND_HOST, "KIND_HOST");
        assertEquals(c.get("K_AWAY"), HostMirror.KIND_AWAY, "KIND_AWAY");
        assertEquals(c.get("K_LEAVING"), HostMirror.KIND_LEAVING, "KIND_LEAVING");
        assertEquals(c.get("ST_RO"), HostMirror.READ_ONLY, "READ_ONLY");
        assertEquals(c.get("ST_STOLEN"), HostMirror.STOLEN, "STOLEN");
        assertEquals(c.get("ST_HELD"), HostMirror.HELD, "HELD");
        assertEquals(c.get("ST_MAPPED"), HostMirror.MAPPED, "MAPPED");
        assertEquals(c.get("ST_BUSY"), HostMirror.BUSY, "BUSY");
        assertEquals(c.get("ST_SRC"), HostMirror.SOURCE, "SOURCE");
        // the fields do not overlap and cover the word
        long[] fields = {HostMirror.LOCK, HostMirror.KIND, HostMirror.READ_ONLY, HostMirror.STOLEN, HostMirror.HELD,
                HostMirror.MAPPED, HostMirror.BUSY, HostMirror.SOURCE};
        long all = 0;
        for (long f : fields) {
            assertEquals(0, all & f, "field 0x" + Long.toHexString(f) + " overlaps another");
            all |= f;
        }
        assertEquals(-1L, all, "every bit of the state word belongs to a field");
    }

    @Test
    void syncKindsAndViewBitsAreTheHeaders() throws IOException {
        Map<String, Long> c = header();
        assertEquals(c.get("WANT_HOST"), HostMirror.Want.HOST.code);
        assertEquals(c.get("WANT_HOST_RO"), HostMirror.Want.HOST_READ_ONLY.code);
        assertEquals(c.get("WANT_AWAY"), HostMirror.Want.AWAY.code);
        assertEquals(c.get("WANT_EMPTY"), HostMirror.Want.EMPTY.code);
        assertEquals(c.get("WANT_DISCARD"), HostMirror.Want.DISCARD.code);
        assertEquals(c.get("WANT_LOADED"), HostMirror.Want.LOADED.code);
        assertEquals(c.get("WANT_HOST_RO_COPIED"), HostMirror.Want.HOST_READ_ONLY_COPIED.code);
        assertEquals(c.get("VIEW_MAPPED"), HostMirror.VIEW_MAPPED);
        assertEquals(c.get("VIEW_WRITE_PROTECTED"), HostMirror.VIEW_WRITE_PROTECTED);
    }

    @Test
    void countersComeInTheRecordsOrder() throws IOException {
        Map<String, Long> c = header();
        String[] names = {"C_FAULTS", "C_WP_FAULTS", "C_PAGES_COPIED", "C_PAGES_MAPPED", "C_ERRORS", "C_STOLEN"};
        var components = FaultServiceCounters.class.getRecordComponents();
        String[] expected = {"faults", "writeFaults", "pagesCopied", "pagesMapped", "errors", "stolen"};
        assertEquals(expected.length, components.length);
        for (int i = 0; i < names.length; i++) {
            assertEquals((long) i, c.get(names[i]), names[i]);
            assertEquals(expected[i], components[i].getName());
        }
        assertTrue(c.get("C_COUNT") >= names.length && c.get("C_COUNT") <= 8, "FaultService reads 8 counters");
    }
}
