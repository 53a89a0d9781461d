package io.paystream.security;

import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import io.paystream.audit.LedgerAudit;
import io.paystream.testsupport.PaystreamIntegrationTest;
import io.paystream.testsupport.TestAuthentication;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.system.CapturedOutput;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.boot.test.system.OutputCaptureExtension;
import org.springframework.core.ParameterizedTypeReference;
import org.springframework.http.HttpHeaders;
import org.springframework.http.HttpMethod;
import org.springframework.http.MediaType;
import org.springframework.r2dbc.core.DatabaseClient;
import org.springframework.test.web.reactive.server.WebTestClient;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Who may call what: every endpoint without a key, with a revoked key, with another client's key
 * (broken object level authorization), and with a client key on admin endpoints.
 */
@PaystreamIntegrationTest
@ExtendWith(OutputCaptureExtension.class)
class AuthorizationIntegrationTests {

    private static final ParameterizedTypeReference<Map<String, Object>> JSON = new ParameterizedTypeReference<>() {
    };

    @LocalServerPort
    int port;

    /** A client with no default Authorization header: each call sets its own, or none. */
    WebTestClient web;

    @Autowired
    DatabaseClient db;

    String aliceKey;
    String bobKey;
    UUID alice;
    UUID aliceSavings;
    UUID bob;
    UUID bobUsd;
    String aliceTransfer;
    String aliceHold;

    @BeforeEach
    void twoClients() {
        web = WebTestClient.bindToServer().baseUrl("http://127.0.0.1:" + port)
                .responseTimeout(java.time.Duration.ofSeconds(30)).build(); // as PaystreamIntegrationTest's client
        aliceKey = createKey("alice", "client");
        bobKey = createKey("bob", "client");
        alice = account(aliceKey, "EUR");
        aliceSavings = account(aliceKey, "EUR");
        bob = account(bobKey, "EUR");
        bobUsd = account(bobKey, "USD");
        call(TestAuthentication.ADMIN_KEY, HttpMethod.POST, "/v1/accounts/" + alice + "/deposits",
                "{\"amount\":1000,\"currency\":\"EUR\"}").expectStatus().isCreated();
        aliceTransfer = (String) json(call(aliceKey, HttpMethod.POST, "/v1/transfers", transfer(alice, aliceSavings, 10))
                .expectStatus().isCreated()).get("id");
        aliceHold = (String) json(call(aliceKey, HttpMethod.POST, "/v1/holds", "{\"fromAccountId\":\"" + alice
                + "\",\"toAccountId\":\"" + aliceSavings + "\",\"amount\":5,\"currency\":\"EUR\",\"expiresAt\":\""
                + Instant.now().plusSeconds(3600) + "\"}").expectStatus().isCreated()).get("id");
    }

    @AfterEach
    void ledgerStillAddsUp() {
        new LedgerAudit(db).assertInvariants();
    }

    /** Every /v1 endpoint, with a body where it takes one. */
    private List<String[]> endpoints() {
        return List.of(
                new String[] {"GET", "/v1/accounts", ""},
                new String[] {"POST", "/v1/accounts", "{\"currency\":\"EUR\",\"name\":\"x\"}"},
                new String[] {"GET", "/v1/accounts/" + alice, ""},
                new String[] {"GET", "/v1/accounts/" + alice + "/balance", ""},
                new String[] {"GET", "/v1/accounts/" + alice + "/entries", ""},
                new String[] {"POST", "/v1/transfers", transfer(alice, bob, 1)},
                new String[] {"GET", "/v1/transfers/" + aliceTransfer, ""},
                new String[] {"POST", "/v1/accounts/" + alice + "/deposits", "{\"amount\":1,\"currency\":\"EUR\"}"},
                new String[] {"POST", "/v1/accounts/" + alice + "/withdrawals", "{\"amount\":1,\"currency\":\"EUR\"}"},
                new String[] {"POST", "/v1/holds", "{\"fromAccountId\":\"" + alice + "\",\"toAccountId\":\"" + bob
                        + "\",\"amount\":1,\"currency\":\"EUR\"}"},
                new String[] {"GET", "/v1/holds/" + aliceHold, ""},
                new String[] {"POST", "/v1/holds/" + aliceHold + "/capture", "{}"},
                new String[] {"POST", "/v1/holds/" + aliceHold + "/void", ""},
                new String[] {"POST", "/v1/transfer-batches", "{\"transfers\":[" + transfer(alice, bob, 1) + "]}"},
                new String[] {"POST", "/v1/transfers/" + aliceTransfer + "/reversals", "{}"},
                new String[] {"GET", "/v1/api-keys", ""},
                new String[] {"POST", "/v1/api-keys", "{\"name\":\"x\",\"role\":\"client\"}"},
                new String[] {"DELETE", "/v1/api-keys/" + UUID.randomUUID(), ""});
    }

