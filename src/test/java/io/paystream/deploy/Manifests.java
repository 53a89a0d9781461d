package io.paystream.deploy;

import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;

import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.EnvFromSource;
import io.fabric8.kubernetes.api.model.EnvVar;
import io.fabric8.kubernetes.api.model.GenericKubernetesResource;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.KubernetesResource;
import io.fabric8.kubernetes.api.model.LabelSelector;
import io.fabric8.kubernetes.client.utils.KubernetesSerialization;

/** A rendered set of manifests as Kubernetes model objects (fabric8), with the look-ups the checks need. */
record Manifests(String source, List<HasMetadata> resources) {

    static final KubernetesSerialization SERIALIZATION = new KubernetesSerialization();

    /** Bounds the walk over a model object graph for fields the model does not know. */
    private static final int MAX_WALK_DEPTH = 40;

    static Manifests render(Path dir) {
        List<HasMetadata> typed = new ArrayList<>();
        for (Map<String, Object> resource : Kustomize.render(dir)) {
            typed.add(toModel(resource, dir.toString()));
        }
        return new Manifests(dir.toString(), List.copyOf(typed));
    }

    static HasMetadata toModel(Map<String, Object> tree, String where) {
        Object parsed = SERIALIZATION.unmarshal(SERIALIZATION.asJson(tree), KubernetesResource.class);
        if (!(parsed instanceof HasMetadata resource)) {
            throw new IllegalStateException(where + ": not a Kubernetes object: " + tree);
        }
        List<String> unknown = new ArrayList<>();
        unknownFields(resource, resource.getKind(), unknown, new IdentityHashMap<>(), 0);
        if (!unknown.isEmpty()) {
            throw new IllegalStateException(where + ": " + resource.getKind() + "/" + resource.getMetadata().getName()
                    + " has fields the Kubernetes model does not know (a typo?): " + unknown);
        }
        return resource;
    }

    /** Fields that landed in a model object's additionalProperties: not part of that object's schema. */
    private static void unknownFields(Object node, String path, List<String> found, Map<Object, Boolean> seen, int depth) {
        if (node == null || depth > MAX_WALK_DEPTH || node instanceof GenericKubernetesResource
                || node instanceof String || node instanceof Number || node instanceof Boolean || node instanceof Enum<?>
                || seen.put(node, Boolean.TRUE) != null) {
            return;
        }
        if (node instanceof Collection<?> items) {
            int i = 0;
            for (Object item : items) {
                unknownFields(item, path + "[" + i++ + "]", found, seen, depth + 1);
            }
            return;
        }
        if (node instanceof Map<?, ?> map) {
            for (Map.Entry<?, ?> e : map.entrySet()) {
                unknownFields(e.getValue(), path + "." + e.getKey(), found, seen, depth + 1);
            }
            return;
        }
        if (!node.getClass().getPackageName().startsWith("io.fabric8.kubernetes.api.model")) {
            return;
        }
        for (Method getter : node.getClass().getMethods()) {
            if (getter.getParameterCount() != 0 || Modifier.isStatic(getter.getModifiers())
                    || !getter.getName().startsWith("get") || getter.getName().equals("getClass")) {
                continue;
            }
            Object value;
            try {
                value = getter.invoke(node);
            }
            catch (ReflectiveOperationException e) {
                throw new IllegalStateException(e);
            }
            if (getter.getName().equals("getAdditionalProperties")) {
                if (value instanceof Map<?, ?> extra && !extra.isEmpty()) {
                    extra.keySet().forEach(key -> found.add(path + "." + key));
                }
                continue;
            }
            String field = Character.toLowerCase(getter.getName().charAt(3)) + getter.getName().substring(4);
            unknownFields(value, path + "." + field, found, seen, depth + 1);
        }
    }

    <T extends HasMetadata> List<T> all(Class<T> type) {
        return resources.stream().filter(type::isInstance).map(type::cast).toList();
    }

    List<GenericKubernetesResource> custom(String apiVersion, String kind) {
        return all(GenericKubernetesResource.class).stream()
                .filter(r -> apiVersion.equals(r.getApiVersion()) && kind.equals(r.getKind()))
                .toList();
    }

    <T extends HasMetadata> T one(Class<T> type) {
        List<T> found = all(type);
        if (found.size() != 1) {
            throw new AssertionError(source + ": expected exactly one " + type.getSimpleName() + ", found " + found.size());
        }
        return found.get(0);
    }

    <T extends HasMetadata> Optional<T> named(Class<T> type, String name) {
        return all(type).stream().filter(r -> name.equals(r.getMetadata().getName())).findFirst();
    }

    /**
     * The value a container sees for an environment variable: its own {@code env} (a literal value), else a
     * ConfigMap it takes whole with {@code envFrom}; empty when neither sets it (the application default applies).
     */
    Optional<String> environment(Container container, String name) {
        for (EnvVar env : container.getEnv()) {
            if (name.equals(env.getName())) {
                if (env.getValueFrom() != null) {
                    throw new AssertionError(source + ": " + name + " comes from " + env.getValueFrom()
                            + ", which these checks cannot read");
                }
                return Optional.ofNullable(env.getValue());
            }
        }
        String found = null;
        for (EnvFromSource from : container.getEnvFrom()) {
            if (from.getConfigMapRef() != null) {
                ConfigMap map = named(ConfigMap.class, from.getConfigMapRef().getName())
                        .orElseThrow(() -> new AssertionError(source + ": container " + container.getName()
                                + " takes its environment from ConfigMap " + from.getConfigMapRef().getName()
                                + ", which is not in the manifests"));
                String prefix = Objects.requireNonNullElse(from.getPrefix(), "");
                for (Map.Entry<String, String> e : map.getData().entrySet()) {
                    if (name.equals(prefix + e.getKey())) {
                        found = e.getValue(); // a later source wins, as in Kubernetes
                    }
                }
            }
        }
        return Optional.ofNullable(found);
    }

    /** Does the selector (matchLabels only: the manifests use nothing else) select pods with these labels? */
    static boolean selects(LabelSelector selector, Map<String, String> labels) {
        if (selector == null) {
            return false;
        }
        if (selector.getMatchExpressions() != null && !selector.getMatchExpressions().isEmpty()) {
            throw new AssertionError("matchExpressions are not evaluated by these checks: " + selector);
        }
        Map<String, String> match = selector.getMatchLabels() == null ? Map.of() : selector.getMatchLabels();
        return match.entrySet().stream().allMatch(e -> e.getValue().equals(labels.get(e.getKey())));
    }

    static boolean isEmpty(LabelSelector selector) {
        return selector != null && (selector.getMatchLabels() == null || selector.getMatchLabels().isEmpty())
                && (selector.getMatchExpressions() == null || selector.getMatchExpressions().isEmpty());
    }

}
