package io.paystream.transfer;

import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import io.paystream.audit.LedgerAudit;
import io.paystream.testsupport.PaystreamIntegrationTest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.core.ParameterizedTypeReference;
import org.springframework.http.MediaType;
import org.springframework.r2dbc.core.DatabaseClient;
import org.springframework.test.web.reactive.server.EntityExchangeResult;
import org.springframework.test.web.reactive.server.WebTestClient;

import static org.assertj.core.api.Assertions.assertThat;

/** Idempotency, holds, batches and reversals, one request at a time. */
@PaystreamIntegrationTest
class LifecycleApiIntegrationTests {

    private static final ParameterizedTypeReference<Map<String, Object>> JSON = new ParameterizedTypeReference<>() {
    };

    @Autowired
    WebTestClient web;

    @Autowired
    DatabaseClient db;

    @AfterEach
    void ledgerStillAddsUp() {
        new LedgerAudit(db).assertInvariants();
    }

    // Idempotency ------------------------------------------------------------------------------

    @Test
    void aReplayReturnsTheOriginalBytesAndMovesNothing() {
        UUID from = account("EUR");
        UUID to = account("EUR");
        deposit(from, 1_000);
        String body = "{\"fromAccountId\":\"" + from + "\",\"toAccountId\":\"" + to + "\",\"amount\":300,\"currency\":\"EUR\"}";

        EntityExchangeResult<byte[]> first = post("/v1/transfers", "replay-1", body).expectStatus().isCreated()
                .expectHeader().doesNotExist("Idempotent-Replayed").expectBody().returnResult();
        // The same request, with its keys in another order and other whitespace: the same fingerprint.
        String reordered = "{ \"currency\":\"EUR\", \"amount\":300, \"toAccountId\":\"" + to + "\", \"fromAccountId\":\"" + from + "\" }";
        EntityExchangeResult<byte[]> replay = post("/v1/transfers", "replay-1", reordered).expectStatus().isCreated()
                .expectHeader().valueEquals("Idempotent-Replayed", "true").expectBody().returnResult();

        assertThat(replay.getResponseBody()).isEqualTo(first.getResponseBody());
        assertThat(replay.getResponseHeaders().getLocation()).isEqualTo(first.getResponseHeaders().getLocation());
        assertThat(balance(to)).isEqualTo(300);
    }

    @Test
    void theSameKeyForADifferentRequestIsRefused() {
        UUID account = account("EUR");
        post("/v1/accounts/" + account + "/deposits", "reuse-1", "{\"amount\":5,\"currency\":\"EUR\"}").expectStatus().isCreated();
        problem(post("/v1/accounts/" + account + "/deposits", "reuse-1", "{\"amount\":6,\"currency\":\"EUR\"}"), 422,
                "idempotency_key_reused");
        problem(post("/v1/accounts/" + account + "/withdrawals", "reuse-1", "{\"amount\":5,\"currency\":\"EUR\"}"), 422,
                "idempotency_key_reused");
        assertThat(balance(account)).isEqualTo(5);
    }

    @Test
    void aRefusedRequestStaysRefusedOnReplayEvenAfterFunding() {
        UUID from = account("EUR");
        UUID to = account("EUR");
        String body = "{\"fromAccountId\":\"" + from + "\",\"toAccountId\":\"" + to + "\",\"amount\":500,\"currency\":\"EUR\"}";
        byte[] refused = problem(post("/v1/transfers", "refused-1", body), 422, "insufficient_funds");

        deposit(from, 10_000);
        EntityExchangeResult<byte[]> replay = post("/v1/transfers", "refused-1", body).expectStatus().isEqualTo(422)
                .expectHeader().valueEquals("Idempotent-Replayed", "true").expectBody().returnResult();

        assertThat(replay.getResponseBody()).isEqualTo(refused);
        assertThat(balance(to)).isZero();
        assertThat(balance(from)).isEqualTo(10_000);
    }

