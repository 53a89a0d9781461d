package io.paystream.deploy;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.constructor.SafeConstructor;

/**
 * Renders a Kustomize directory the way {@code kubectl kustomize} does, for the few features k8s/ uses, and refuses
 * anything else so that what it renders is never silently different: {@code resources} (files and directories),
 * {@code patches} from files (a strategic merge patch without lists, which is then exactly a JSON merge patch, or a
 * JSON 6902 patch with a {@code target}), {@code images} and {@code namespace}.
 */
final class Kustomize {

    /** Kinds that have no namespace; everything else (custom resources too) gets the kustomization's namespace. */
    private static final Set<String> CLUSTER_SCOPED = Set.of("Namespace", "ClusterRole", "ClusterRoleBinding",
            "CustomResourceDefinition", "PriorityClass", "StorageClass", "PersistentVolume", "IngressClass");

    private static final Set<String> SUPPORTED_FIELDS = Set.of("apiVersion", "kind", "namespace", "resources",
            "patches", "images");

    /** Bounds the nesting of bases (and so a cycle between them). */
    private static final int MAX_DEPTH = 8;

    private Kustomize() {
    }

    /** The resources of the kustomization in {@code dir}, as plain YAML trees, transformed. */
    static List<Map<String, Object>> render(Path dir) {
        return render(dir.toAbsolutePath().normalize(), 0);
    }

    /** Every file a kustomization in {@code dir} (and in the bases it names) reads, the kustomization files too. */
    static Set<Path> filesRead(Path dir) {
        Set<Path> files = new LinkedHashSet<>();
        collectFiles(dir.toAbsolutePath().normalize(), files, 0);
        return files;
    }

    static Map<String, Object> kustomization(Path dir) {
        Path file = dir.resolve("kustomization.yaml");
        if (!Files.isRegularFile(file)) {
            throw new IllegalStateException(dir + " has no kustomization.yaml");
        }
        Map<String, Object> k = asMap(loadOne(file), file.toString());
        if (!"Kustomization".equals(k.get("kind"))) {
            throw new IllegalStateException(file + ": kind must be Kustomization");
        }
        for (String field : k.keySet()) {
            if (!SUPPORTED_FIELDS.contains(field)) {
                throw new IllegalStateException(file + " uses `" + field + "`, which this test's renderer does not"
                        + " implement (supported: " + SUPPORTED_FIELDS + "); extend Kustomize.java first");
            }
        }
        return k;
    }

