package io.paystream.deploy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;

import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.xpath.XPathFactory;

import io.fabric8.kubernetes.api.model.Capabilities;
import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.ContainerPort;
import io.fabric8.kubernetes.api.model.EnvVar;
import io.fabric8.kubernetes.api.model.GenericKubernetesResource;
import io.fabric8.kubernetes.api.model.HTTPGetAction;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.IntOrString;
import io.fabric8.kubernetes.api.model.PodSecurityContext;
import io.fabric8.kubernetes.api.model.PodSpec;
import io.fabric8.kubernetes.api.model.Probe;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.api.model.ResourceRequirements;
import io.fabric8.kubernetes.api.model.SecurityContext;
import io.fabric8.kubernetes.api.model.Service;
import io.fabric8.kubernetes.api.model.ServicePort;
import io.fabric8.kubernetes.api.model.ServiceAccount;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import io.fabric8.kubernetes.api.model.apps.RollingUpdateDeployment;
import io.fabric8.kubernetes.api.model.autoscaling.v2.HorizontalPodAutoscaler;
import io.fabric8.kubernetes.api.model.networking.v1.Ingress;
import io.fabric8.kubernetes.api.model.networking.v1.IngressServiceBackend;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicy;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicyEgressRule;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicyIngressRule;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicyPeer;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicyPort;
import io.fabric8.kubernetes.api.model.policy.v1.PodDisruptionBudget;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.w3c.dom.Document;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

/**
 * The Kubernetes manifests in k8s/, rendered like Kustomize renders them (base and each overlay) into the
 * Kubernetes model, and checked against the application they deploy: its port, probe paths, settings and
 * limits, and the rules a production deployment of Paystream must keep.
 */
class KubernetesManifestsTests {

    static final Path K8S = Path.of("k8s");

    static final Path PROD = K8S.resolve("overlays/prod");

    /** The one file under k8s/ that no kustomization may name: a template for a Secret created by hand. */
    static final Path SECRET_TEMPLATE = K8S.resolve("base/secret.example.yaml");

    static final String CNPG_API = "postgresql.cnpg.io/v1";

    /**
     * Variables a container may set that application.properties does not read, each with its reason. Anything
     * else must be a real setting, or it is a typo the application would silently ignore.
     */
    static final Map<String, String> NOT_APPLICATION_SETTINGS = Map.of(
            "JAVA_TOOL_OPTIONS", "read by the JVM itself",
            "BPL_JVM_THREAD_COUNT", "read by the buildpack image's memory calculator at launch");

    // The connection budget. Each replica holds at most its pool and the streams' pool, plus one dedicated LISTEN connection
    // (io.paystream.stream.BalanceListener), plus Flyway's connections while it starts: Flyway migrates over a
    // non-pooled JDBC DataSource and holds at most two at once (its schema-history connection and the migration's).
    static final int LISTENER_CONNECTIONS_PER_REPLICA = 1;

    static final int FLYWAY_CONNECTIONS_PER_STARTING_REPLICA = 2;

    /** PostgreSQL's default superuser_reserved_connections, taken out of max_connections. */
    static final int SUPERUSER_RESERVED_DEFAULT = 3;

    /** Kept free beyond the application: the CloudNativePG instance manager and exporter, and people. */
    static final int HEADROOM_FOR_OPERATOR_AND_PEOPLE = 17;

    static final ApplicationSettings APP = ApplicationSettings.load();

    static Stream<Path> kustomizations() {
        return Stream.of(K8S.resolve("base"), K8S.resolve("overlays/dev"), PROD);
    }

    // ---------------------------------------------------------------- files

    @Test
    void everyYamlFileUnderK8sLoadsAndIsUsed() throws IOException {
        List<Path> files;
        try (Stream<Path> walk = Files.walk(K8S, 6)) { // k8s/overlays/<name>/<file>: 6 levels is ample
            files = walk.filter(p -> p.toString().endsWith(".yaml") || p.toString().endsWith(".yml")).sorted().toList();
        }
        assertThat(files).as("YAML files under k8s/").isNotEmpty();
        Set<Path> used = new TreeSet<>();
        kustomizations().forEach(dir -> used.addAll(Kustomize.filesRead(dir)));
        for (Path file : files) {
            Path absolute = file.toAbsolutePath().normalize();
            if (file.getFileName().toString().equals("kustomization.yaml")) {
                Kustomize.kustomization(file.getParent());
                continue;
            }
            if (file.equals(SECRET_TEMPLATE)) {
                assertThat(used).as(SECRET_TEMPLATE + " is a template with placeholder values: no kustomization may"
                        + " apply it").doesNotContain(absolute);
            }
            else {
                assertThat(used).as(file + " is named by no kustomization: dead, or a forgotten resource")
                        .contains(absolute);
            }
            for (Object document : Kustomize.loadAll(file)) {
                if (document instanceof List<?> operations) { // a JSON 6902 patch
                    operations.forEach(op -> assertThat(Kustomize.asMap(op, file.toString())).as(file + " operation")
                            .containsKeys("op", "path"));
                }
                else {
                    HasMetadata resource = Manifests.toModel(Kustomize.asMap(document, file.toString()), file.toString());
                    assertThat(resource.getMetadata().getName()).as(file + " metadata.name").isNotBlank();
                }
            }
        }
    }