    @Test
    void everyEndpointNeedsAKey() {
        for (String[] endpoint : endpoints()) {
            problem(call(null, HttpMethod.valueOf(endpoint[0]), endpoint[1], endpoint[2]), 401, "unauthorized");
            problem(call("psk_not_a_real_key", HttpMethod.valueOf(endpoint[0]), endpoint[1], endpoint[2]), 401, "unauthorized");
            problem(callRaw("Basic YWxpY2U6c2VjcmV0", HttpMethod.valueOf(endpoint[0]), endpoint[1], endpoint[2]), 401,
                    "unauthorized");
        }
        assertThat(balance(alice)).isEqualTo(990);
    }

    @Test
    void healthProbesAndApiDocsStayPublic() {
        for (String path : List.of("/actuator/health", "/actuator/health/liveness", "/actuator/health/readiness",
                "/livez", "/readyz")) {
            web.get().uri(path).exchange().expectStatus().isOk().expectBody().jsonPath("$.status").isEqualTo("UP");
        }
        web.get().uri("/v3/api-docs").exchange().expectStatus().isOk();
        web.get().uri("/swagger-ui.html").exchange().expectStatus().is3xxRedirection();
    }

    @Test
    void metricsAndOtherActuatorEndpointsAreForAdmins() {
        for (String path : List.of("/actuator", "/actuator/prometheus", "/actuator/metrics", "/actuator/env")) {
            problem(call(null, HttpMethod.GET, path, ""), 401, "unauthorized");
            problem(call(aliceKey, HttpMethod.GET, path, ""), 403, "forbidden");
        }
        call(TestAuthentication.ADMIN_KEY, HttpMethod.GET, "/actuator/prometheus", "").expectStatus().isOk();
    }

    @Test
    void aRevokedKeyStopsWorkingAtOnce() {
        String key = createKey("short-lived", "client");
        UUID account = account(key, "EUR");
        String id = keyId("short-lived");
        call(TestAuthentication.ADMIN_KEY, HttpMethod.DELETE, "/v1/api-keys/" + id, "").expectStatus().isNoContent();
        problem(call(key, HttpMethod.GET, "/v1/accounts/" + account, ""), 401, "unauthorized");
        problem(call(TestAuthentication.ADMIN_KEY, HttpMethod.DELETE, "/v1/api-keys/" + id, ""), 404, "api_key_not_found");
    }

    @Test
    void anotherClientsThingsAreNotFound() {
        // Bob reads or debits what is Alice's: exactly as if it did not exist.
        problem(call(bobKey, HttpMethod.GET, "/v1/accounts/" + alice, ""), 404, "account_not_found");
        problem(call(bobKey, HttpMethod.GET, "/v1/accounts/" + alice + "/balance", ""), 404, "account_not_found");
        problem(call(bobKey, HttpMethod.GET, "/v1/accounts/" + alice + "/balance?asOf=2030-01-01T00:00:00Z", ""), 404,
                "account_not_found");
        problem(call(bobKey, HttpMethod.GET, "/v1/accounts/" + alice + "/entries", ""), 404, "account_not_found");
        problem(call(bobKey, HttpMethod.GET, "/v1/transfers/" + aliceTransfer, ""), 404, "transfer_not_found");
        problem(call(bobKey, HttpMethod.GET, "/v1/holds/" + aliceHold, ""), 404, "hold_not_found");
        problem(call(bobKey, HttpMethod.POST, "/v1/transfers", transfer(alice, bob, 1)), 404, "account_not_found");
        problem(call(bobKey, HttpMethod.POST, "/v1/accounts/" + alice + "/withdrawals", "{\"amount\":1,\"currency\":\"EUR\"}"),
                404, "account_not_found");
        problem(call(bobKey, HttpMethod.POST, "/v1/holds", "{\"fromAccountId\":\"" + alice + "\",\"toAccountId\":\"" + bob
                + "\",\"amount\":1,\"currency\":\"EUR\"}"), 404, "account_not_found");
        problem(call(bobKey, HttpMethod.POST, "/v1/holds/" + aliceHold + "/capture", "{}"), 404, "hold_not_found");
        problem(call(bobKey, HttpMethod.POST, "/v1/holds/" + aliceHold + "/void", ""), 404, "hold_not_found");
        problem(call(bobKey, HttpMethod.POST, "/v1/transfer-batches", "{\"transfers\":[" + transfer(alice, bob, 1) + "]}"),
                404, "account_not_found");
        problem(call(bobKey, HttpMethod.POST, "/v1/transfers/" + aliceTransfer + "/reversals", "{}"), 404,
                "transfer_not_found");
        // Bob's list shows only Bob's accounts.
        Map<String, Object> page = json(call(bobKey, HttpMethod.GET, "/v1/accounts?limit=200", "").expectStatus().isOk());
        List<Object> listed = ((List<?>) page.get("data")).stream().map(a -> ((Map<?, ?>) a).get("id")).map(Object.class::cast)
                .toList();
        assertThat(listed).containsExactlyInAnyOrder(bob.toString(), bobUsd.toString());
        assertThat(balance(alice)).isEqualTo(990);
    }