    static List<Object> loadAll(Path file) {
        try {
            return parseAll(Files.readString(file));
        }
        catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static List<Object> parseAll(String text) {
        List<Object> documents = new ArrayList<>();
        for (Object document : yaml().loadAll(text)) {
            if (document != null) {
                documents.add(document);
            }
        }
        return documents;
    }

    static Object loadOne(Path file) {
        List<Object> documents = loadAll(file);
        if (documents.size() != 1) {
            throw new IllegalStateException(file + " must hold exactly one YAML document, has " + documents.size());
        }
        return documents.get(0);
    }

    private static Yaml yaml() {
        return new Yaml(new SafeConstructor(new LoaderOptions()));
    }

    private static List<Map<String, Object>> render(Path dir, int depth) {
        if (depth > MAX_DEPTH) {
            throw new IllegalStateException("kustomizations nested deeper than " + MAX_DEPTH + " at " + dir);
        }
        Map<String, Object> k = kustomization(dir);
        List<Map<String, Object>> resources = new ArrayList<>();
        for (String entry : strings(k.get("resources"), dir + " resources")) {
            Path path = dir.resolve(entry).normalize();
            if (Files.isDirectory(path)) {
                resources.addAll(render(path, depth + 1));
            }
            else if (Files.isRegularFile(path)) {
                for (Object document : loadAll(path)) {
                    resources.add(asMap(document, path.toString()));
                }
            }
            else {
                throw new IllegalStateException(dir + "/kustomization.yaml names a resource that does not exist: " + entry);
            }
        }
        for (Map<String, Object> patch : maps(k.get("patches"), dir + " patches")) {
            applyPatch(dir, patch, resources);
        }
        for (Map<String, Object> image : maps(k.get("images"), dir + " images")) {
            int changed = 0;
            for (Map<String, Object> resource : resources) {
                changed += setImages(resource, image);
            }
            if (changed == 0) {
                throw new IllegalStateException(dir + "/kustomization.yaml sets image " + image.get("name")
                        + ", which no container uses");
            }
        }
        if (k.get("namespace") instanceof String namespace) {
            for (Map<String, Object> resource : resources) {
                if (!CLUSTER_SCOPED.contains(resource.get("kind"))) {
                    metadata(resource).put("namespace", namespace);
                }
            }
        }
        return resources;
    }

    private static void collectFiles(Path dir, Set<Path> files, int depth) {
        if (depth > MAX_DEPTH) {
            throw new IllegalStateException("kustomizations nested deeper than " + MAX_DEPTH + " at " + dir);
        }
        Map<String, Object> k = kustomization(dir);
        files.add(dir.resolve("kustomization.yaml"));
        for (String entry : strings(k.get("resources"), dir + " resources")) {
            Path path = dir.resolve(entry).normalize();
            if (Files.isDirectory(path)) {
                collectFiles(path, files, depth + 1);
            }
            else {
                files.add(path);
            }
        }
        for (Map<String, Object> patch : maps(k.get("patches"), dir + " patches")) {
            if (patch.get("path") instanceof String path) {
                files.add(dir.resolve(path).normalize());
            }
        }
    }

    private static void applyPatch(Path dir, Map<String, Object> entry, List<Map<String, Object>> resources) {
        if (!(entry.get("path") instanceof String path) || entry.containsKey("patch")) {
            throw new IllegalStateException(dir + ": only patches from a file (`path:`) are supported: " + entry);
        }
        Path file = dir.resolve(path).normalize();
        if (!Files.isRegularFile(file)) {
            throw new IllegalStateException(dir + "/kustomization.yaml names a patch that does not exist: " + path);
        }
        Object patch = loadOne(file);
        Map<String, Object> target = entry.get("target") == null ? null : asMap(entry.get("target"), file + " target");
        if (patch instanceof List<?> operations) {
            if (target == null) {
                throw new IllegalStateException(file + " is a JSON 6902 patch: its entry needs a target");
            }
            Map<String, Object> resource = find(resources, (String) target.get("kind"), (String) target.get("name"), file);
            for (Object operation : operations) {
                JsonPointer.apply(resource, asMap(operation, file + " operation"), file);
            }
            return;
        }
        Map<String, Object> merge = asMap(patch, file.toString());
        String listAt = firstList(merge, "");
        if (listAt != null) {
            throw new IllegalStateException(file + " has a list at " + listAt + ": a strategic merge patch merges"
                    + " lists by key, which this test's renderer does not; use a JSON 6902 patch for lists");
        }
        String kind = (String) merge.get("kind");
        String name = (String) metadata(merge).get("name");
        if (target != null && (!Objects.equals(target.get("kind"), kind) || !Objects.equals(target.get("name"), name))) {
            throw new IllegalStateException(file + ": its target differs from the object it patches");
        }
        Map<String, Object> resource = find(resources, kind, name, file);
        if (!Objects.equals(resource.get("apiVersion"), merge.get("apiVersion"))) {
            throw new IllegalStateException(file + ": apiVersion " + merge.get("apiVersion") + " but the resource has "
                    + resource.get("apiVersion"));
        }
        mergePatch(resource, merge);
    }

    private static Map<String, Object> find(List<Map<String, Object>> resources, String kind, String name, Path patch) {
        List<Map<String, Object>> found = resources.stream()
                .filter(r -> Objects.equals(r.get("kind"), kind) && Objects.equals(metadata(r).get("name"), name))
                .toList();
        if (found.size() != 1) {
            throw new IllegalStateException(patch + " patches " + kind + "/" + name + ", which the resources hold "
                    + found.size() + " times (must be exactly once)");
        }
        return found.get(0);
    }

    /** RFC 7386: maps merge, null removes, anything else replaces. */
    @SuppressWarnings("unchecked")
    private static void mergePatch(Map<String, Object> target, Map<String, Object> patch) {
        for (Map.Entry<String, Object> e : patch.entrySet()) {
            if (e.getKey().startsWith("$")) {
                throw new IllegalStateException("strategic merge directive " + e.getKey() + " is not supported");
            }
            if (e.getValue() == null) {
                target.remove(e.getKey());
            }
            else if (e.getValue() instanceof Map<?, ?> value && target.get(e.getKey()) instanceof Map<?, ?> existing) {
                mergePatch((Map<String, Object>) existing, (Map<String, Object>) value);
            }
            else {
                target.put(e.getKey(), e.getValue());
            }
        }
    }

    @SuppressWarnings("unchecked")
    private static String firstList(Object node, String at) {
        if (node instanceof List<?>) {
            return at.isEmpty() ? "/" : at;
        }
        if (node instanceof Map<?, ?> map) {
            for (Map.Entry<String, Object> e : ((Map<String, Object>) map).entrySet()) {
                String found = firstList(e.getValue(), at + "/" + e.getKey());
                if (found != null) {
                    return found;
                }
            }
        }
        return null;
    }

    /** Kustomize's image transformer, for pod templates (and bare pods): the images of that name get the new ones. */
    @SuppressWarnings("unchecked")
    private static int setImages(Map<String, Object> resource, Map<String, Object> image) {
        Object spec = resource.get("spec");
        if (!(spec instanceof Map<?, ?>)) {
            return 0;
        }
        Map<String, Object> podSpec = (Map<String, Object>) spec;
        if (podSpec.get("template") instanceof Map<?, ?> template
                && ((Map<String, Object>) template).get("spec") instanceof Map<?, ?> templateSpec) {
            podSpec = (Map<String, Object>) templateSpec;
        }
        int changed = 0;
        for (String field : List.of("containers", "initContainers")) {
            if (podSpec.get(field) instanceof List<?> containers) {
                for (Object c : containers) {
                    Map<String, Object> container = (Map<String, Object>) c;
                    String current = (String) container.get("image");
                    ImageReference ref = ImageReference.parse(current);
                    if (ref.name().equals(image.get("name"))) {
                        String name = image.get("newName") instanceof String n ? n : ref.name();
                        String result = name;
                        if (image.get("digest") instanceof String digest) {
                            result += "@" + digest;
                        }
                        else if (image.get("newTag") != null) {
                            result += ":" + image.get("newTag");
                        }
                        else if (ref.tag() != null) {
                            result += ":" + ref.tag();
                        }
                        container.put("image", result);
                        changed++;
                    }
                }
            }
        }
        return changed;
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> metadata(Map<String, Object> resource) {
        return (Map<String, Object>) resource.computeIfAbsent("metadata", key -> new LinkedHashMap<String, Object>());
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> asMap(Object node, String where) {
        if (node instanceof Map<?, ?> map) {
            return (Map<String, Object>) map;
        }
        throw new IllegalStateException(where + ": expected a mapping, found " + node);
    }

    private static List<String> strings(Object node, String where) {
        if (node == null) {
            return List.of();
        }
        if (node instanceof List<?> list && list.stream().allMatch(String.class::isInstance)) {
            return list.stream().map(String.class::cast).toList();
        }
        throw new IllegalStateException(where + ": expected a list of strings, found " + node);
    }

    private static List<Map<String, Object>> maps(Object node, String where) {
        if (node == null) {
            return List.of();
        }
        if (node instanceof List<?> list) {
            return list.stream().map(item -> asMap(item, where)).toList();
        }
        throw new IllegalStateException(where + ": expected a list, found " + node);
    }
}
