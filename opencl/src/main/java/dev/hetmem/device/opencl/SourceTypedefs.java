package dev.hetmem.device.opencl;

import java.util.HashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The {@code typedef}s of OpenCL C's scalar and vector types a program's source declares
 * ({@code typedef float real;}, {@code typedef unsigned int index_t;}, {@code typedef float4 vec;}),
 * so that a parameter whose type OpenCL names by the typedef ({@code clGetKernelArgInfo} reports
 * {@code real}) takes a Java value by the type it stands for. Read from the source text, not
 * compiled: a typedef made by a macro, inside a conditional, or of a struct is not seen, and such a
 * parameter is refused as before, naming its type.
 */
final class SourceTypedefs {
    /** OpenCL C's built-in scalar and vector type names hetmem passes Java values as. */
    private static final Pattern BUILT_IN = Pattern.compile(
            "(char|uchar|short|ushort|int|uint|long|ulong|float|double)(2|3|4|8|16)?");
    /** {@code typedef [const] [unsigned] T NAME;}, on one line or several. */
    private static final Pattern TYPEDEF = Pattern.compile(
            "\\btypedef\\s+(?:const\\s+)?(unsigned\\s+)?([A-Za-z_][A-Za-z0-9_]*)\\s+([A-Za-z_][A-Za-z0-9_]*)\\s*;");

    private SourceTypedefs() {
    }

    /** Each typedef'd name of {@code source} that stands for a built-in type, with that type. */
    static Map<String, String> of(String source) {
        Map<String, String> declared = new HashMap<>();
        Matcher m = TYPEDEF.matcher(source);
        while (m.find()) {
            String type = m.group(2);
            if (m.group(1) != null) {
                type = switch (type) {
                    case "char", "short", "int", "long" -> "u" + type;
                    default -> null;   // unsigned float: not C
                };
            }
            if (type != null) {
                declared.put(m.group(3), type);
            }
        }
        Map<String, String> out = new HashMap<>();
        for (String name : declared.keySet()) {
            String t = declared.get(name);
            // a typedef of a typedef: followed a few steps (a cycle, which C refuses, ends it)
            for (int step = 0; step < 8 && t != null && !BUILT_IN.matcher(t).matches(); step++) {
                t = declared.get(t);
            }
            if (t != null && BUILT_IN.matcher(t).matches()) {
                out.put(name, t);
            }
        }
        return Map.copyOf(out);
    }
}
