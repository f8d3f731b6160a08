package dev.hetmem.device.opencl;

import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The {@code typedef}s of OpenCL C's scalar and vector types a program's source declares
 * ({@code typedef float real;}, {@code typedef unsigned int index_t;}, {@code typedef float4 vec;}),
 * so that a parameter whose type OpenCL names by the typedef ({@code clGetKernelArgInfo} reports
 * {@code real}) takes a Java value by the type it stands for. Read from the source text, not
 * compiled, and so only where the text says it for certain: a typedef at file scope, outside any
 * preprocessor conditional, not in a comment, and the only definition of its name in the source.
 * A name defined in a conditional ({@code #ifdef cl_khr_fp64}), inside braces, twice, by a macro or
 * as a struct is not resolved, and its parameter is refused as before, naming its type: a wrong
 * guess would pass a value of the wrong size, which PoCL does not check.
 */
final class SourceTypedefs {
    /** OpenCL C's built-in scalar and vector type names hetmem passes Java values as. */
    private static final Pattern BUILT_IN = Pattern.compile(
            "(char|uchar|short|ushort|int|uint|long|ulong|float|double)(2|3|4|8|16)?");
    /** {@code typedef [const] [unsigned] T NAME;}, on one line or several. */
    private static final Pattern TYPEDEF = Pattern.compile(
            "\\btypedef\\s+(?:const\\s+)?(unsigned\\s+)?([A-Za-z_][A-Za-z0-9_]*)\\s+([A-Za-z_][A-Za-z0-9_]*)\\s*;");
    /** Any typedef's name (its last word before the semicolon), to see every name defined, resolvable or not. */
    private static final Pattern ANY_TYPEDEF = Pattern.compile("\\btypedef\\b[^;]*?([A-Za-z_][A-Za-z0-9_]*)\\s*;");

    private SourceTypedefs() {
    }

    /** Each typedef'd name of {@code source} that certainly stands for a built-in type, with that type. */
    static Map<String, String> of(String source) {
        String text = withoutComments(source);
        boolean[] certain = fileScopeOutsideConditionals(text);
        Map<String, Integer> definitions = new HashMap<>();
        Set<String> uncertain = new HashSet<>();
        Matcher any = ANY_TYPEDEF.matcher(text);
        while (any.find()) {
            definitions.merge(any.group(1), 1, Integer::sum);
            if (!certain[any.start()]) {
                uncertain.add(any.group(1));
            }
        }
        Map<String, String> declared = new HashMap<>();
        Matcher m = TYPEDEF.matcher(text);
        while (m.find()) {
            String name = m.group(3);
            if (uncertain.contains(name) || definitions.getOrDefault(name, 0) != 1) {
                continue;
            }
            String type = m.group(2);
            if (m.group(1) != null) {
                type = switch (type) {
                    case "char", "short", "int", "long" -> "u" + type;
                    default -> null;   // unsigned float: not C; plain "unsigned": not resolved
                };
            }
            if (type != null) {
                declared.put(name, type);
            }
        }
        Map<String, String> out = new HashMap<>();
        for (Map.Entry<String, String> d : declared.entrySet()) {
            String t = d.getValue();
            // a typedef of a typedef: followed a few steps (a cycle, which C refuses, ends it)
            for (int step = 0; step < 8 && t != null && !BUILT_IN.matcher(t).matches(); step++) {
                t = declared.get(t);
            }
            if (t != null && BUILT_IN.matcher(t).matches()) {
                out.put(d.getKey(), t);
            }
        }
        return Map.copyOf(out);
    }

    /** The source with its comments blanked out (same length, so positions stay). */
    static String withoutComments(String s) {
        StringBuilder b = new StringBuilder(s);
        int i = 0;
        while (i < s.length()) {
            if (s.startsWith("//", i)) {
                while (i < s.length() && s.charAt(i) != '\n') {
                    b.setCharAt(i++, ' ');
                }
            } else if (s.startsWith("/*", i)) {
                int end = s.indexOf("*/", i + 2);
                end = end < 0 ? s.length() : end + 2;
                for (; i < end; i++) {
                    if (s.charAt(i) != '\n') {
                        b.setCharAt(i, ' ');
                    }
                }
            } else {
                i++;
            }
        }
        return b.toString();
    }

    /** For each position of {@code text}: outside braces and outside every #if/#ifdef/#ifndef block. */
    private static boolean[] fileScopeOutsideConditionals(String text) {
        boolean[] out = new boolean[text.length() + 1];
        int braces = 0;
        int conditionals = 0;
        boolean lineStart = true;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (lineStart) {
                String rest = text.substring(i, Math.min(text.length(), i + 64)).stripLeading();
                if (rest.startsWith("#")) {
                    String directive = rest.substring(1).stripLeading();
                    if (directive.startsWith("if")) {
                        conditionals++;
                    } else if (directive.startsWith("endif")) {
                        conditionals = Math.max(0, conditionals - 1);
                    }
                }
            }
            braces += c == '{' ? 1 : c == '}' ? -1 : 0;
            out[i] = braces <= 0 && conditionals == 0;
            lineStart = c == '\n';
        }
        return out;
    }
}
