package io.paystream.system;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;

import io.micrometer.core.instrument.MeterRegistry;
import io.paystream.testsupport.PaystreamIntegrationTest;
import io.r2dbc.spi.Connection;
import io.r2dbc.spi.ConnectionFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.system.CapturedOutput;
import org.springframework.boot.test.system.OutputCaptureExtension;
import org.springframework.http.MediaType;
import org.springframework.test.web.reactive.server.EntityExchangeResult;
import org.springframework.test.web.reactive.server.WebTestClient;
import reactor.core.publisher.Mono;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * An exhausted connection pool answers fast: 503 {@code database_unavailable} with Retry-After once
 * {@code spring.r2dbc.pool.max-acquire-time} has passed, never a hang; and the pool recovers.
 */
@PaystreamIntegrationTest(properties = {"spring.r2dbc.pool.initial-size=1", "spring.r2dbc.pool.max-size=2",
        "spring.r2dbc.pool.max-acquire-time=300ms"})
@ExtendWith(OutputCaptureExtension.class)
class ConnectionBudgetIntegrationTests {

    @Autowired
    WebTestClient web;

    @Autowired
    ConnectionFactory pool;

    @Autowired
    MeterRegistry registry;

    @Test
    void anExhaustedPoolAnswers503FastAndRecovers(CapturedOutput output) {
        String account = web.post().uri("/v1/accounts").contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"currency\":\"EUR\",\"name\":\"budget\"}").exchange().expectStatus().isCreated()
                .expectBody(String.class).returnResult().getResponseBody().replaceAll(".*\"id\":\"([^\"]+)\".*", "$1");
        List<Connection> held = new ArrayList<>();
        try {
            for (int i = 0; i < 2; i++) {
                held.add(Mono.from(pool.create()).block(Duration.ofSeconds(10)));
            }
            String requestId = "budget-" + UUID.randomUUID();
            long startNanos = System.nanoTime();
            EntityExchangeResult<String> refused = web.get().uri("/v1/accounts/" + account)
                    .header(RequestIds.HEADER, requestId).exchange()
                    .expectStatus().isEqualTo(503)
                    .expectHeader().valueEquals("Retry-After", "1")
                    .expectHeader().valueEquals(RequestIds.HEADER, requestId)
                    .expectHeader().contentTypeCompatibleWith(MediaType.APPLICATION_PROBLEM_JSON)
                    .expectBody(String.class).returnResult();
            Duration elapsed = Duration.ofNanos(System.nanoTime() - startNanos);
            // Fast means the 300 ms acquire timeout, not the 30 s request timeout (which would not be
            // database_unavailable); the margin is for a cold first request on a busy machine.
            assertThat(elapsed).isLessThan(Duration.ofSeconds(15));
            assertThat(refused.getResponseBody()).contains("\"code\":\"database_unavailable\"")
                    .doesNotContain("r2dbc").doesNotContain("Exception").doesNotContain("pool");
            assertThat(output.getAll().lines().filter(line -> line.contains(requestId)))
                    .anySatisfy(line -> assertThat(line).contains("database_unavailable"));

            // A money movement too: refused fast, nothing applied, counted as failed.
            web.post().uri("/v1/accounts/" + account + "/withdrawals").header("Idempotency-Key", UUID.randomUUID().toString())
                    .contentType(MediaType.APPLICATION_JSON).bodyValue("{\"amount\":1,\"currency\":\"EUR\"}")
                    .exchange().expectStatus().isEqualTo(503);
            assertThat(registry.get("paystream.movements").tag("type", "withdrawal").tag("outcome", "failed")
                    .tag("code", "database_unavailable").counter().count()).isEqualTo(1);
        } finally {
            held.forEach(connection -> Mono.from(connection.close()).block(Duration.ofSeconds(10)));
        }
        web.get().uri("/v1/accounts/" + account).exchange().expectStatus().isOk();
    }
}