    @Test
    void theDeployedManifestsHoldNoSecretAndTheTemplateHasOnlyPlaceholders() {
        kustomizations().forEach(dir -> assertThat(Manifests.render(dir).resources())
                .as(dir + ": secrets are created by hand (see the README), never from this repository")
                .noneMatch(r -> r.getKind().equals("Secret")));
        HasMetadata template = Manifests.toModel(Kustomize.asMap(Kustomize.loadOne(SECRET_TEMPLATE), "template"),
                SECRET_TEMPLATE.toString());
        assertThat(template).isInstanceOf(io.fabric8.kubernetes.api.model.Secret.class);
        var secret = (io.fabric8.kubernetes.api.model.Secret) template;
        assertThat(secret.getData()).as("the template uses stringData only").isNullOrEmpty();
        secret.getStringData().forEach((key, value) -> assertThat(value)
                .as(SECRET_TEMPLATE + " " + key + " must be an obvious placeholder").contains("CHANGE-ME"));

        // Every key the Deployment reads from that Secret is in the template.
        Manifests prod = Manifests.render(PROD);
        for (Container c : containers(prod.one(Deployment.class))) {
            for (EnvVar env : c.getEnv()) {
                if (env.getValueFrom() != null && env.getValueFrom().getSecretKeyRef() != null
                        && env.getValueFrom().getSecretKeyRef().getName().equals(secret.getMetadata().getName())) {
                    assertThat(secret.getStringData()).as(SECRET_TEMPLATE + " lacks the key " + env.getName() + " reads")
                            .containsKey(env.getValueFrom().getSecretKeyRef().getKey());
                }
            }
        }
    }

    // ---------------------------------------------------------------- the application

    @ParameterizedTest
    @MethodSource("kustomizations")
    void theContainerPortServiceAndIngressAllLeadToTheServerPort(Path dir) {
        Manifests m = Manifests.render(dir);
        Deployment deployment = m.one(Deployment.class);
        Container app = appContainer(deployment);
        int serverPort = serverPort(m, app);
        assertThat(app.getPorts()).as(dir + ": the container's ports")
                .extracting(ContainerPort::getContainerPort).containsExactly(serverPort);

        Service service = m.one(Service.class);
        assertThat(service.getSpec().getType()).as(dir + ": Service type").isEqualTo("ClusterIP");
        assertThat(service.getSpec().getSelector()).as(dir + ": the Service selects the Deployment's pods")
                .isNotEmpty();
        assertThat(deployment.getSpec().getTemplate().getMetadata().getLabels())
                .as(dir + ": the Service's selector must match the pod labels")
                .containsAllEntriesOf(service.getSpec().getSelector());
        for (ServicePort port : service.getSpec().getPorts()) {
            assertThat(resolvePort(app, port.getTargetPort()))
                    .as(dir + ": Service port " + port.getName() + " targets " + port.getTargetPort()
                            + ", which must be server.port " + serverPort)
                    .isEqualTo(serverPort);
        }

        Ingress ingress = m.one(Ingress.class);
        ingress.getSpec().getRules().forEach(rule -> rule.getHttp().getPaths().forEach(path -> {
            IngressServiceBackend backend = path.getBackend().getService();
            assertThat(backend.getName()).as(dir + ": Ingress backend").isEqualTo(service.getMetadata().getName());
            ServicePort port = service.getSpec().getPorts().stream()
                    .filter(p -> backend.getPort().getName() != null ? backend.getPort().getName().equals(p.getName())
                            : backend.getPort().getNumber().equals(p.getPort()))
                    .findFirst()
                    .orElseGet(() -> fail(dir + ": the Ingress backend port " + backend.getPort()
                            + " is not a port of Service " + service.getMetadata().getName()));
            assertThat(resolvePort(app, port.getTargetPort())).isEqualTo(serverPort);
        }));
    }

