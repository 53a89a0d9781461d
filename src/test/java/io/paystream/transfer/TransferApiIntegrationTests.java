package io.paystream.transfer;

import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import io.paystream.audit.LedgerAudit;
import io.paystream.testsupport.PaystreamIntegrationTest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.http.MediaType;
import org.springframework.r2dbc.core.DatabaseClient;
import org.springframework.test.web.reactive.server.WebTestClient;

import static org.assertj.core.api.Assertions.assertThat;

/** The money movement API, one request at a time: what it accepts, what it refuses, and how. */
@PaystreamIntegrationTest
class TransferApiIntegrationTests {

    @Autowired
    WebTestClient web;

    @Autowired
    DatabaseClient db;

    @AfterEach
    void ledgerStillAddsUp() {
        new LedgerAudit(db).assertInvariants();
    }

    @Test
    void depositTransferAndReadBack() {
        UUID alice = account("EUR");
        UUID bob = account("EUR");
        post("/v1/accounts/" + alice + "/deposits", Map.of("amount", 10_000, "currency", "EUR"))
                .expectStatus().isCreated()
                .expectBody().jsonPath("$.type").isEqualTo("deposit").jsonPath("$.toAccountId").isEqualTo(alice.toString());

        Map<String, Object> transfer = post("/v1/transfers", Map.of("fromAccountId", alice, "toAccountId", bob,
                "amount", 2_500, "currency", "EUR", "description", "rent", "metadata", Map.of("invoice", "42")))
                .expectStatus().isCreated()
                .expectHeader().valueMatches("Location", "/v1/transfers/[0-9a-f-]{36}")
                .expectBody(JSON).returnResult().getResponseBody();
        assertThat(transfer).containsEntry("status", "posted").containsEntry("amount", 2500)
                .containsEntry("fromAccountId", alice.toString()).containsEntry("toAccountId", bob.toString())
                .containsEntry("metadata", Map.of("invoice", "42")).containsKey("createdAt");

        web.get().uri("/v1/transfers/{id}", transfer.get("id")).exchange()
                .expectStatus().isOk()
                .expectBody().jsonPath("$.description").isEqualTo("rent").jsonPath("$.metadata.invoice").isEqualTo("42");
        web.get().uri("/v1/accounts/{id}/balance", alice).exchange()
                .expectStatus().isOk()
                .expectBody().jsonPath("$.balance").isEqualTo(7_500).jsonPath("$.version").isEqualTo(2)
                .jsonPath("$.currency").isEqualTo("EUR");
        web.get().uri("/v1/accounts/{id}", bob).exchange()
                .expectStatus().isOk()
                .expectBody().jsonPath("$.balance").isEqualTo(2_500).jsonPath("$.kind").isEqualTo("user");
    }

    @Test
    void entriesArePagedNewestFirstWithACursor() {
        UUID account = account("EUR");
        for (int i = 1; i <= 5; i++) {
            post("/v1/accounts/" + account + "/deposits", Map.of("amount", i, "currency", "EUR")).expectStatus().isCreated();
        }
        Map<String, Object> first = web.get().uri("/v1/accounts/{id}/entries?limit=2", account).exchange()
                .expectStatus().isOk().expectBody(JSON).returnResult().getResponseBody();
        assertThat(versions(first)).containsExactly(5, 4);
        assertThat(first).containsEntry("hasMore", true);
        Map<String, Object> second = web.get().uri("/v1/accounts/{id}/entries?limit=2&after={c}", account, first.get("nextCursor"))
                .exchange().expectStatus().isOk().expectBody(JSON).returnResult().getResponseBody();
        assertThat(versions(second)).containsExactly(3, 2);
        Map<String, Object> last = web.get().uri("/v1/accounts/{id}/entries?limit=2&after={c}", account, second.get("nextCursor"))
                .exchange().expectStatus().isOk().expectBody(JSON).returnResult().getResponseBody();
        assertThat(versions(last)).containsExactly(1);
        assertThat(last).containsEntry("hasMore", false).containsEntry("nextCursor", null);

        problem(web.get().uri("/v1/accounts/{id}/entries?limit=201", account).exchange(), 400, "validation_failed");
        problem(web.get().uri("/v1/accounts/{id}/entries?limit=0", account).exchange(), 400, "validation_failed");
        problem(web.get().uri("/v1/accounts/{id}/entries?limit=abc", account).exchange(), 400, "validation_failed");
    }