    @Test
    void keysAreKeptForTheRetentionThenPurged() {
        db.sql("""
                INSERT INTO idempotency_keys (scope, key, fingerprint, status_code, response_body, created_at)
                VALUES ('', 'ancient', sha256('x'), 201, '{}', now() - interval '25 hours'),
                       ('', 'recent', sha256('y'), 201, '{}', now() - interval '23 hours')""").then().block();

        Long purged = purger.purgeOnce().block();

        assertThat(purged).isGreaterThanOrEqualTo(1);
        List<String> left = db.sql("SELECT key FROM idempotency_keys WHERE key IN ('ancient', 'recent')")
                .map(row -> row.get("key", String.class)).all().collectList().block();
        assertThat(left).containsExactly("recent");
    }

    @Autowired
    io.paystream.idempotency.IdempotencyKeyPurgerAccess purger;

    // Holds ------------------------------------------------------------------------------------

    @Test
    void aPartialCaptureMovesPartAndReleasesTheRest() {
        UUID from = account("EUR");
        UUID to = account("EUR");
        deposit(from, 1_000);
        Map<String, Object> hold = json(post("/v1/holds", "hold-1", holdBody(from, to, 700)).expectStatus().isCreated());
        assertThat(hold).containsEntry("status", "pending").containsEntry("amount", 700);
        Map<String, Object> held = web.get().uri("/v1/accounts/{id}/balance", from).exchange().expectStatus().isOk()
                .expectBody(JSON).returnResult().getResponseBody();
        assertThat(held).containsEntry("balance", 1_000).containsEntry("held", 700).containsEntry("available", 300);
        // Available, not balance, is what a debit may use.
        problem(post("/v1/accounts/" + from + "/withdrawals", "w-1", "{\"amount\":301,\"currency\":\"EUR\"}"), 422,
                "insufficient_funds");

        problem(post("/v1/holds/" + hold.get("id") + "/capture", "cap-0", "{\"amount\":701}"), 422, "capture_exceeds_hold");
        Map<String, Object> captured = json(post("/v1/holds/" + hold.get("id") + "/capture", "cap-1", "{\"amount\":250}")
                .expectStatus().isOk());

        assertThat(captured).containsEntry("status", "posted").containsEntry("capturedAmount", 250);
        assertThat(captured.get("transactionId")).isNotNull();
        Map<String, Object> after = web.get().uri("/v1/accounts/{id}/balance", from).exchange().expectStatus().isOk()
                .expectBody(JSON).returnResult().getResponseBody();
        assertThat(after).containsEntry("balance", 750).containsEntry("held", 0).containsEntry("available", 750);
        assertThat(balance(to)).isEqualTo(250);
        web.get().uri("/v1/holds/{id}", hold.get("id")).exchange().expectStatus().isOk()
                .expectBody().jsonPath("$.status").isEqualTo("posted").jsonPath("$.capturedAmount").isEqualTo(250);
        web.get().uri("/v1/transfers/{id}", captured.get("transactionId")).exchange().expectStatus().isOk()
                .expectBody().jsonPath("$.amount").isEqualTo(250).jsonPath("$.holdId").isEqualTo(hold.get("id"));
    }

    @Test
    void aVoidedHoldCannotBeCapturedAndReleasesAll() {
        UUID from = account("EUR");
        UUID to = account("EUR");
        deposit(from, 1_000);
        Map<String, Object> hold = json(post("/v1/holds", "hold-2", holdBody(from, to, 400)).expectStatus().isCreated());

        json(post("/v1/holds/" + hold.get("id") + "/void", "void-1", "").expectStatus().isOk());
        problem(post("/v1/holds/" + hold.get("id") + "/capture", "cap-2", "{}"), 409, "hold_not_pending");
        problem(post("/v1/holds/" + hold.get("id") + "/void", "void-2", ""), 409, "hold_not_pending");
        problem(post("/v1/holds/" + UUID.randomUUID() + "/void", "void-3", ""), 404, "hold_not_found");

        assertThat(balance(from)).isEqualTo(1_000);
        web.get().uri("/v1/accounts/{id}", from).exchange().expectStatus().isOk()
                .expectBody().jsonPath("$.held").isEqualTo(0).jsonPath("$.available").isEqualTo(1_000);
    }

