package io.paystream.security;

import java.util.ArrayList;
import java.util.List;

import io.micrometer.core.instrument.MeterRegistry;
import io.paystream.testsupport.PaystreamIntegrationTest;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.http.MediaType;
import org.springframework.test.context.TestPropertySource;
import org.springframework.test.web.reactive.server.EntityExchangeResult;
import org.springframework.test.web.reactive.server.WebTestClient;

import static org.assertj.core.api.Assertions.assertThat;

@PaystreamIntegrationTest
@TestPropertySource(properties = {"paystream.rate-limit.requests-per-second=1", "paystream.rate-limit.burst=5"})
class RateLimitIntegrationTests {

    @Autowired
    WebTestClient web;

    @LocalServerPort
    int port;

    @Autowired
    MeterRegistry registry;

    @Test
    void aClientBeyondItsBucketGets429WithRetryAfter() {
        List<EntityExchangeResult<String>> results = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            results.add(web.get().uri("/v1/accounts").exchange().expectBody(String.class).returnResult());
        }
        assertThat(results).extracting(r -> r.getStatus().value()).startsWith(200, 200, 200, 200, 200).contains(429);
        EntityExchangeResult<String> first = results.get(0);
        assertThat(first.getResponseHeaders().getFirst("RateLimit-Limit")).isEqualTo("5");
        assertThat(first.getResponseHeaders().getFirst("RateLimit-Remaining")).isEqualTo("4");
        EntityExchangeResult<String> limited = results.stream().filter(r -> r.getStatus().value() == 429).findFirst()
                .orElseThrow();
        assertThat(limited.getResponseHeaders().getFirst("Retry-After")).isNotBlank();
        assertThat(limited.getResponseHeaders().getFirst("RateLimit-Remaining")).isEqualTo("0");
        assertThat(limited.getResponseHeaders().getContentType()).isEqualTo(MediaType.APPLICATION_PROBLEM_JSON);
        assertThat(limited.getResponseBody()).contains("\"code\":\"rate_limited\"");
        // Refusals carry their request id, and operators see them counted.
        assertThat(limited.getResponseHeaders().getFirst("X-Request-Id")).isNotBlank();
        assertThat(registry.get("paystream.rate.limit.refusals").counter().count())
                .isEqualTo(results.stream().filter(r -> r.getStatus().value() == 429).count());
        // Unauthenticated requests (health probes) are not counted.
        WebTestClient anonymous = WebTestClient.bindToServer().baseUrl("http://127.0.0.1:" + port)
                .responseTimeout(java.time.Duration.ofSeconds(30)).build(); // as PaystreamIntegrationTest's client
        for (int i = 0; i < 10; i++) {
            anonymous.get().uri("/actuator/health").exchange().expectStatus().isOk();
        }
    }
}