    @Test
    void balanceAsOfAnInstant() {
        UUID account = account("EUR");
        post("/v1/accounts/" + account + "/deposits", Map.of("amount", 100, "currency", "EUR")).expectStatus().isCreated();
        Instant between = Instant.now();
        post("/v1/accounts/" + account + "/deposits", Map.of("amount", 50, "currency", "EUR")).expectStatus().isCreated();

        web.get().uri("/v1/accounts/{id}/balance?asOf={t}", account, between.toString()).exchange()
                .expectStatus().isOk().expectBody().jsonPath("$.balance").isEqualTo(100).jsonPath("$.version").isEqualTo(1);
        web.get().uri("/v1/accounts/{id}/balance?asOf={t}", account, "2000-01-01T00:00:00Z").exchange()
                .expectStatus().isOk().expectBody().jsonPath("$.balance").isEqualTo(0).jsonPath("$.version").isEqualTo(0);
        web.get().uri("/v1/accounts/{id}/balance", account).exchange()
                .expectStatus().isOk().expectBody().jsonPath("$.balance").isEqualTo(150);
        problem(web.get().uri("/v1/accounts/{id}/balance?asOf=yesterday", account).exchange(), 400, "validation_failed");
    }

    @Test
    void businessRefusalsAre422AndChangeNothing() {
        UUID eur = account("EUR");
        UUID otherEur = account("EUR");
        UUID usd = account("USD");
        post("/v1/accounts/" + eur + "/deposits", Map.of("amount", 100, "currency", "EUR")).expectStatus().isCreated();
        long before = new LedgerAudit(db).transactionCount();

        problem(post("/v1/transfers", transfer(eur, otherEur, 101, "EUR")), 422, "insufficient_funds");
        problem(post("/v1/transfers", transfer(eur, eur, 1, "EUR")), 422, "same_account");
        problem(post("/v1/transfers", transfer(eur, usd, 1, "EUR")), 422, "currency_mismatch");
        problem(post("/v1/transfers", transfer(eur, otherEur, 1, "USD")), 422, "currency_mismatch");
        problem(post("/v1/accounts/" + eur + "/deposits", Map.of("amount", 1, "currency", "USD")), 422, "currency_mismatch");
        problem(post("/v1/accounts/" + eur + "/withdrawals", Map.of("amount", 101, "currency", "EUR")), 422, "insufficient_funds");
        problem(post("/v1/transfers", transfer(eur, UUID.randomUUID(), 1, "EUR")), 404, "account_not_found");
        problem(post("/v1/accounts/" + UUID.randomUUID() + "/deposits", Map.of("amount", 1, "currency", "EUR")), 404,
                "account_not_found");

        // The outside world is reachable only through deposits and withdrawals: no minting by transfer.
        String world = (String) post("/v1/accounts/" + otherEur + "/deposits", Map.of("amount", 1, "currency", "EUR"))
                .expectStatus().isCreated().expectBody(JSON).returnResult().getResponseBody().get("fromAccountId");
        problem(post("/v1/transfers", transfer(UUID.fromString(world), eur, 1_000_000, "EUR")), 422,
                "system_account_not_allowed");

        assertThat(new LedgerAudit(db).transactionCount()).isEqualTo(before + 1);
    }

