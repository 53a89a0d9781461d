package io.paystream.system;

import java.util.List;
import java.util.UUID;

import io.paystream.testsupport.PaystreamIntegrationTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.system.CapturedOutput;
import org.springframework.boot.test.system.OutputCaptureExtension;
import org.springframework.test.web.reactive.server.WebTestClient;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

import static org.assertj.core.api.Assertions.assertThat;

/** With PAYSTREAM_LOG_FORMAT=ecs every log line is one JSON object, the request id a field of it. */
@PaystreamIntegrationTest(properties = {"logging.structured.format.console=ecs",
        "logging.level.io.paystream.system=DEBUG"})
@ExtendWith(OutputCaptureExtension.class)
class StructuredLoggingIntegrationTests {

    @Autowired
    WebTestClient web;

    @Autowired
    JsonMapper json;

    @Test
    void logLinesAreJsonWithTheRequestId(CapturedOutput output) {
        String requestId = "ecs-" + UUID.randomUUID();
        web.get().uri("/v1/accounts/" + UUID.randomUUID()).header(RequestIds.HEADER, requestId).exchange()
                .expectStatus().isNotFound();
        List<String> lines = output.getOut().lines().filter(line -> line.contains(requestId)).toList();
        assertThat(lines).isNotEmpty();
        for (String line : lines) {
            JsonNode entry = json.readTree(line);
            assertThat(entry.path("requestId").asString()).isEqualTo(requestId);
            assertThat(entry.path("log").path("level").asString()).isNotBlank();
            assertThat(entry.path("service").path("name").asString()).isEqualTo("paystream");
        }
    }
}