    @ParameterizedTest
    @MethodSource("kustomizations")
    void probesUseTheApplicationsLivenessAndReadinessPaths(Path dir) {
        Manifests m = Manifests.render(dir);
        Container app = appContainer(m.one(Deployment.class));
        int serverPort = serverPort(m, app);
        assertThat(APP.properties().getProperty("management.endpoint.health.probes.add-additional-paths"))
                .as("/livez and /readyz exist on the main port only with this property")
                .isEqualTo("true");
        assertProbe(dir, app, "startupProbe", app.getStartupProbe(), "/livez", serverPort);
        assertProbe(dir, app, "livenessProbe", app.getLivenessProbe(), "/livez", serverPort);
        assertProbe(dir, app, "readinessProbe", app.getReadinessProbe(), "/readyz", serverPort);
    }

    @ParameterizedTest
    @MethodSource("kustomizations")
    void everyEnvironmentVariableIsARealSetting(Path dir) {
        Manifests m = Manifests.render(dir);
        List<String> unknown = new ArrayList<>();
        for (Container c : containers(m.one(Deployment.class))) {
            c.getEnv().stream().map(EnvVar::getName).filter(name -> !isSetting(name))
                    .forEach(name -> unknown.add("container " + c.getName() + ": " + name));
        }
        for (ConfigMap map : m.all(ConfigMap.class)) {
            map.getData().keySet().stream().filter(name -> !isSetting(name))
                    .forEach(name -> unknown.add("ConfigMap " + map.getMetadata().getName() + ": " + name));
        }
        assertThat(unknown).as(dir + ": variables that application.properties never reads (a typo is silently"
                + " ignored by the application); add them to NOT_APPLICATION_SETTINGS only with a reason").isEmpty();
        assertThat(m.environment(appContainer(m.one(Deployment.class)), "JAVA_TOOL_OPTIONS"))
                .as(dir + ": the JVM's heap is sized from the memory limit")
                .hasValueSatisfying(v -> assertThat(v).contains("-XX:MaxRAMPercentage="));
    }

    @ParameterizedTest
    @MethodSource("kustomizations")
    void theDatabaseIsTheCloudNativePgClusterAndItsGeneratedCredentials(Path dir) {
        Manifests m = Manifests.render(dir);
        GenericKubernetesResource cluster = cnpgCluster(m);
        String name = cluster.getMetadata().getName();
        Deployment deployment = m.one(Deployment.class);
        assertThat(cluster.getMetadata().getNamespace()).as(dir + ": the cluster and the API share a namespace")
                .isEqualTo(deployment.getMetadata().getNamespace());
        Container app = appContainer(deployment);
        for (String url : List.of("SPRING_R2DBC_URL", "SPRING_FLYWAY_URL")) {
            assertThat(m.environment(app, url)).as(dir + ": " + url)
                    .hasValueSatisfying(v -> assertThat(v).as(url + " must point at the read-write service")
                            .contains("//" + name + "-rw:5432/"));
        }
        for (var credential : Map.of("SPRING_R2DBC_USERNAME", "username", "SPRING_R2DBC_PASSWORD", "password")
                .entrySet()) {
            EnvVar env = app.getEnv().stream().filter(e -> e.getName().equals(credential.getKey())).findFirst()
                    .orElseGet(() -> fail(dir + ": " + credential.getKey() + " is not set"));
            assertThat(env.getValueFrom()).as(dir + ": " + credential.getKey() + " comes from a Secret").isNotNull();
            assertThat(env.getValueFrom().getSecretKeyRef().getName()).as(dir + ": " + credential.getKey()
                    + " comes from the Secret CloudNativePG generates").isEqualTo(name + "-app");
            assertThat(env.getValueFrom().getSecretKeyRef().getKey()).isEqualTo(credential.getValue());
        }
        for (String flyway : List.of("SPRING_FLYWAY_USER", "SPRING_FLYWAY_PASSWORD")) {
            assertThat(app.getEnv()).as(dir + ": Flyway uses the R2DBC credentials by default; " + flyway
                    + " must not point elsewhere").noneMatch(e -> e.getName().equals(flyway));
        }
    }

    // ---------------------------------------------------------------- the Deployment