    @Test
    void aClientMayPayAnyoneWithoutLearningAboutThem() {
        call(aliceKey, HttpMethod.POST, "/v1/transfers", transfer(alice, bob, 7)).expectStatus().isCreated();
        assertThat(balance(bob)).isEqualTo(7);
        // Another currency, a system account and a missing account all look the same: not found.
        problem(call(aliceKey, HttpMethod.POST, "/v1/transfers", transfer(alice, bobUsd, 1)), 404, "account_not_found");
        problem(call(aliceKey, HttpMethod.POST, "/v1/transfers", transfer(alice, UUID.randomUUID(), 1)), 404,
                "account_not_found");
        String world = db.sql("SELECT id FROM accounts WHERE kind = 'system' AND currency = 'EUR'")
                .map(row -> row.get("id", UUID.class).toString()).one().block();
        problem(call(aliceKey, HttpMethod.POST, "/v1/transfers", transfer(alice, UUID.fromString(world), 1)), 404,
                "account_not_found");
        // Bob sees the payment he received.
        call(bobKey, HttpMethod.GET, "/v1/accounts/" + bob + "/entries", "").expectStatus().isOk()
                .expectBody().jsonPath("$.data[0].delta").isEqualTo(7);
    }

    @Test
    void clientKeysCannotCallAdminEndpoints() {
        problem(call(aliceKey, HttpMethod.GET, "/v1/api-keys", ""), 403, "forbidden");
        problem(call(aliceKey, HttpMethod.POST, "/v1/api-keys", "{\"name\":\"x\",\"role\":\"admin\"}"), 403, "forbidden");
        problem(call(aliceKey, HttpMethod.DELETE, "/v1/api-keys/" + UUID.randomUUID(), ""), 403, "forbidden");
        // A deposit debits the outside world, which no client owns.
        problem(call(aliceKey, HttpMethod.POST, "/v1/accounts/" + alice + "/deposits", "{\"amount\":1,\"currency\":\"EUR\"}"),
                403, "forbidden");
        // Fields a client does not own cannot be set through a body.
        problem(call(aliceKey, HttpMethod.POST, "/v1/accounts",
                "{\"currency\":\"EUR\",\"name\":\"x\",\"kind\":\"system\"}"), 400, "unknown_field");
        problem(call(aliceKey, HttpMethod.POST, "/v1/accounts",
                "{\"currency\":\"EUR\",\"name\":\"x\",\"allowNegative\":true}"), 400, "unknown_field");
        problem(call(aliceKey, HttpMethod.POST, "/v1/accounts",
                "{\"currency\":\"EUR\",\"name\":\"x\",\"ownerId\":\"" + UUID.randomUUID() + "\"}"), 400, "unknown_field");
        assertThat(balance(alice)).isEqualTo(990);
    }

    @Test
    void idempotencyKeysAreScopedPerClient() {
        UUID carolAccount = account(createKey("carol", "client"), "EUR");
        call(TestAuthentication.ADMIN_KEY, HttpMethod.POST, "/v1/accounts/" + bob + "/deposits",
                "{\"amount\":100,\"currency\":\"EUR\"}").expectStatus().isCreated();
        byte[] aliceBody = call(aliceKey, HttpMethod.POST, "/v1/transfers", transfer(alice, carolAccount, 3), "shared-key")
                .expectStatus().isCreated().expectBody().returnResult().getResponseBody();
        byte[] bobBody = call(bobKey, HttpMethod.POST, "/v1/transfers", transfer(bob, carolAccount, 3), "shared-key")
                .expectStatus().isCreated().expectHeader().doesNotExist("Idempotent-Replayed")
                .expectBody().returnResult().getResponseBody();
        assertThat(bobBody).isNotEqualTo(aliceBody);
        assertThat(balance(carolAccount)).isEqualTo(6);
    }

