package io.paystream.system;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import io.micrometer.core.instrument.MeterRegistry;
import io.paystream.testsupport.PaystreamIntegrationTest;
import io.paystream.testsupport.TestAuthentication;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.system.CapturedOutput;
import org.springframework.boot.test.system.OutputCaptureExtension;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.context.ApplicationContext;
import org.springframework.http.HttpHeaders;
import org.springframework.http.MediaType;
import org.springframework.test.web.reactive.server.EntityExchangeResult;
import org.springframework.test.web.reactive.server.WebTestClient;
import org.springframework.web.bind.annotation.RequestMethod;
import org.springframework.web.reactive.result.method.RequestMappingInfo;
import org.springframework.web.reactive.result.method.annotation.RequestMappingHandlerMapping;
import org.springframework.web.util.pattern.PathPattern;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Probes, metrics, request ids, log context, tracing and API documentation, as an operator and a
 * client see them: over HTTP, against the running application.
 */
@PaystreamIntegrationTest(properties = "logging.level.io.paystream.system=DEBUG")
@ExtendWith(OutputCaptureExtension.class)
class ObservabilityIntegrationTests {

    private static final Pattern UUID_TEXT = Pattern.compile(
            "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}");

    @LocalServerPort
    int port;

    /** Sends the admin key. */
    @Autowired
    WebTestClient admin;

    @Autowired
    ApplicationContext context;

    @Autowired
    JsonMapper json;

    /** Sends no key. */
    WebTestClient anonymous;

    @BeforeEach
    void clients() {
        anonymous = WebTestClient.bindToServer().baseUrl("http://127.0.0.1:" + port)
                .responseTimeout(java.time.Duration.ofSeconds(30)).build(); // as PaystreamIntegrationTest's client
    }

    // Probes ----------------------------------------------------------------------------------------

    @Test
    void livenessIgnoresTheDatabaseAndReadinessChecksIt() {
        JsonNode live = body(anonymous.get().uri("/livez").exchange().expectStatus().isOk());
        JsonNode ready = body(anonymous.get().uri("/readyz").exchange().expectStatus().isOk());
        assertThat(live.path("status").asString()).isEqualTo("UP");
        assertThat(ready.path("status").asString()).isEqualTo("UP");
        assertThat(ready.path("components").path("r2dbc").path("status").asString()).isEqualTo("UP");
        assertThat(live.path("components").has("r2dbc")).isFalse();
        assertThat(live.path("components").has("livenessState")).isTrue();
        // The same groups under the actuator, public, and without details.
        JsonNode readiness = body(anonymous.get().uri("/actuator/health/readiness").exchange().expectStatus().isOk());
        assertThat(readiness.path("components").path("r2dbc").has("details")).isFalse();
    }

    // Metrics ---------------------------------------------------------------------------------------

    @Test
    void metricsAreForAdminsOnly() {
        String refused = anonymous.get().uri("/actuator/prometheus").exchange().expectStatus().isUnauthorized()
                .expectHeader().contentTypeCompatibleWith(MediaType.APPLICATION_PROBLEM_JSON)
                .expectBody(String.class).returnResult().getResponseBody();
        assertThat(refused).contains("\"code\":\"unauthorized\"").doesNotContain("paystream_");
        String client = createClientKey();
        anonymous.get().uri("/actuator/prometheus").header(HttpHeaders.AUTHORIZATION, TestAuthentication.bearer(client))
                .exchange().expectStatus().isForbidden();
        anonymous.get().uri("/actuator").header(HttpHeaders.AUTHORIZATION, TestAuthentication.bearer(client))
                .exchange().expectStatus().isForbidden();
        assertThat(scrape()).contains("# TYPE paystream_movements_total counter");
    }