    @ParameterizedTest
    @MethodSource("kustomizations")
    void everyContainerHasResourcesAndTheFullSecurityContext(Path dir) {
        Deployment deployment = Manifests.render(dir).one(Deployment.class);
        PodSpec pod = deployment.getSpec().getTemplate().getSpec();
        PodSecurityContext podSecurity = pod.getSecurityContext();
        assertThat(pod.getAutomountServiceAccountToken()).as(dir + ": automountServiceAccountToken").isFalse();
        for (Container c : containers(deployment)) {
            String what = dir + ": container " + c.getName();
            ResourceRequirements r = c.getResources();
            assertThat(r).as(what + " resources").isNotNull();
            for (String resource : List.of("cpu", "memory")) {
                assertThat(r.getRequests()).as(what + " requests." + resource).containsKey(resource);
                assertThat(r.getLimits()).as(what + " limits." + resource).containsKey(resource);
                assertThat(Quantity.getAmountInBytes(r.getLimits().get(resource)))
                        .as(what + " limit of " + resource + " below its request")
                        .isGreaterThanOrEqualTo(Quantity.getAmountInBytes(r.getRequests().get(resource)));
            }

            SecurityContext s = c.getSecurityContext() == null ? new SecurityContext() : c.getSecurityContext();
            // Inherited from the pod's securityContext when the container does not set them; the rest are
            // container-only fields.
            Boolean nonRoot = s.getRunAsNonRoot() != null ? s.getRunAsNonRoot() : podSecurity == null ? null : podSecurity.getRunAsNonRoot();
            Long user = s.getRunAsUser() != null ? s.getRunAsUser() : podSecurity == null ? null : podSecurity.getRunAsUser();
            Long group = s.getRunAsGroup() != null ? s.getRunAsGroup() : podSecurity == null ? null : podSecurity.getRunAsGroup();
            var seccomp = s.getSeccompProfile() != null ? s.getSeccompProfile() : podSecurity == null ? null : podSecurity.getSeccompProfile();
            assertThat(nonRoot).as(what + " runAsNonRoot").isTrue();
            assertThat(user).as(what + " runAsUser (non-zero)").isNotNull().isPositive();
            assertThat(group).as(what + " runAsGroup (non-zero)").isNotNull().isPositive();
            assertThat(seccomp).as(what + " seccompProfile").isNotNull();
            assertThat(seccomp.getType()).as(what + " seccompProfile.type").isEqualTo("RuntimeDefault");
            assertThat(s.getAllowPrivilegeEscalation()).as(what + " allowPrivilegeEscalation").isFalse();
            assertThat(s.getReadOnlyRootFilesystem()).as(what + " readOnlyRootFilesystem").isTrue();
            assertThat(Optional.ofNullable(s.getCapabilities()).map(Capabilities::getDrop).orElse(List.of()))
                    .as(what + " capabilities.drop").contains("ALL");
            assertThat(Optional.ofNullable(s.getCapabilities()).map(Capabilities::getAdd).orElse(List.of()))
                    .as(what + " capabilities.add").isEmpty();
            // A read-only root needs somewhere writable for temporary files.
            String tmpVolume = c.getVolumeMounts().stream().filter(v -> v.getMountPath().equals("/tmp"))
                    .map(v -> v.getName()).findFirst()
                    .orElseGet(() -> fail(what + " has a read-only root filesystem but no volume at /tmp"));
            assertThat(pod.getVolumes()).as(what + ": /tmp is an emptyDir")
                    .anyMatch(v -> v.getName().equals(tmpVolume) && v.getEmptyDir() != null);
        }
        String accountName = pod.getServiceAccountName();
        if (accountName != null) {
            ServiceAccount account = Manifests.render(dir).named(ServiceAccount.class, accountName)
                    .orElseGet(() -> fail(dir + ": ServiceAccount " + accountName + " is not in the manifests"));
            assertThat(account.getAutomountServiceAccountToken()).as(dir + ": ServiceAccount automount").isFalse();
        }
    }

    @ParameterizedTest
    @MethodSource("kustomizations")
    void rolloutsAndTerminationLoseNoRequest(Path dir) {
        Manifests m = Manifests.render(dir);
        Deployment deployment = m.one(Deployment.class);
        RollingUpdateDeployment rolling = deployment.getSpec().getStrategy().getRollingUpdate();
        assertThat(deployment.getSpec().getStrategy().getType()).as(dir + ": strategy").isEqualTo("RollingUpdate");
        assertThat(rolling.getMaxUnavailable()).as(dir + ": maxUnavailable").isEqualTo(new IntOrString(0));
        assertThat(rolling.getMaxSurge()).as(dir + ": maxSurge").isEqualTo(new IntOrString(1));

        Container app = appContainer(deployment);
        assertThat(app.getLifecycle()).as(dir + ": a preStop pause").isNotNull();
        var preStop = app.getLifecycle().getPreStop();
        assertThat(preStop).as(dir + ": a preStop pause").isNotNull();
        assertThat(preStop.getSleep()).as(dir + ": the native preStop sleep action (Kubernetes 1.30+): the image"
                + " has no shell").isNotNull();
        long preStopSeconds = preStop.getSleep().getSeconds();
        assertThat(preStopSeconds).as(dir + ": preStop sleep seconds").isPositive();

        Duration shutdown = Sizes.springDuration(setting(m, app, "PAYSTREAM_SHUTDOWN_TIMEOUT"));
        long grace = deployment.getSpec().getTemplate().getSpec().getTerminationGracePeriodSeconds();
        assertThat(grace).as(dir + ": terminationGracePeriodSeconds (" + grace + ") must exceed the preStop pause ("
                + preStopSeconds + "s) + PAYSTREAM_SHUTDOWN_TIMEOUT (" + shutdown.toSeconds() + "s)")
                .isGreaterThan(preStopSeconds + shutdown.toSeconds());
    }