    @Test
    void keysAreShownOnceAndNeverLogged(CapturedOutput output) {
        Map<String, Object> created = json(call(TestAuthentication.ADMIN_KEY, HttpMethod.POST, "/v1/api-keys",
                "{\"name\":\"secret-test\",\"role\":\"client\"}").expectStatus().isCreated());
        String key = (String) created.get("key");
        assertThat(key).startsWith("psk_").hasSizeGreaterThan(40);
        String listed = call(TestAuthentication.ADMIN_KEY, HttpMethod.GET, "/v1/api-keys", "").expectStatus().isOk()
                .expectBody(String.class).returnResult().getResponseBody();
        assertThat(listed).contains("secret-test").doesNotContain(key).doesNotContain(aliceKey);
        // Use it, misuse it, and fail with it.
        call(key, HttpMethod.GET, "/v1/accounts", "").expectStatus().isOk();
        String refused = call(key + "x", HttpMethod.GET, "/v1/accounts", "").expectStatus().isUnauthorized()
                .expectBody(String.class).returnResult().getResponseBody();
        assertThat(refused).doesNotContain(key);
        assertThat(output.getAll()).doesNotContain(key).doesNotContain(aliceKey).doesNotContain(bobKey)
                .doesNotContain(TestAuthentication.ADMIN_KEY);
        Long stored = db.sql("SELECT count(*) AS n FROM api_keys WHERE key_prefix = :p AND key_hash = sha256(convert_to(:k, 'UTF8'))")
                .bind("p", key.substring(0, 12)).bind("k", key).map(row -> row.get("n", Long.class)).one().block();
        assertThat(stored).as("only the hash is stored").isEqualTo(1);
    }

    // ---------------------------------------------------------------------------------------------

    private String createKey(String name, String role) {
        Map<String, Object> created = json(call(TestAuthentication.ADMIN_KEY, HttpMethod.POST, "/v1/api-keys",
                "{\"name\":\"" + name + "\",\"role\":\"" + role + "\"}").expectStatus().isCreated());
        return (String) created.get("key");
    }

    @SuppressWarnings("unchecked")
    private String keyId(String name) {
        List<Map<String, Object>> keys = call(TestAuthentication.ADMIN_KEY, HttpMethod.GET, "/v1/api-keys", "")
                .expectStatus().isOk().expectBody(List.class).returnResult().getResponseBody();
        return keys.stream().filter(k -> name.equals(k.get("name"))).map(k -> (String) k.get("id")).findFirst().orElseThrow();
    }

    private UUID account(String key, String currency) {
        Map<String, Object> body = json(call(key, HttpMethod.POST, "/v1/accounts",
                "{\"currency\":\"" + currency + "\",\"name\":\"x\"}").expectStatus().isCreated());
        return UUID.fromString((String) body.get("id"));
    }

    private long balance(UUID account) {
        return new LedgerAudit(db).balanceOf(account);
    }

    private static String transfer(UUID from, UUID to, long amount) {
        return "{\"fromAccountId\":\"" + from + "\",\"toAccountId\":\"" + to + "\",\"amount\":" + amount
                + ",\"currency\":\"EUR\"}";
    }

    private WebTestClient.ResponseSpec call(String key, HttpMethod method, String path, String body) {
        return call(key, method, path, body, UUID.randomUUID().toString());
    }

    private WebTestClient.ResponseSpec call(String key, HttpMethod method, String path, String body, String idempotencyKey) {
        return callRaw(key == null ? null : TestAuthentication.bearer(key), method, path, body, idempotencyKey);
    }

    private WebTestClient.ResponseSpec callRaw(String authorization, HttpMethod method, String path, String body) {
        return callRaw(authorization, method, path, body, UUID.randomUUID().toString());
    }

    private WebTestClient.ResponseSpec callRaw(String authorization, HttpMethod method, String path, String body,
            String idempotencyKey) {
        WebTestClient.RequestBodySpec request = web.method(method).uri(path)
                .headers(h -> {
                    if (authorization != null) {
                        h.set(HttpHeaders.AUTHORIZATION, authorization);
                    }
                    h.set("Idempotency-Key", idempotencyKey);
                });
        return body.isEmpty() ? request.exchange()
                : request.contentType(MediaType.APPLICATION_JSON).bodyValue(body).exchange();
    }

    private static Map<String, Object> json(WebTestClient.ResponseSpec response) {
        return response.expectBody(JSON).returnResult().getResponseBody();
    }

    private static void problem(WebTestClient.ResponseSpec response, int status, String code) {
        String body = response.expectStatus().isEqualTo(status)
                .expectHeader().contentTypeCompatibleWith(MediaType.APPLICATION_PROBLEM_JSON)
                .expectBody(String.class).returnResult().getResponseBody();
        assertThat(body).contains("\"code\":\"" + code + "\"").doesNotContain("psk_");
    }
}