    @Test
    void moneyMovementsAreCountedByTypeAndOutcome() {
        UUID from = account();
        UUID to = account();
        String before = scrape();
        post("/v1/accounts/" + from + "/deposits", "{\"amount\":100,\"currency\":\"EUR\"}", "dep-" + from)
                .expectStatus().isCreated();
        String transfer = "{\"fromAccountId\":\"" + from + "\",\"toAccountId\":\"" + to + "\",\"amount\":30,\"currency\":\"EUR\"}";
        String key = "tr-" + UUID.randomUUID();
        post("/v1/transfers", transfer, key).expectStatus().isCreated();
        post("/v1/transfers", transfer, key).expectStatus().isCreated().expectHeader().valueEquals("Idempotent-Replayed", "true");
        String tooMuch = "{\"fromAccountId\":\"" + from + "\",\"toAccountId\":\"" + to + "\",\"amount\":1000,\"currency\":\"EUR\"}";
        post("/v1/transfers", tooMuch, "tr-" + UUID.randomUUID()).expectStatus().isEqualTo(422);
        post("/v1/transfers", tooMuch, null).expectStatus().isBadRequest();
        String after = scrape();

        assertThat(increase(before, after, "paystream_movements_total", Map.of("type", "deposit", "outcome", "applied",
                "code", "none"))).isEqualTo(1);
        assertThat(increase(before, after, "paystream_movements_total", Map.of("type", "transfer", "outcome", "applied",
                "code", "none"))).isEqualTo(1);
        assertThat(increase(before, after, "paystream_movements_total", Map.of("type", "transfer", "outcome", "replayed",
                "code", "none"))).isEqualTo(1);
        assertThat(increase(before, after, "paystream_movements_total", Map.of("type", "transfer", "outcome", "refused",
                "code", "insufficient_funds"))).isEqualTo(1);
        assertThat(increase(before, after, "paystream_movements_total", Map.of("type", "transfer", "outcome", "refused",
                "code", "idempotency_key_required"))).isEqualTo(1);
        // Each applied movement ran at least one transaction, whose locking SELECT was timed.
        assertThat(increase(before, after, "paystream_ledger_transaction_seconds_count", Map.of("outcome", "committed")))
                .isGreaterThanOrEqualTo(3);
        assertThat(increase(before, after, "paystream_ledger_lock_wait_seconds_count", Map.of("lock", "accounts")))
                .isGreaterThanOrEqualTo(2);
    }

    @Test
    void everyMetricAnOperatorAlertsOnIsExported() {
        admin.get().uri("/v1/accounts").exchange().expectStatus().isOk();
        String metrics = scrape();
        for (String sqlState : List.of("40001", "40P01", "23505")) {
            assertThat(metrics).contains("paystream_ledger_retries_total{application=\"paystream\",sqlstate=\"" + sqlState + "\"}");
        }
        // Histograms, not summaries: buckets aggregate across replicas.
        assertThat(metrics).contains("paystream_ledger_transaction_seconds_bucket{")
                .contains("paystream_ledger_lock_wait_seconds_bucket{")
                .contains("http_server_requests_seconds_bucket{");
        assertThat(metrics).contains("paystream_rate_limit_refusals_total");
        // The connection pool, from Spring Boot's r2dbc-pool metrics.
        assertThat(metrics).contains("r2dbc_pool_acquired_connections{").contains("r2dbc_pool_max_allocated_connections{")
                .contains("r2dbc_pool_pending_connections{");
        assertThat(sum(metrics, "r2dbc_pool_max_allocated_connections", Map.of())).isEqualTo(10);
    }

    /**
     * A balance stream lasts up to an hour: it is not observed as an HTTP request (its observation
     * would stay in the heap as long as the stream), while every other request is.
     */
    @Test
    void balanceStreamsAreNotObservedAsRequests() {
        UUID account = account();
        admin.get().uri("/v1/accounts/" + account + "/balance/stream").accept(MediaType.TEXT_EVENT_STREAM)
                .exchange().expectStatus().isOk().returnResult(String.class).getResponseBody().take(1)
                .blockLast(Duration.ofSeconds(30));
        // A refused stream ends at once: observed, it would be recorded at once.
        admin.get().uri("/v1/accounts/" + UUID.randomUUID() + "/balance/stream").accept(MediaType.TEXT_EVENT_STREAM)
                .exchange().expectStatus().isNotFound();
        admin.get().uri("/v1/accounts/" + account + "/balance").exchange().expectStatus().isOk();

        String metrics = scrape();
        assertThat(metrics).contains("http_server_requests_seconds_count{").contains("uri=\"/v1/accounts/{id}/balance\"")
                .doesNotContain("/balance/stream");
    }

    // Request ids, logs and traces ------------------------------------------------------------------