    @ParameterizedTest
    @MethodSource("kustomizations")
    void replicasSpreadAcrossNodesAndEveryDeploymentHasADisruptionBudget(Path dir) {
        Manifests m = Manifests.render(dir);
        for (Deployment deployment : m.all(Deployment.class)) {
            PodSpec pod = deployment.getSpec().getTemplate().getSpec();
            Map<String, String> labels = deployment.getSpec().getTemplate().getMetadata().getLabels();
            boolean spread = pod.getTopologySpreadConstraints().stream()
                    .anyMatch(t -> t.getTopologyKey().equals("kubernetes.io/hostname")
                            && Manifests.selects(t.getLabelSelector(), labels));
            boolean antiAffinity = pod.getAffinity() != null && pod.getAffinity().getPodAntiAffinity() != null;
            assertThat(spread || antiAffinity).as(dir + ": " + deployment.getMetadata().getName()
                    + " spreads its pods across nodes (topologySpreadConstraints on kubernetes.io/hostname selecting"
                    + " its own pods, or podAntiAffinity)").isTrue();

            List<PodDisruptionBudget> budgets = m.all(PodDisruptionBudget.class).stream()
                    .filter(b -> java.util.Objects.equals(b.getMetadata().getNamespace(), deployment.getMetadata().getNamespace())
                            && Manifests.selects(b.getSpec().getSelector(), labels))
                    .toList();
            assertThat(budgets).as(dir + ": Deployment " + deployment.getMetadata().getName()
                    + " is selected by exactly one PodDisruptionBudget").hasSize(1);
            PodDisruptionBudget budget = budgets.get(0);
            assertThat(budget.getSpec().getMaxUnavailable() != null
                    ? budget.getSpec().getMaxUnavailable().equals(new IntOrString(1))
                    : budget.getSpec().getMinAvailable() != null)
                    .as(dir + ": the PodDisruptionBudget has maxUnavailable 1 or a minAvailable").isTrue();
        }
    }

    @ParameterizedTest
    @MethodSource("kustomizations")
    void everyImageIsPinnedAndIsTheOneTheBuildMakes(Path dir) throws Exception {
        Manifests m = Manifests.render(dir);
        List<String> images = new ArrayList<>();
        m.all(Deployment.class).forEach(d -> containers(d).forEach(c -> images.add(c.getImage())));
        m.custom(CNPG_API, "Cluster").forEach(c -> images.add((String) spec(c).get("imageName")));
        assertThat(images).as(dir + ": images").isNotEmpty().doesNotContainNull();
        for (String image : images) {
            assertThat(ImageReference.parse(image).pinned()).as(dir + ": image " + image
                    + " must have a tag other than latest, or a digest").isTrue();
        }

        Document pom = DocumentBuilderFactory.newInstance().newDocumentBuilder().parse(Path.of("pom.xml").toFile());
        String built = XPathFactory.newInstance().newXPath().evaluate(
                "/project/build/plugins/plugin[artifactId='spring-boot-maven-plugin']/configuration/image/name", pom);
        assertThat(built).as("pom.xml: spring-boot-maven-plugin <image><name>").isNotBlank();
        assertThat(built).as("pom.xml: the built image's tag").doesNotContainIgnoringCase(":latest");
        assertThat(ImageReference.parse(appContainer(m.one(Deployment.class)).getImage()).name())
                .as(dir + ": the Deployment runs the image `./mvnw spring-boot:build-image` builds")
                .isEqualTo(ImageReference.parse(built).name());
    }

    // ---------------------------------------------------------------- Ingress, HPA, database