    @Test
    void aBatchWithANullTransferIsRefusedAs400() {
        // Found by the hostile-input properties: a null item used to reach the ledger and fail there (500).
        problem(postRaw("/v1/transfer-batches", "{\"transfers\":[null]}"), 400, "validation_failed");
    }

    @Test
    void missingThingsAre404Problems() {
        problem(web.get().uri("/v1/accounts/{id}", UUID.randomUUID()).exchange(), 404, "account_not_found");
        problem(web.get().uri("/v1/accounts/{id}/balance", UUID.randomUUID()).exchange(), 404, "account_not_found");
        problem(web.get().uri("/v1/accounts/{id}/entries", UUID.randomUUID()).exchange(), 404, "account_not_found");
        problem(web.get().uri("/v1/transfers/{id}", UUID.randomUUID()).exchange(), 404, "transfer_not_found");
        problem(web.get().uri("/v1/no-such-thing").exchange(), 404, "not_found");
        problem(web.get().uri("/v1/accounts/not-a-uuid").exchange(), 400, "validation_failed");
    }

    @ParameterizedTest
    @ValueSource(strings = {"0", "-1", "-0", "1.5", "1.0", "1e3", "\"100\"", "9223372036854775808",
            "1000000000000001", "null", "true", "[]", "{}"})
    void amountsThatAreNotPositiveIntegersWithinRangeAre400(String amount) {
        UUID account = account("EUR");
        String body = "{\"amount\":" + amount + ",\"currency\":\"EUR\"}";
        problem(postRaw("/v1/accounts/" + account + "/deposits", body), 400, null);
        assertThat(new LedgerAudit(db).balanceOf(account)).isZero();
    }

    @Test
    void theLargestAmountIsAccepted() {
        UUID account = account("EUR");
        post("/v1/accounts/" + account + "/deposits", Map.of("amount", 1_000_000_000_000_000L, "currency", "EUR"))
                .expectStatus().isCreated();
    }

    @Test
    void malformedRequestsAre4xxProblems() {
        UUID account = account("EUR");
        String path = "/v1/accounts/" + account + "/deposits";
        problem(postRaw(path, "{\"amount\":1,"), 400, "malformed_json");
        problem(postRaw(path, "not json"), 400, "malformed_json");
        problem(postRaw(path, "{\"amount\":1,\"amount\":2,\"currency\":\"EUR\"}"), 400, "malformed_json");
        problem(postRaw(path, "{\"amount\":1,\"currency\":\"EUR\"} {}"), 400, "malformed_json");
        problem(postRaw(path, ""), 400, null);
        problem(postRaw(path, "{\"amount\":1,\"currency\":\"EUR\",\"balance\":5}"), 400, "unknown_field");
        problem(postRaw(path, "{\"amount\":1,\"currency\":\"eur\"}"), 400, "validation_failed");
        problem(postRaw(path, "{\"amount\":1,\"currency\":\"ABC\"}"), 400, "validation_failed");
        problem(postRaw(path, "{\"amount\":1,\"currency\":\"EUR\",\"description\":\"a\\u0000b\"}"), 400, "validation_failed");
        problem(postRaw(path, "{\"amount\":1,\"currency\":\"EUR\",\"metadata\":{\"k\":1}}"), 400, null);
        problem(postRaw(path, "{\"amount\":1,\"currency\":\"EUR\",\"metadata\":{\"k\":{\"deep\":\"x\"}}}"), 400, null);
        problem(postRaw("/v1/accounts", "{\"currency\":\"EUR\",\"name\":\"x\",\"kind\":\"system\"}"), 400, "unknown_field");
        problem(postRaw("/v1/accounts", "{\"currency\":\"EUR\",\"name\":\"\"}"), 400, "validation_failed");
        problem(postRaw("/v1/accounts", "{\"currency\":\"EUR\",\"name\":\"" + "x".repeat(201) + "\"}"), 400,
                "validation_failed");

        problem(web.post().uri(path).contentType(MediaType.TEXT_PLAIN).header("Idempotency-Key", "k1")
                .bodyValue("amount=1").exchange(), 415, "unsupported_media_type");
        problem(web.post().uri(path).contentType(MediaType.APPLICATION_JSON).bodyValue("{\"amount\":1,\"currency\":\"EUR\"}")
                .exchange(), 400, "idempotency_key_required");
        problem(web.post().uri(path).contentType(MediaType.APPLICATION_JSON).header("Idempotency-Key", "x".repeat(256))
                .bodyValue("{\"amount\":1,\"currency\":\"EUR\"}").exchange(), 400, "validation_failed");
        problem(web.delete().uri(path).exchange(), 405, "method_not_allowed");
        problem(postRaw(path, "{\"amount\":1,\"currency\":\"EUR\",\"description\":\"" + "x".repeat(300_000) + "\"}"),
                413, "payload_too_large");
        assertThat(new LedgerAudit(db).balanceOf(account)).isZero();
    }