    @Test
    void everyAnswerCarriesARequestId() {
        String generated = anonymous.get().uri("/livez").exchange().expectStatus().isOk()
                .expectBody().returnResult().getResponseHeaders().getFirst(RequestIds.HEADER);
        assertThat(generated).matches(UUID_TEXT);
        // Echoed when sane; replaced when too long or odd.
        assertThat(requestIdFor("/livez", "lb-7f3a.2_x:9")).isEqualTo("lb-7f3a.2_x:9");
        String longest = "a".repeat(RequestIds.MAX_CHARS);
        assertThat(requestIdFor("/livez", longest)).isEqualTo(longest);
        for (String hostile : List.of("a".repeat(RequestIds.MAX_CHARS + 1), "id with spaces", "<script>", "x\"y",
                "{\"forged\":1}", "\u00e9t\u00e9")) {
            assertThat(requestIdFor("/livez", hostile)).as(hostile).matches(UUID_TEXT);
        }
        // Errors too: 401, 403, 404, 400 from the firewall.
        assertThat(anonymous.get().uri("/v1/accounts").header(RequestIds.HEADER, "r-401").exchange()
                .expectStatus().isUnauthorized().expectBody().returnResult().getResponseHeaders().getFirst(RequestIds.HEADER))
                .isEqualTo("r-401");
        assertThat(anonymous.get().uri("/v1/api-keys").header(RequestIds.HEADER, "r-403")
                .header(HttpHeaders.AUTHORIZATION, TestAuthentication.bearer(createClientKey())).exchange()
                .expectStatus().isForbidden().expectBody().returnResult().getResponseHeaders().getFirst(RequestIds.HEADER))
                .isEqualTo("r-403");
        assertThat(admin.get().uri("/v1/accounts/" + UUID.randomUUID()).header(RequestIds.HEADER, "r-404").exchange()
                .expectStatus().isNotFound().expectBody().returnResult().getResponseHeaders().getFirst(RequestIds.HEADER))
                .isEqualTo("r-404");
        assertThat(anonymous.get().uri("/v1/accounts/a%2F..%2Fb").header(RequestIds.HEADER, "r-400").exchange()
                .expectStatus().isBadRequest().expectBody().returnResult().getResponseHeaders().getFirst(RequestIds.HEADER))
                .isEqualTo("r-400");
    }

    @Test
    void theRequestIdAndTraceIdAreInTheLogLinesOfTheRequest(CapturedOutput output) {
        String requestId = "log-check-" + UUID.randomUUID();
        String traceId = UUID.randomUUID().toString().replace("-", "");
        admin.get().uri("/v1/accounts/" + UUID.randomUUID()).header(RequestIds.HEADER, requestId)
                .header("traceparent", "00-" + traceId + "-00f067aa0ba902b7-01")
                .exchange().expectStatus().isNotFound();
        // The refusal's line, logged after the ledger answered (on a database driver thread), not on the
        // thread that received the request.
        List<String> lines = output.getAll().lines().filter(line -> line.contains(requestId)).toList();
        assertThat(lines).as("log lines of request " + requestId).isNotEmpty()
                .anySatisfy(line -> assertThat(line).contains("account_not_found on GET /v1/accounts/"))
                .allSatisfy(line -> assertThat(line).contains(traceId));
    }

    @Test
    void nothingIsExportedWhenNoCollectorIsConfigured() throws ClassNotFoundException {
        Class<?> spanExporter = Class.forName("io.opentelemetry.sdk.trace.export.SpanExporter");
        List<String> exporters = new ArrayList<>();
        for (String name : context.getBeanNamesForType(spanExporter)) {
            exporters.add(context.getType(name).getName());
        }
        assertThat(exporters).noneMatch(type -> type.contains("Otlp"));
        assertThat(context.getBeansOfType(MeterRegistry.class).values())
                .noneMatch(registry -> registry.getClass().getName().contains("Otlp"));
    }

    // API documentation -----------------------------------------------------------------------------

