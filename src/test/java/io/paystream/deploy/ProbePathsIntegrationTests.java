package io.paystream.deploy;

import java.util.List;
import java.util.Map;

import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.Probe;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import io.paystream.testsupport.PaystreamIntegrationTest;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.core.ParameterizedTypeReference;
import org.springframework.test.web.reactive.server.WebTestClient;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The probe paths the production Deployment gives the kubelet are served by the application, without
 * credentials (the kubelet sends none), and say UP when the application and its database are fine.
 */
@PaystreamIntegrationTest
class ProbePathsIntegrationTests {

    @LocalServerPort
    int port;

    @Test
    void everyProbeOfTheProductionDeploymentAnswersUp() {
        Container app = KubernetesManifestsTests.appContainer(
                Manifests.render(KubernetesManifestsTests.PROD).one(Deployment.class));
        List<Probe> probes = List.of(app.getStartupProbe(), app.getLivenessProbe(), app.getReadinessProbe());
        WebTestClient web = WebTestClient.bindToServer().baseUrl("http://127.0.0.1:" + port)
                .responseTimeout(java.time.Duration.ofSeconds(30)).build(); // as PaystreamIntegrationTest's client
        for (Probe probe : probes) {
            String path = probe.getHttpGet().getPath();
            Map<String, Object> body = web.get().uri(path).exchange()
                    .expectStatus().isOk()
                    .expectBody(new ParameterizedTypeReference<Map<String, Object>>() {
                    })
                    .returnResult().getResponseBody();
            assertThat(body).as("GET " + path).containsEntry("status", "UP");
        }
    }
}
