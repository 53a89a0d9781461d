package io.paystream.deploy;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import org.junit.jupiter.api.condition.EnabledIf;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Where the real Kustomize is installed ({@code kustomize}, or {@code kubectl kustomize}), it renders base and
 * overlays exactly like the test's own renderer does, so the checks in {@link KubernetesManifestsTests} hold for
 * what {@code kubectl apply -k} would apply. Skipped where neither is on the PATH.
 */
@EnabledIf("kustomizeAvailable")
class KustomizeCrossCheckTests {

    /** Kustomize renders these few files in well under a second; a hung process fails the test instead. */
    private static final long TIMEOUT_SECONDS = 60;

    static boolean kustomizeAvailable() {
        return command().isPresent();
    }

    static Stream<Path> kustomizations() {
        return KubernetesManifestsTests.kustomizations();
    }

    @ParameterizedTest
    @MethodSource("kustomizations")
    void kustomizeRendersWhatTheTestsCheck(Path dir) throws Exception {
        List<String> command = new java.util.ArrayList<>(command().orElseThrow());
        command.add(dir.toString());
        Path output = Files.createTempFile("kustomize", ".yaml");
        try {
            Process process = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(output.toFile()).start();
            if (!process.waitFor(TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
                process.destroyForcibly();
                throw new AssertionError(String.join(" ", command) + " did not finish in " + TIMEOUT_SECONDS + "s");
            }
            String rendered = Files.readString(output, StandardCharsets.UTF_8);
            assertThat(process.exitValue()).as(String.join(" ", command) + ":\n" + rendered).isZero();

            Map<String, Object> expected = byIdentity(Kustomize.parseAll(rendered));
            Map<String, Object> actual = byIdentity(List.copyOf(Kustomize.render(dir)));
            assertThat(actual.keySet()).as(dir + ": the resources").containsExactlyElementsOf(expected.keySet());
            for (String id : expected.keySet()) {
                assertThat(actual.get(id)).as(dir + ": " + id + " as the test renders it, against Kustomize")
                        .isEqualTo(expected.get(id));
            }
        }
        finally {
            Files.deleteIfExists(output);
        }
    }

    private static Map<String, Object> byIdentity(List<Object> resources) {
        Map<String, Object> byId = new TreeMap<>();
        for (Object resource : resources) {
            Map<String, Object> r = Kustomize.asMap(resource, "rendered resource");
            Map<String, Object> metadata = Kustomize.metadata(r);
            String id = r.get("apiVersion") + " " + r.get("kind") + " " + metadata.get("namespace") + "/" + metadata.get("name");
            assertThat(byId.put(id, r)).as("rendered twice: " + id).isNull();
        }
        return byId;
    }

    private static Optional<List<String>> command() {
        if (onPath("kustomize").isPresent()) {
            return Optional.of(List.of(onPath("kustomize").get().toString(), "build"));
        }
        return onPath("kubectl").map(kubectl -> List.of(kubectl.toString(), "kustomize"));
    }

    private static Optional<Path> onPath(String name) {
        String path = System.getenv("PATH");
        if (path == null) {
            return Optional.empty();
        }
        for (String dir : path.split(File.pathSeparator)) {
            Path candidate = Path.of(dir, name);
            if (Files.isExecutable(candidate)) {
                return Optional.of(candidate);
            }
        }
        return Optional.empty();
    }
}
