package io.paystream.bench;

import java.util.Collection;
import java.util.Locale;
import java.util.Map;

/** The little JSON this harness reads (one string field of a response) and writes (results.json). */
final class Json {

    private Json() {
    }

    /** The value of a top-level string field such as "id" or "code", or null. Enough for the API's responses. */
    static String field(String json, String name) {
        if (json == null) {
            return null;
        }
        String needle = "\"" + name + "\":\"";
        int start = json.indexOf(needle);
        if (start < 0) {
            needle = "\"" + name + "\" : \"";
            start = json.indexOf(needle);
            if (start < 0) {
                return null;
            }
        }
        start += needle.length();
        int end = json.indexOf('"', start);
        return end < 0 ? null : json.substring(start, end);
    }

    static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }

    /** Writes maps, collections, strings, numbers, booleans and null, indented. */
    static String write(Object value) {
        StringBuilder b = new StringBuilder();
        write(b, value, 0);
        return b.append('\n').toString();
    }

    private static void write(StringBuilder b, Object v, int indent) {
        if (v == null) {
            b.append("null");
        } else if (v instanceof String s) {
            b.append(quote(s));
        } else if (v instanceof Double d) {
            b.append(d.isNaN() || d.isInfinite() ? "null" : String.format(Locale.ROOT, "%.3f", d));
        } else if (v instanceof Number || v instanceof Boolean) {
            b.append(v);
        } else if (v instanceof Map<?, ?> m) {
            if (m.isEmpty()) {
                b.append("{}");
                return;
            }
            b.append("{\n");
            int i = 0;
            for (Map.Entry<?, ?> e : m.entrySet()) {
                b.append("  ".repeat(indent + 1)).append(quote(String.valueOf(e.getKey()))).append(": ");
                write(b, e.getValue(), indent + 1);
                b.append(++i < m.size() ? ",\n" : "\n");
            }
            b.append("  ".repeat(indent)).append('}');
        } else if (v instanceof Collection<?> c) {
            if (c.isEmpty()) {
                b.append("[]");
                return;
            }
            b.append("[\n");
            int i = 0;
            for (Object o : c) {
                b.append("  ".repeat(indent + 1));
                write(b, o, indent + 1);
                b.append(++i < c.size() ? ",\n" : "\n");
            }
            b.append("  ".repeat(indent)).append(']');
        } else {
            b.append(quote(v.toString()));
        }
    }
}