    @Test
    void aCaptureWithABrokenBodyIsRefusedAndCapturesNothing() {
        UUID from = account("EUR");
        UUID to = account("EUR");
        deposit(from, 1_000);
        Map<String, Object> hold = json(post("/v1/holds", "hold-3", holdBody(from, to, 1)).expectStatus().isCreated());
        String capture = "/v1/holds/" + hold.get("id") + "/capture";
        // A truncated body, not JSON at all, invalid UTF-8 (0xFF) inside a field name (once read as
        // "amount", a name seen before): each refused, and nothing captured.
        byte[] invalidUtf8 = {'{', '"', 'a', 'm', 'o', 'u', (byte) 0xFF, 'n', 't', '"', ':', '1', '}'};
        problem(post(capture, "cap-broken-2", "{\"amount\":"), 400, "malformed_json");
        problem(post(capture, "cap-broken-3", "amount=1"), 400, "malformed_json");
        problem(post(capture, "cap-broken-4", "null"), 400, "malformed_json");
        problem(post(capture, "cap-broken-5", "  "), 400, "malformed_json");
        problem(web.post().uri(capture).header("Idempotency-Key", "cap-broken-1").contentType(MediaType.APPLICATION_JSON)
                .bodyValue(invalidUtf8).exchange(), 400, "malformed_json");
        web.get().uri("/v1/holds/{id}", hold.get("id")).exchange().expectStatus().isOk()
                .expectBody().jsonPath("$.status").isEqualTo("pending");
        assertThat(balance(to)).isZero();

        // The same for a reversal, which without a body reverses all that is left.
        Map<String, Object> transfer = json(post("/v1/transfers", "rev-t-1", "{\"fromAccountId\":\"" + from
                + "\",\"toAccountId\":\"" + to + "\",\"amount\":100,\"currency\":\"EUR\"}").expectStatus().isCreated());
        problem(web.post().uri("/v1/transfers/" + transfer.get("id") + "/reversals").header("Idempotency-Key", "rev-broken-1")
                .contentType(MediaType.APPLICATION_JSON).bodyValue(invalidUtf8).exchange(), 400, "malformed_json");
        assertThat(balance(to)).isEqualTo(100);
        // And no body at all still means "all".
        json(post(capture, "cap-all", "").expectStatus().isOk());
        assertThat(balance(to)).isEqualTo(101);
    }

    @Test
    void holdsAreValidated() {
        UUID from = account("EUR");
        UUID to = account("EUR");
        problem(post("/v1/holds", "h-1", holdBody(from, to, 1)), 422, "insufficient_funds");
        problem(post("/v1/holds", "h-2", "{\"fromAccountId\":\"" + from + "\",\"toAccountId\":\"" + to
                + "\",\"amount\":1,\"currency\":\"EUR\",\"expiresAt\":\"2000-01-01T00:00:00Z\"}"), 400, "validation_failed");
        problem(post("/v1/holds", "h-3", holdBody(from, from, 1)), 422, "same_account");
    }

    // Batches ----------------------------------------------------------------------------------

    @Test
    void aBatchWithOneBadItemAppliesNothing() {
        UUID a = account("EUR");
        UUID b = account("EUR");
        UUID c = account("EUR");
        deposit(a, 100);
        long before = new LedgerAudit(db).transactionCount();
        String batch = "{\"transfers\":[" + item(a, b, 60) + "," + item(b, c, 60) + "," + item(a, c, 60) + "]}";

        Map<String, Object> refusal = json(post("/v1/transfer-batches", "batch-1", batch).expectStatus().isEqualTo(422));

        assertThat(refusal).containsEntry("code", "insufficient_funds").containsEntry("item", 2);
        assertThat(new LedgerAudit(db).transactionCount()).isEqualTo(before);
        assertThat(balance(a)).isEqualTo(100);

        String good = "{\"transfers\":[" + item(a, b, 60) + "," + item(b, c, 60) + "," + item(a, c, 40) + "]}";
        Map<String, Object> applied = json(post("/v1/transfer-batches", "batch-2", good).expectStatus().isCreated());
        assertThat((List<?>) applied.get("transfers")).hasSize(3);
        assertThat(balance(a)).isZero();
        assertThat(balance(b)).isZero();
        assertThat(balance(c)).isEqualTo(100);

        problem(post("/v1/transfer-batches", "batch-3", "{\"transfers\":[]}"), 400, "validation_failed");
        problem(post("/v1/transfer-batches", "batch-4", "{\"transfers\":[" + item(a, a, 1) + "]}"), 422, "same_account");
        StringBuilder tooMany = new StringBuilder("{\"transfers\":[");
        for (int i = 0; i < 101; i++) {
            tooMany.append(i == 0 ? "" : ",").append(item(a, b, 1));
        }
        problem(post("/v1/transfer-batches", "batch-5", tooMany + "]}"), 400, "validation_failed");
    }

