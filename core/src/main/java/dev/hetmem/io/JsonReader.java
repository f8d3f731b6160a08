package dev.hetmem.io;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A strict JSON (RFC 8259) reader for headers of untrusted files: objects become LinkedHashMaps,
 * arrays Lists, integers Longs (BigIntegers past 18 digits), other numbers BigDecimals ("-0" the
 * Double -0.0, and numbers of more than 400 characters a {@link LongNumber}). Nesting is limited
 * (no stack overflow on hostile input) and duplicate keys are refused (a header naming one tensor
 * twice is ambiguous). Errors say where.
 */
final class JsonReader {
    /** Nested arrays and objects allowed, the top-level one included: serde_json's recursion limit. */
    static final int MAX_DEPTH = 127;

    /**
     * A number too long to be worth converting (more than 400 characters): no shape or offset
     * can be one, and a header may still carry it where nothing reads it, as the reference allows.
     */
    record LongNumber(int length) {
        @Override
        public String toString() {
            return "a number of " + length + " characters";
        }
    }

    static final class JsonException extends Exception {
        JsonException(String message, int at) {
            super(message + " at character " + at);
        }
    }

    private final String s;
    private int i;

    private JsonReader(String s) {
        this.s = s;
    }

    static Object parse(String text) throws JsonException {
        JsonReader r = new JsonReader(text);
        r.skipSpace();
        Object v = r.value(0);
        r.skipSpace();
        if (r.i != text.length()) {
            throw new JsonException("trailing characters after the JSON value", r.i);
        }
        return v;
    }

    private Object value(int depth) throws JsonException {
        if (i >= s.length()) {
            throw new JsonException("unexpected end of input", i);
        }
        char c = s.charAt(i);
        if ((c == '{' || c == '[') && depth >= MAX_DEPTH) {
            throw new JsonException("nesting deeper than " + MAX_DEPTH, i);
        }
        return switch (c) {
            case '{' -> object(depth);
            case '[' -> array(depth);
            case '"' -> string();
            case 't' -> literal("true", Boolean.TRUE);
            case 'f' -> literal("false", Boolean.FALSE);
            case 'n' -> literal("null", null);
            default -> {
                if (c == '-' || (c >= '0' && c <= '9')) {
                    yield number();
                }
                throw new JsonException("unexpected character '" + c + "'", i);
            }
        };
    }

    private Map<String, Object> object(int depth) throws JsonException {
        i++;
        Map<String, Object> m = new LinkedHashMap<>();
        skipSpace();
        if (peek() == '}') {
            i++;
            return m;
        }
        while (true) {
            skipSpace();
            if (peek() != '"') {
                throw new JsonException("expected a string key", i);
            }
            int at = i;
            String key = string();
            skipSpace();
            expect(':');
            skipSpace();
            Object v = value(depth + 1);
            if (m.containsKey(key)) {
                throw new JsonException("duplicate key \"" + key + "\"", at);
            }
            m.put(key, v);
            skipSpace();
            char c = peek();
            i++;
            if (c == '}') {
                return m;
            }
            if (c != ',') {
                throw new JsonException("expected ',' or '}'", i - 1);
            }
        }
    }

    private List<Object> array(int depth) throws JsonException {
        i++;
        List<Object> l = new ArrayList<>();
        skipSpace();
        if (peek() == ']') {
            i++;
            return l;
        }
        while (true) {
            skipSpace();
            l.add(value(depth + 1));
            skipSpace();
            char c = peek();
            i++;
            if (c == ']') {
                return l;
            }
            if (c != ',') {
                throw new JsonException("expected ',' or ']'", i - 1);
            }
        }
    }