    @ParameterizedTest
    @MethodSource("kustomizations")
    void theIngressLetsServerSentEventsThrough(Path dir) {
        Manifests m = Manifests.render(dir);
        Ingress ingress = m.one(Ingress.class);
        Container app = appContainer(m.one(Deployment.class));
        Map<String, String> annotations = ingress.getMetadata().getAnnotations();
        String prefix = "nginx.ingress.kubernetes.io/";
        assertThat(ingress.getSpec().getIngressClassName()).as(dir + ": ingressClassName").isEqualTo("nginx");
        assertThat(annotations).as(dir + ": events must not wait in nginx's buffer")
                .containsEntry(prefix + "proxy-buffering", "off");
        Duration lifetime = Sizes.springDuration(setting(m, app, "PAYSTREAM_STREAM_MAX_LIFETIME"));
        for (String timeout : List.of("proxy-read-timeout", "proxy-send-timeout")) {
            assertThat(annotations).as(dir + ": " + timeout).containsKey(prefix + timeout);
            assertThat(Long.parseLong(annotations.get(prefix + timeout)))
                    .as(dir + ": " + timeout + " (seconds) must be at least the stream lifetime " + lifetime)
                    .isGreaterThanOrEqualTo(lifetime.toSeconds());
        }
        long maxBody = Sizes.springBytes(setting(m, app, "PAYSTREAM_MAX_BODY_SIZE"));
        assertThat(annotations).as(dir + ": proxy-body-size").containsKey(prefix + "proxy-body-size");
        assertThat(Sizes.nginxBytes(annotations.get(prefix + "proxy-body-size")))
                .as(dir + ": nginx's body limit must not be below the application's (" + maxBody + " bytes)")
                .isGreaterThanOrEqualTo(maxBody);
    }

    @ParameterizedTest
    @MethodSource("kustomizations")
    void theAutoscalerScalesTheDeploymentOnCpu(Path dir) {
        Manifests m = Manifests.render(dir);
        HorizontalPodAutoscaler hpa = m.one(HorizontalPodAutoscaler.class);
        Deployment deployment = m.one(Deployment.class);
        assertThat(hpa.getSpec().getScaleTargetRef().getKind()).isEqualTo("Deployment");
        assertThat(hpa.getSpec().getScaleTargetRef().getName()).as(dir + ": HPA target")
                .isEqualTo(deployment.getMetadata().getName());
        assertThat(hpa.getSpec().getMetrics()).as(dir + ": HPA scales on CPU")
                .anyMatch(metric -> metric.getResource() != null && metric.getResource().getName().equals("cpu"));
        assertThat(hpa.getSpec().getMaxReplicas()).as(dir + ": maxReplicas").isGreaterThanOrEqualTo(hpa.getSpec().getMinReplicas());
        assertThat(deployment.getSpec().getReplicas()).as(dir + ": the Deployment's replicas equal the HPA's minimum")
                .isEqualTo(hpa.getSpec().getMinReplicas());
    }

    @Test
    void productionRunsAtLeastThreeReplicasOnAThreeInstanceSynchronousCluster() {
        Manifests prod = Manifests.render(PROD);
        assertThat(prod.one(HorizontalPodAutoscaler.class).getSpec().getMinReplicas()).as("prod HPA minReplicas")
                .isGreaterThanOrEqualTo(3);
        assertThat(prod.one(Deployment.class).getSpec().getReplicas()).as("prod replicas").isGreaterThanOrEqualTo(3);
        Map<String, Object> cluster = spec(cnpgCluster(prod));
        assertThat(cluster.get("instances")).as("prod PostgreSQL instances").isEqualTo(3);
        Map<?, ?> postgresql = (Map<?, ?>) cluster.get("postgresql");
        Object synchronous = postgresql == null ? null : postgresql.get("synchronous");
        boolean legacySync = cluster.get("minSyncReplicas") instanceof Integer min && min >= 1;
        boolean sync = synchronous instanceof Map<?, ?> s && s.get("number") instanceof Integer n && n >= 1;
        assertThat(sync || legacySync).as("prod PostgreSQL replicates synchronously to at least one standby"
                + " (postgresql.synchronous.number or minSyncReplicas)").isTrue();
        assertThat(cluster.get("storage")).as("prod PostgreSQL storage").isInstanceOf(Map.class);
        assertThat(((Map<?, ?>) cluster.get("storage")).get("size")).as("prod PostgreSQL storage size").isNotNull();
    }

