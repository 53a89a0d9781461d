package io.paystream.deploy;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/** JSON 6902 {@code replace}, {@code add} and {@code remove} on a YAML tree, with RFC 6901 pointers. */
final class JsonPointer {

    private JsonPointer() {
    }

    @SuppressWarnings("unchecked")
    static void apply(Map<String, Object> document, Map<String, Object> operation, Path file) {
        String op = (String) operation.get("op");
        String path = (String) operation.get("path");
        if (op == null || path == null || !path.startsWith("/")) {
            throw new IllegalStateException(file + ": an operation needs `op` and a `path` starting with /: " + operation);
        }
        String[] tokens = path.substring(1).split("/", -1);
        Object parent = document;
        for (int i = 0; i < tokens.length - 1; i++) {
            parent = child(parent, unescape(tokens[i]), file, path);
        }
        String last = unescape(tokens[tokens.length - 1]);
        switch (op) {
            case "replace" -> {
                child(parent, last, file, path); // must exist
                set(parent, last, operation.get("value"), false);
            }
            case "add" -> set(parent, last, operation.get("value"), true);
            case "remove" -> {
                child(parent, last, file, path);
                if (parent instanceof Map<?, ?> map) {
                    map.remove(last);
                }
                else {
                    ((List<Object>) parent).remove(Integer.parseInt(last));
                }
            }
            default -> throw new IllegalStateException(file + ": operation `" + op + "` is not supported by this"
                    + " test's renderer (replace, add, remove are)");
        }
    }

    private static Object child(Object node, String token, Path file, String path) {
        Object found = null;
        if (node instanceof Map<?, ?> map) {
            found = map.get(token);
        }
        else if (node instanceof List<?> list && token.matches("\\d+") && Integer.parseInt(token) < list.size()) {
            found = list.get(Integer.parseInt(token));
        }
        if (found == null) {
            throw new IllegalStateException(file + ": " + path + " does not exist in the patched resource");
        }
        return found;
    }

    @SuppressWarnings("unchecked")
    private static void set(Object parent, String token, Object value, boolean insert) {
        if (parent instanceof Map<?, ?> map) {
            ((Map<String, Object>) map).put(token, value);
        }
        else {
            List<Object> list = (List<Object>) parent;
            if (insert) {
                list.add("-".equals(token) ? list.size() : Integer.parseInt(token), value);
            }
            else {
                list.set(Integer.parseInt(token), value);
            }
        }
    }

    private static String unescape(String token) {
        return token.replace("~1", "/").replace("~0", "~");
    }
}