    private String string() throws JsonException {
        int start = i;
        i++;
        StringBuilder b = new StringBuilder();
        while (true) {
            if (i >= s.length()) {
                throw new JsonException("unterminated string", start);
            }
            char c = s.charAt(i++);
            if (c == '"') {
                return b.toString();
            }
            if (c < 0x20) {
                throw new JsonException("control character in a string", i - 1);
            }
            if (c != '\\') {
                b.append(c);
                continue;
            }
            if (i >= s.length()) {
                throw new JsonException("unterminated escape", i);
            }
            char e = s.charAt(i++);
            switch (e) {
                case '"' -> b.append('"');
                case '\\' -> b.append('\\');
                case '/' -> b.append('/');
                case 'b' -> b.append('\b');
                case 'f' -> b.append('\f');
                case 'n' -> b.append('\n');
                case 'r' -> b.append('\r');
                case 't' -> b.append('\t');
                case 'u' -> {
                    char u = hex4();
                    if (Character.isLowSurrogate(u)) {
                        throw new JsonException("lone trailing surrogate in \\u escape", i - 4);
                    }
                    if (Character.isHighSurrogate(u)) {
                        // a surrogate pair is two escapes; a high half alone is no character
                        if (i + 2 > s.length() || s.charAt(i) != '\\' || s.charAt(i + 1) != 'u') {
                            throw new JsonException("lone leading surrogate in \\u escape", i - 4);
                        }
                        i += 2;
                        char low = hex4();
                        if (!Character.isLowSurrogate(low)) {
                            throw new JsonException("lone leading surrogate in \\u escape", i - 10);
                        }
                        b.append(u).append(low);
                    } else {
                        b.append(u);
                    }
                }
                default -> throw new JsonException("bad escape '\\" + e + "'", i - 1);
            }
        }
    }

    /** Four hex digits, exactly (no sign, as Integer.parseInt would take). */
    private char hex4() throws JsonException {
        if (i + 4 > s.length()) {
            throw new JsonException("short \\u escape", i);
        }
        int v = 0;
        for (int k = 0; k < 4; k++) {
            int d = Character.digit(s.charAt(i + k), 16);
            if (d < 0 || s.charAt(i + k) > 'f') {
                throw new JsonException("bad \\u escape", i);
            }
            v = v << 4 | d;
        }
        i += 4;
        return (char) v;
    }

    private Object number() throws JsonException {
        int start = i;
        if (peek() == '-') {
            i++;
        }
        if (peek() == '0') {
            i++;
        } else if (peek() >= '1' && peek() <= '9') {
            while (peek() >= '0' && peek() <= '9') {
                i++;
            }
        } else {
            throw new JsonException("bad number", start);
        }
        boolean integer = true;
        if (peek() == '.') {
            integer = false;
            i++;
            if (!(peek() >= '0' && peek() <= '9')) {
                throw new JsonException("bad fraction", i);
            }
            while (peek() >= '0' && peek() <= '9') {
                i++;
            }
        }
        if (peek() == 'e' || peek() == 'E') {
            integer = false;
            i++;
            if (peek() == '+' || peek() == '-') {
                i++;
            }
            if (!(peek() >= '0' && peek() <= '9')) {
                throw new JsonException("bad exponent", i);
            }
            while (peek() >= '0' && peek() <= '9') {
                i++;
            }
        }
        boolean negative = s.charAt(start) == '-';
        if (integer && i - start - (negative ? 1 : 0) <= 18) {
            // any 18 digits fit a long: no substring and no BigInteger per number (a 100 MB header of
            // small numbers, a shape of millions of ones, took gigabytes so); small values are shared
            long v = 0;
            for (int k = negative ? start + 1 : start; k < i; k++) {
                v = v * 10 + (s.charAt(k) - '0');
            }
            if (negative && v == 0) {
                return -0.0;   // "-0" is a float to the reference (serde_json), so never an unsigned integer
            }
            return Long.valueOf(negative ? -v : v);
        }
        String t = s.substring(start, i);
        if (t.length() > 400) {
            return new LongNumber(t.length());
        }
        try {
            return integer ? new BigInteger(t) : new BigDecimal(t);
        } catch (NumberFormatException | ArithmeticException e) {
            // an exponent past what a number can hold (1e9999999999): out of range, as the reference says
            throw new JsonException("number " + (t.length() > 40 ? t.substring(0, 40) + "..." : t) + " out of range", start);
        }
    }

    private Object literal(String word, Object v) throws JsonException {
        if (!s.startsWith(word, i)) {
            throw new JsonException("unexpected token", i);
        }
        i += word.length();
        return v;
    }

    private char peek() {
        return i < s.length() ? s.charAt(i) : '\0';
    }

    private void expect(char c) throws JsonException {
        if (peek() != c) {
            throw new JsonException("expected '" + c + "'", i);
        }
        i++;
    }

    private void skipSpace() {
        while (i < s.length()) {
            char c = s.charAt(i);
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
                i++;
            } else {
                return;
            }
        }
    }
}