    @ParameterizedTest
    @MethodSource("kustomizations")
    void postgresAcceptsEveryConnectionTheReplicasCanOpen(Path dir) {
        Manifests m = Manifests.render(dir);
        Deployment deployment = m.one(Deployment.class);
        HorizontalPodAutoscaler hpa = m.one(HorizontalPodAutoscaler.class);
        int maxSurge = count(deployment.getSpec().getStrategy().getRollingUpdate().getMaxSurge(), hpa.getSpec().getMaxReplicas());
        int pods = hpa.getSpec().getMaxReplicas() + maxSurge;
        int pool = Integer.parseInt(setting(m, appContainer(deployment), "PAYSTREAM_DB_POOL_MAX_SIZE"));
        int streamPool = Integer.parseInt(setting(m, appContainer(deployment), "PAYSTREAM_STREAM_DB_POOL_MAX_SIZE"));
        int perPod = pool + streamPool + LISTENER_CONNECTIONS_PER_REPLICA + FLYWAY_CONNECTIONS_PER_STARTING_REPLICA;

        Map<String, Object> cluster = spec(cnpgCluster(m));
        @SuppressWarnings("unchecked") Map<String, Object> parameters = (Map<String, Object>) ((Map<?, ?>) cluster.get("postgresql")).get("parameters");
        assertThat(parameters).as(dir + ": postgresql.parameters").isNotNull().containsKey("max_connections");
        int maxConnections = Integer.parseInt(String.valueOf(parameters.get("max_connections")));
        int superuserReserved = parameters.get("superuser_reserved_connections") == null ? SUPERUSER_RESERVED_DEFAULT
                : Integer.parseInt(String.valueOf(parameters.get("superuser_reserved_connections")));
        int needed = pods * perPod + superuserReserved + HEADROOM_FOR_OPERATOR_AND_PEOPLE;
        assertThat(needed).as(dir + ": (HPA maxReplicas " + hpa.getSpec().getMaxReplicas() + " + maxSurge " + maxSurge
                + ") x (pool " + pool + " + stream pool " + streamPool + " + listener " + LISTENER_CONNECTIONS_PER_REPLICA + " + Flyway "
                + FLYWAY_CONNECTIONS_PER_STARTING_REPLICA + ") + superuser reserved " + superuserReserved + " + headroom "
                + HEADROOM_FOR_OPERATOR_AND_PEOPLE + " = " + needed + " must not exceed max_connections " + maxConnections)
                .isLessThanOrEqualTo(maxConnections);
    }

    // ---------------------------------------------------------------- network policies

    @ParameterizedTest
    @MethodSource("kustomizations")
    void networkPoliciesDenyAllButTheIngressControllerInAndThePostgresAndDnsOut(Path dir) {
        Manifests m = Manifests.render(dir);
        List<NetworkPolicy> policies = m.all(NetworkPolicy.class);
        assertThat(policies).as(dir + ": a default-deny policy: every pod, both directions, no rule")
                .anyMatch(p -> Manifests.isEmpty(p.getSpec().getPodSelector())
                        && p.getSpec().getPolicyTypes().containsAll(List.of("Ingress", "Egress"))
                        && p.getSpec().getIngress().isEmpty() && p.getSpec().getEgress().isEmpty());

        Deployment deployment = m.one(Deployment.class);
        Container app = appContainer(deployment);
        int serverPort = serverPort(m, app);
        Map<String, String> appLabels = deployment.getSpec().getTemplate().getMetadata().getLabels();
        String cluster = cnpgCluster(m).getMetadata().getName();
        List<NetworkPolicy> appPolicies = policies.stream()
                .filter(p -> Manifests.selects(p.getSpec().getPodSelector(), appLabels)).toList();

        List<NetworkPolicyIngressRule> ingress = appPolicies.stream().flatMap(p -> p.getSpec().getIngress().stream()).toList();
        assertThat(ingress).as(dir + ": the API is reachable at all").isNotEmpty();
        for (NetworkPolicyIngressRule rule : ingress) {
            assertThat(rule.getFrom()).as(dir + ": an ingress rule without `from` admits everyone").isNotEmpty();
            for (NetworkPolicyPeer peer : rule.getFrom()) {
                assertThat(peer.getIpBlock()).as(dir + ": ingress by IP block").isNull();
                assertThat(peer.getNamespaceSelector()).as(dir + ": ingress only from the ingress controller's namespace")
                        .isNotNull();
                assertThat(peer.getNamespaceSelector().getMatchLabels())
                        .containsExactly(Map.entry("kubernetes.io/metadata.name", "ingress-nginx"));
            }
            assertThat(rule.getPorts()).as(dir + ": ingress only to the server port").isNotEmpty()
                    .allSatisfy(port -> assertThat(resolvePort(app, port.getPort())).isEqualTo(serverPort));
        }

        List<NetworkPolicyEgressRule> egress = appPolicies.stream().flatMap(p -> p.getSpec().getEgress().stream()).toList();
        boolean toDatabase = false;
        boolean toDns = false;
        for (NetworkPolicyEgressRule rule : egress) {
            assertThat(rule.getTo()).as(dir + ": an egress rule without `to` lets the API reach anything").isNotEmpty();
            List<Integer> ports = rule.getPorts().stream().map(NetworkPolicyPort::getPort).map(IntOrString::getIntVal).toList();
            boolean database = rule.getTo().stream().allMatch(peer -> peer.getNamespaceSelector() == null
                    && peer.getIpBlock() == null && peer.getPodSelector() != null
                    && Map.of("cnpg.io/cluster", cluster).equals(peer.getPodSelector().getMatchLabels()));
            boolean dns = rule.getTo().stream().allMatch(peer -> peer.getNamespaceSelector() != null
                    && Map.of("kubernetes.io/metadata.name", "kube-system").equals(peer.getNamespaceSelector().getMatchLabels()));
            if (database && ports.equals(List.of(5432))) {
                toDatabase = true;
            }
            else if (dns && !ports.isEmpty() && ports.stream().allMatch(p -> p == 53)) {
                toDns = true;
            }
            else {
                fail(dir + ": the API may egress only to the PostgreSQL cluster " + cluster + " on 5432 and to DNS on 53;"
                        + " this rule allows more: " + rule);
            }
        }
        assertThat(toDatabase).as(dir + ": the API may reach PostgreSQL (pods cnpg.io/cluster=" + cluster + ", 5432)").isTrue();
        assertThat(toDns).as(dir + ": the API may reach the cluster DNS").isTrue();

        // And the database lets the API in: with default deny, it would otherwise refuse every connection.
        Map<String, String> databaseLabels = Map.of("cnpg.io/cluster", cluster);
        assertThat(policies.stream().filter(p -> Manifests.selects(p.getSpec().getPodSelector(), databaseLabels))
                .flatMap(p -> p.getSpec().getIngress().stream()))
                .as(dir + ": PostgreSQL admits the API on 5432")
                .anyMatch(rule -> rule.getFrom().stream().anyMatch(peer -> peer.getNamespaceSelector() == null
                        && Manifests.selects(peer.getPodSelector(), appLabels))
                        && rule.getPorts().stream().anyMatch(port -> port.getPort().equals(new IntOrString(5432))));
    }