    // Reversals --------------------------------------------------------------------------------

    @Test
    void reversalsMirrorTheTransferAndStopAtItsAmount() {
        UUID from = account("EUR");
        UUID to = account("EUR");
        deposit(from, 1_000);
        Map<String, Object> transfer = json(post("/v1/transfers", "t-1",
                "{\"fromAccountId\":\"" + from + "\",\"toAccountId\":\"" + to + "\",\"amount\":100,\"currency\":\"EUR\"}")
                .expectStatus().isCreated());
        String reversals = "/v1/transfers/" + transfer.get("id") + "/reversals";

        Map<String, Object> partial = json(post(reversals, "r-1", "{\"amount\":30}").expectStatus().isCreated());
        assertThat(partial).containsEntry("fromAccountId", to.toString()).containsEntry("toAccountId", from.toString())
                .containsEntry("reversalOf", transfer.get("id")).containsEntry("amount", 30);
        problem(post(reversals, "r-2", "{\"amount\":71}"), 422, "reversal_exceeds_original");
        Map<String, Object> rest = json(post(reversals, "r-3", "").expectStatus().isCreated());
        assertThat(rest).containsEntry("amount", 70);
        problem(post(reversals, "r-4", ""), 422, "reversal_exceeds_original");
        problem(post("/v1/transfers/" + partial.get("id") + "/reversals", "r-5", ""), 422, "not_reversible");
        problem(post("/v1/transfers/" + UUID.randomUUID() + "/reversals", "r-6", ""), 404, "transfer_not_found");

        assertThat(balance(from)).isEqualTo(1_000);
        assertThat(balance(to)).isZero();
    }

    // ---------------------------------------------------------------------------------------------

    private UUID account(String currency) {
        Map<String, Object> body = web.post().uri("/v1/accounts").contentType(MediaType.APPLICATION_JSON)
                .bodyValue(Map.of("currency", currency, "name", "test")).exchange().expectStatus().isCreated()
                .expectBody(JSON).returnResult().getResponseBody();
        return UUID.fromString((String) body.get("id"));
    }

    private void deposit(UUID account, long amount) {
        post("/v1/accounts/" + account + "/deposits", UUID.randomUUID().toString(),
                "{\"amount\":" + amount + ",\"currency\":\"EUR\"}").expectStatus().isCreated();
    }

    private long balance(UUID account) {
        return new LedgerAudit(db).balanceOf(account);
    }

    private WebTestClient.ResponseSpec post(String path, String key, String body) {
        WebTestClient.RequestBodySpec request = web.post().uri(path).header("Idempotency-Key", key);
        return body.isEmpty() ? request.exchange()
                : request.contentType(MediaType.APPLICATION_JSON).bodyValue(body).exchange();
    }

    private static Map<String, Object> json(WebTestClient.ResponseSpec response) {
        return response.expectBody(JSON).returnResult().getResponseBody();
    }

    private static byte[] problem(WebTestClient.ResponseSpec response, int status, String code) {
        byte[] body = response.expectStatus().isEqualTo(status)
                .expectHeader().contentTypeCompatibleWith(MediaType.APPLICATION_PROBLEM_JSON)
                .expectBody().returnResult().getResponseBody();
        assertThat(new String(body)).contains("\"code\":\"" + code + "\"");
        return body;
    }

    private static String holdBody(UUID from, UUID to, long amount) {
        return "{\"fromAccountId\":\"" + from + "\",\"toAccountId\":\"" + to + "\",\"amount\":" + amount
                + ",\"currency\":\"EUR\",\"expiresAt\":\"" + Instant.now().plusSeconds(3600) + "\"}";
    }

    private static String item(UUID from, UUID to, long amount) {
        return "{\"fromAccountId\":\"" + from + "\",\"toAccountId\":\"" + to + "\",\"amount\":" + amount
                + ",\"currency\":\"EUR\"}";
    }
}