    @Test
    void validationNamesEachBadField() {
        Map<String, Object> body = postRaw("/v1/transfers", "{\"amount\":0,\"currency\":\"EUR\"}")
                .expectStatus().isBadRequest().expectBody(JSON).returnResult().getResponseBody();
        @SuppressWarnings("unchecked")
        List<Map<String, Object>> errors = (List<Map<String, Object>>) body.get("errors");
        assertThat(errors).extracting(e -> e.get("field")).contains("amount", "fromAccountId", "toAccountId");
    }

    // ---------------------------------------------------------------------------------------------

    private static final org.springframework.core.ParameterizedTypeReference<Map<String, Object>> JSON =
            new org.springframework.core.ParameterizedTypeReference<>() {
            };

    private UUID account(String currency) {
        Map<String, Object> body = post("/v1/accounts", Map.of("currency", currency, "name", "Test " + currency))
                .expectStatus().isCreated()
                .expectHeader().valueMatches("Location", "/v1/accounts/[0-9a-f-]{36}")
                .expectBody(JSON).returnResult().getResponseBody();
        assertThat(body).containsEntry("currency", currency).containsEntry("balance", 0).containsEntry("version", 0);
        return UUID.fromString((String) body.get("id"));
    }

    private static Map<String, Object> transfer(UUID from, UUID to, long amount, String currency) {
        return Map.of("fromAccountId", from, "toAccountId", to, "amount", amount, "currency", currency);
    }

    private WebTestClient.ResponseSpec post(String path, Object body) {
        return web.post().uri(path).contentType(MediaType.APPLICATION_JSON).header("Idempotency-Key", UUID.randomUUID().toString())
                .bodyValue(body).exchange();
    }

    private WebTestClient.ResponseSpec postRaw(String path, String body) {
        return web.post().uri(path).contentType(MediaType.APPLICATION_JSON).header("Idempotency-Key", UUID.randomUUID().toString())
                .bodyValue(body).exchange();
    }

    /** A problem+json response with the status and code, and no internals in it. */
    private static void problem(WebTestClient.ResponseSpec response, int status, String code) {
        String body = response.expectStatus().isEqualTo(status)
                .expectHeader().contentTypeCompatibleWith(MediaType.APPLICATION_PROBLEM_JSON)
                .expectBody(String.class).returnResult().getResponseBody();
        assertThat(body).contains("\"status\":" + status).contains("\"type\":\"https://paystream.io/problems/");
        if (code != null) {
            assertThat(body).contains("\"code\":\"" + code + "\"");
        }
        assertThat(body).doesNotContainIgnoringCase("exception").doesNotContain("SQL").doesNotContain("at io.")
                .doesNotContain("tools.jackson").doesNotContain("org.springframework");
    }

    @SuppressWarnings("unchecked")
    private static List<Integer> versions(Map<String, Object> page) {
        return ((List<Map<String, Object>>) page.get("data")).stream().map(e -> (Integer) e.get("version")).toList();
    }
}