    @Test
    void theApiDocumentationIsPublicAndDescribesEveryEndpoint() {
        // Generous: the document is generated on its first request, on a busy test machine.
        JsonNode docs = body(anonymous.mutate().responseTimeout(Duration.ofSeconds(60)).build()
                .get().uri("/v3/api-docs").exchange().expectStatus().isOk()
                .expectHeader().contentTypeCompatibleWith(MediaType.APPLICATION_JSON));
        assertThat(docs.path("openapi").asString()).startsWith("3.");

        Set<String> served = new HashSet<>();
        RequestMappingHandlerMapping mappings = context.getBean("requestMappingHandlerMapping",
                RequestMappingHandlerMapping.class);
        for (RequestMappingInfo info : mappings.getHandlerMethods().keySet()) {
            for (PathPattern pattern : info.getPatternsCondition().getPatterns()) {
                if (pattern.getPatternString().startsWith("/v1/")) {
                    for (RequestMethod method : info.getMethodsCondition().getMethods()) {
                        served.add(method.name().toLowerCase() + " " + pattern.getPatternString());
                    }
                }
            }
        }
        Set<String> documented = new HashSet<>();
        docs.path("paths").properties().forEach(path -> path.getValue().properties().forEach(operation -> {
            documented.add(operation.getKey() + " " + path.getKey());
            assertThat(operation.getValue().path("summary").asString()).as(operation.getKey() + " " + path.getKey())
                    .isNotBlank();
            assertThat(operation.getValue().path("security").size()).isEqualTo(2);
            assertThat(operation.getValue().path("responses").has("401")).isTrue();
            assertThat(operation.getValue().path("responses").path("429").path("headers").has("Retry-After")).isTrue();
        }));
        assertThat(served).hasSizeGreaterThanOrEqualTo(19);
        assertThat(documented).isEqualTo(served);

        JsonNode components = docs.path("components");
        assertThat(components.path("securitySchemes").path("apiKey").path("bearerFormat").asString()).isEqualTo("psk_...");
        assertThat(components.path("securitySchemes").path("jwt").path("bearerFormat").asString()).isEqualTo("JWT");
        assertThat(components.path("headers").propertyNames()).contains("X-Request-Id", "Idempotent-Replayed",
                "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset");
        List<String> codes = new ArrayList<>();
        components.path("schemas").path("Problem").path("properties").path("code").path("enum")
                .forEach(code -> codes.add(code.asString()));
        assertThat(codes).containsExactlyElementsOf(Arrays.stream(Problem.values()).map(Problem::code).toList());

        JsonNode transfer = docs.path("paths").path("/v1/transfers").path("post");
        List<String> parameters = new ArrayList<>();
        transfer.path("parameters").forEach(p -> parameters.add(p.has("$ref") ? p.path("$ref").asString() : p.path("name").asString()));
        assertThat(parameters).contains("Idempotency-Key", "#/components/parameters/X-Request-Id");
        assertThat(transfer.path("responses").path("201").path("content").path("application/json").path("schema")
                .path("$ref").asString()).endsWith("/Transfer");
        assertThat(transfer.path("responses").path("201").path("headers").has("Idempotent-Replayed")).isTrue();
        JsonNode stream = docs.path("paths").path("/v1/accounts/{id}/balance/stream").path("get");
        List<String> streamParameters = new ArrayList<>();
        stream.path("parameters").forEach(p -> streamParameters.add(p.path("name").asString()));
        assertThat(streamParameters).contains("Last-Event-ID");

        // Nothing internal: no actuator, no class or package names.
        String text = docs.toString();
        assertThat(text).doesNotContain("/actuator").doesNotContain("io.paystream").doesNotContain("Exception");

        anonymous.get().uri("/swagger-ui.html").exchange().expectStatus().is3xxRedirection();
        anonymous.get().uri("/webjars/swagger-ui/index.html").exchange().expectStatus().isOk();
    }

    // ---------------------------------------------------------------------------------------------

    private String requestIdFor(String path, String offered) {
        return anonymous.get().uri(path).header(RequestIds.HEADER, offered).exchange()
                .expectBody().returnResult().getResponseHeaders().getFirst(RequestIds.HEADER);
    }

    private String scrape() {
        return admin.get().uri("/actuator/prometheus").exchange().expectStatus().isOk()
                .expectBody(String.class).returnResult().getResponseBody();
    }

    /** The sum of the samples of {@code name} whose labels include {@code labels}. */
    static double sum(String metrics, String name, Map<String, String> labels) {
        Pattern sample = Pattern.compile("^" + Pattern.quote(name) + "(\\{[^}]*\\})? (\\S+)$", Pattern.MULTILINE);
        double total = 0;
        Matcher matcher = sample.matcher(metrics);
        while (matcher.find()) {
            String found = matcher.group(1) == null ? "" : matcher.group(1);
            if (labels.entrySet().stream().allMatch(l -> found.contains(l.getKey() + "=\"" + l.getValue() + "\""))) {
                total += Double.parseDouble(matcher.group(2));
            }
        }
        return total;
    }

    private static double increase(String before, String after, String name, Map<String, String> labels) {
        return sum(after, name, labels) - sum(before, name, labels);
    }

    private WebTestClient.ResponseSpec post(String path, String body, String idempotencyKey) {
        return admin.post().uri(path).contentType(MediaType.APPLICATION_JSON)
                .headers(h -> {
                    if (idempotencyKey != null) {
                        h.set("Idempotency-Key", idempotencyKey);
                    }
                })
                .bodyValue(body).exchange();
    }

    private UUID account() {
        JsonNode created = body(admin.post().uri("/v1/accounts").contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"currency\":\"EUR\",\"name\":\"obs\"}").exchange().expectStatus().isCreated());
        return UUID.fromString(created.path("id").asString());
    }

    private String createClientKey() {
        return body(admin.post().uri("/v1/api-keys").contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"name\":\"obs-" + UUID.randomUUID() + "\",\"role\":\"client\"}").exchange()
                .expectStatus().isCreated()).path("key").asString();
    }

    private JsonNode body(WebTestClient.ResponseSpec response) {
        EntityExchangeResult<byte[]> result = response.expectBody().returnResult();
        return json.readTree(result.getResponseBody());
    }
}