    // ---------------------------------------------------------------- look-ups

    static List<Container> containers(Deployment deployment) {
        PodSpec pod = deployment.getSpec().getTemplate().getSpec();
        List<Container> all = new ArrayList<>(pod.getInitContainers());
        all.addAll(pod.getContainers());
        return all;
    }

    static Container appContainer(Deployment deployment) {
        List<Container> main = deployment.getSpec().getTemplate().getSpec().getContainers();
        assertThat(main).as("the Deployment's containers").hasSize(1);
        return main.get(0);
    }

    static GenericKubernetesResource cnpgCluster(Manifests m) {
        List<GenericKubernetesResource> clusters = m.custom(CNPG_API, "Cluster");
        assertThat(clusters).as(m.source() + ": one CloudNativePG Cluster (" + CNPG_API + ")").hasSize(1);
        return clusters.get(0);
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> spec(GenericKubernetesResource resource) {
        return (Map<String, Object>) resource.getAdditionalProperties().get("spec");
    }

    /** The value the application runs with: what the manifests set, else the default in application.properties. */
    static String setting(Manifests m, Container container, String variable) {
        return m.environment(container, variable).orElseGet(() -> {
            String fallback = APP.defaults().get(variable);
            if (fallback == null) {
                throw new AssertionError(variable + " is neither set in " + m.source()
                        + " nor given a default in " + ApplicationSettings.FILE);
            }
            return fallback;
        });
    }

    static int serverPort(Manifests m, Container app) {
        return Integer.parseInt(setting(m, app, APP.variableOf("server.port")));
    }

    static boolean isSetting(String variable) {
        return APP.variables().contains(variable) || NOT_APPLICATION_SETTINGS.containsKey(variable);
    }

    static int resolvePort(Container container, IntOrString port) {
        if (port == null) {
            throw new AssertionError("no port given");
        }
        if (port.getIntVal() != null) {
            return port.getIntVal();
        }
        return container.getPorts().stream().filter(p -> port.getStrVal().equals(p.getName()))
                .map(ContainerPort::getContainerPort).findFirst()
                .orElseThrow(() -> new AssertionError("container " + container.getName() + " has no port named "
                        + port.getStrVal()));
    }

    /** An IntOrString count or percentage of {@code total} (a surge rounds up, as Kubernetes does). */
    static int count(IntOrString value, int total) {
        if (value.getIntVal() != null) {
            return value.getIntVal();
        }
        String s = value.getStrVal();
        if (!s.endsWith("%")) {
            throw new AssertionError("not a count or a percentage: " + s);
        }
        return (int) Math.ceil(total * Integer.parseInt(s.substring(0, s.length() - 1)) / 100.0);
    }

    static void assertProbe(Path dir, Container c, String kind, Probe probe, String path, int serverPort) {
        assertThat(probe).as(dir + ": container " + c.getName() + " " + kind).isNotNull();
        HTTPGetAction get = probe.getHttpGet();
        assertThat(get).as(dir + ": " + kind + " is an HTTP GET").isNotNull();
        assertThat(get.getPath()).as(dir + ": " + kind + " path").isEqualTo(path);
        assertThat(resolvePort(c, get.getPort())).as(dir + ": " + kind + " port is server.port").isEqualTo(serverPort);
    }
}
