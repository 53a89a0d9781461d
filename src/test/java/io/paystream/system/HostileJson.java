package io.paystream.system;

import java.util.ArrayList;
import java.util.List;

/**
 * A tiny JSON model for {@link HostileInputPropertyTests}: request bodies are built as trees of raw
 * JSON text so the fuzz can produce what no JSON library would write (duplicate keys, wrong types,
 * numbers of any spelling, escapes of lone surrogates), then rendered to bytes exactly.
 */
final class HostileJson {

    private HostileJson() {
    }

    sealed interface Node permits Raw, Obj, Arr {
    }

    /** Any JSON text, valid or not, used verbatim. */
    record Raw(String json) implements Node {
    }

    /** An object; fields keep their order and may repeat a name (that is the point). */
    record Obj(List<Field> fields) implements Node {

        Obj {
            fields = List.copyOf(fields);
        }

        Node get(String name) {
            for (Field f : fields) {
                if (f.name().equals(name)) {
                    return f.value();
                }
            }
            return null;
        }

        /** A copy with the (first) field of that name set, or added at the end. */
        Obj with(String name, Node value) {
            List<Field> copy = new ArrayList<>(fields);
            for (int i = 0; i < copy.size(); i++) {
                if (copy.get(i).name().equals(name)) {
                    copy.set(i, new Field(name, value));
                    return new Obj(copy);
                }
            }
            copy.add(new Field(name, value));
            return new Obj(copy);
        }

        Obj without(String name) {
            List<Field> copy = new ArrayList<>();
            for (Field f : fields) {
                if (!f.name().equals(name)) {
                    copy.add(f);
                }
            }
            return new Obj(copy);
        }

        /** A copy with one more field, even if the name is taken already. */
        Obj plus(String name, Node value) {
            List<Field> copy = new ArrayList<>(fields);
            copy.add(new Field(name, value));
            return new Obj(copy);
        }
    }

    record Field(String name, Node value) {
    }

    record Arr(List<Node> items) implements Node {

        Arr {
            items = List.copyOf(items);
        }
    }

    static Raw raw(String json) {
        return new Raw(json);
    }

    static Raw str(String value) {
        return new Raw(quote(value, false));
    }

    static Obj obj(Field... fields) {
        return new Obj(List.of(fields));
    }

    static Field field(String name, Node value) {
        return new Field(name, value);
    }

    static Arr arr(Node... items) {
        return new Arr(List.of(items));
    }

    /** A path into a body: field names and array indexes. */
    static Node at(Node root, List<Object> path) {
        Node node = root;
        for (Object step : path) {
            if (node instanceof Obj o && step instanceof String name) {
                node = o.get(name);
            } else if (node instanceof Arr a && step instanceof Integer i && i < a.items().size()) {
                node = a.items().get(i);
            } else {
                return null;
            }
        }
        return node;
    }

    /** A copy of root with the node at path replaced (value null: the field removed). */
    static Node set(Node root, List<Object> path, Node value) {
        if (path.isEmpty()) {
            return value;
        }
        Object step = path.get(0);
        List<Object> rest = path.subList(1, path.size());
        if (root instanceof Obj o && step instanceof String name) {
            if (rest.isEmpty()) {
                return value == null ? o.without(name) : o.with(name, value);
            }
            return o.with(name, set(o.get(name), rest, value));
        }
        if (root instanceof Arr a && step instanceof Integer i) {
            List<Node> items = new ArrayList<>(a.items());
            items.set(i, set(items.get(i), rest, value));
            return new Arr(items);
        }
        throw new IllegalArgumentException("no " + path + " in " + render(root));
    }

    /** A copy of root where the object at path gets one more field (a duplicate or an unknown one). */
    static Node addField(Node root, List<Object> objectPath, String name, Node value) {
        Node target = at(root, objectPath);
        if (!(target instanceof Obj o)) {
            throw new IllegalArgumentException("no object at " + objectPath);
        }
        return set(root, objectPath, o.plus(name, value));
    }

    static String render(Node node) {
        StringBuilder out = new StringBuilder();
        render(node, out);
        return out.toString();
    }

    private static void render(Node node, StringBuilder out) {
        if (node instanceof Raw r) {
            out.append(r.json());
        } else if (node instanceof Obj o) {
            out.append('{');
            for (int i = 0; i < o.fields().size(); i++) {
                if (i > 0) {
                    out.append(',');
                }
                out.append(quote(o.fields().get(i).name(), false)).append(':');
                render(o.fields().get(i).value(), out);
            }
            out.append('}');
        } else if (node instanceof Arr a) {
            out.append('[');
            for (int i = 0; i < a.items().size(); i++) {
                if (i > 0) {
                    out.append(',');
                }
                render(a.items().get(i), out);
            }
            out.append(']');
        }
    }

    private static final char[] HEX = "0123456789abcdef".toCharArray();

    private static void escape(char c, StringBuilder out) {
        out.append("\\u").append(HEX[c >> 12]).append(HEX[(c >> 8) & 0xF]).append(HEX[(c >> 4) & 0xF]).append(HEX[c & 0xF]);
    }

    /**
     * A JSON string literal whose decoded value is exactly {@code value}. Control characters and unpaired
     * surrogates are always escaped (an unpaired surrogate has no UTF-8 form: written raw it would become
     * '?' and the test would no longer know what it sent); with {@code escapeAll} every non-ASCII
     * character is escaped too, otherwise it goes as raw UTF-8.
     */
    static String quote(String value, boolean escapeAll) {
        StringBuilder out = new StringBuilder(value.length() + 2).append('"');
        for (int i = 0; i < value.length(); i++) {
            char c = value.charAt(i);
            boolean paired = Character.isHighSurrogate(c) && i + 1 < value.length() && Character.isLowSurrogate(value.charAt(i + 1));
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20 || c == 0x7F || (escapeAll && c > 0x7E) || (Character.isSurrogate(c) && !paired)) {
                escape(c, out);
            } else if (paired) {
                out.append(c).append(value.charAt(++i));
            } else {
                out.append(c);
            }
        }
        return out.append('"').toString();
    }
}
