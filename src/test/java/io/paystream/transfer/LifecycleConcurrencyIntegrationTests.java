package io.paystream.transfer;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.UUID;
import java.util.stream.IntStream;

import io.paystream.audit.Burst;
import io.paystream.audit.HttpResult;
import io.paystream.audit.LedgerAudit;
import io.paystream.testsupport.PaystreamIntegrationTest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.r2dbc.core.DatabaseClient;
import org.springframework.test.context.TestPropertySource;
import reactor.core.publisher.Flux;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Safe retries and the transfer lifecycle under concurrency, through HTTP against a real PostgreSQL,
 * in each concurrency mode (the subclasses). After every test the whole ledger is audited.
 */
@PaystreamIntegrationTest
@TestPropertySource(properties = {
        "paystream.ledger.attempt-timeout=60s",
        "spring.r2dbc.pool.max-acquire-time=60s",
        // The last of a serialized queue waits for all before it: not a 503 after the default 30 s.
        "paystream.request-timeout=120s",
        "paystream.holds.sweep-interval=100ms"})
abstract class LifecycleConcurrencyIntegrationTests {

    private static final Duration BURST_TIMEOUT = Duration.ofSeconds(120);

    @LocalServerPort
    int port;

    @Autowired
    DatabaseClient db;

    Burst burst;
    LedgerAudit audit;

    @BeforeEach
    void setUp() {
        burst = new Burst(port);
        audit = new LedgerAudit(db);
    }

    @AfterEach
    void ledgerStillAddsUp() {
        audit.assertInvariants();
    }

    // Idempotency ------------------------------------------------------------------------------

    @Test
    void sixtyFourConcurrentTwinsWithOneKeyMoveMoneyOnce() {
        UUID from = burst.account("EUR");
        UUID to = burst.account("EUR");
        burst.deposit(from, 10_000, "EUR");
        Map<String, Object> body = Map.of("fromAccountId", from, "toAccountId", to, "amount", 100, "currency", "EUR");

        List<HttpResult> results = burst.post(64, 64, i -> new Burst.Call("/v1/transfers", body, "one-key"), BURST_TIMEOUT);

        assertThat(results).allSatisfy(r -> assertThat(r.status()).as(r.toString()).isIn(201, 409));
        List<HttpResult> created = results.stream().filter(r -> r.status() == 201).toList();
        assertThat(created).isNotEmpty();
        assertThat(created.stream().filter(r -> !r.replayed())).as("executions").hasSize(1);
        assertThat(created.stream().map(r -> r.body().get("id")).distinct()).hasSize(1);
        assertThat(results).filteredOn(r -> r.status() == 409)
                .allSatisfy(r -> assertThat(r.code()).isEqualTo("idempotency_request_in_progress"));
        assertThat(audit.balanceOf(to)).isEqualTo(100);
        assertThat(transfersInto(to)).isEqualTo(1);
    }

    @Test
    void sixtyFourConcurrentRequestsWithDifferentKeysAllApply() {
        UUID from = burst.account("EUR");
        UUID to = burst.account("EUR");
        burst.deposit(from, 10_000, "EUR");
        Map<String, Object> body = Map.of("fromAccountId", from, "toAccountId", to, "amount", 100, "currency", "EUR");

        List<HttpResult> results = burst.post(64, 64, i -> new Burst.Call("/v1/transfers", body, "key-" + i), BURST_TIMEOUT);

        assertThat(results).allSatisfy(r -> assertThat(r.status()).as(r.toString()).isEqualTo(201));
        assertThat(audit.balanceOf(to)).isEqualTo(6_400);
        assertThat(transfersInto(to)).isEqualTo(64);
        audit.assertPresentExactlyOnce(results.stream().map(r -> UUID.fromString((String) r.body().get("id"))).toList());
    }

    // Holds ------------------------------------------------------------------------------------

    @Test
    void captureVoidAndExpiryRaceAndExactlyOneWins() throws InterruptedException {
        UUID from = burst.account("USD");
        UUID to = burst.account("USD");
        burst.deposit(from, 1_000_000, "USD");
        int holds = 30;
        // Far enough ahead that placing all holds (slow on a busy machine) ends before it.
        Instant soon = Instant.now().plusSeconds(10);
        List<String> ids = new ArrayList<>();
        for (int i = 0; i < holds; i++) {
            HttpResult hold = burst.send(new Burst.Call("/v1/holds", Map.of("fromAccountId", from, "toAccountId", to,
                    "amount", 1_000, "currency", "USD", "expiresAt", soon.toString()))).block(BURST_TIMEOUT);
            assertThat(hold.status()).as(hold.toString()).isEqualTo(201);
            assertThat(hold.body()).containsEntry("status", "pending");
            ids.add((String) hold.body().get("id"));
        }
        // Race capture against void for every hold, around the moment the sweeper may expire them.
        Thread.sleep(Math.max(0, Duration.between(Instant.now(), soon).toMillis() - 150));
        List<HttpResult> results = Flux.fromIterable(ids)
                .flatMap(id -> Flux.merge(
                        burst.send(new Burst.Call("/v1/holds/" + id + "/capture", Map.of("amount", 600))),
                        burst.send(new Burst.Call("/v1/holds/" + id + "/void", Map.of()))), 64)
                .collectList().block(BURST_TIMEOUT);

        assertThat(results).allSatisfy(r -> assertThat(r.status()).as(r.toString()).isIn(200, 409));
        assertThat(results).filteredOn(r -> r.status() == 409)
                .allSatisfy(r -> assertThat(r.code()).isEqualTo("hold_not_pending"));
        // Wait (bounded) for the sweeper to settle holds that neither request won.
        Instant deadline = Instant.now().plusSeconds(30);
        while (Instant.now().isBefore(deadline) && openHolds(from) > 0) {
            Thread.sleep(100);
        }
        assertThat(openHolds(from)).isZero();
        Map<String, Long> outcomes = new HashMap<>();
        for (String id : ids) {
            List<String> statuses = db.sql("SELECT status FROM hold_events WHERE hold_id = :id AND status <> 'pending'")
                    .bind("id", UUID.fromString(id)).map(row -> row.get("status", String.class)).all().collectList().block();
            assertThat(statuses).as("outcomes of hold " + id).hasSize(1);
            outcomes.merge(statuses.get(0), 1L, Long::sum);
        }
        long won = results.stream().filter(r -> r.status() == 200).count();
        assertThat(won).isEqualTo(outcomes.getOrDefault("posted", 0L) + outcomes.getOrDefault("voided", 0L));
        long posted = outcomes.getOrDefault("posted", 0L);
        assertThat(audit.balanceOf(to)).isEqualTo(posted * 600);
        assertThat(audit.balanceOf(from)).isEqualTo(1_000_000 - posted * 600);
    }

    @Test
    void holdsAndWithdrawalsNeverSpendTheSameMoneyTwice() {
        UUID account = burst.account("GBP");
        UUID merchant = burst.account("GBP");
        burst.deposit(account, 1_000, "GBP");

        List<HttpResult> results = burst.post(40, 40, i -> i % 2 == 0
                ? new Burst.Call("/v1/holds", Map.of("fromAccountId", account, "toAccountId", merchant, "amount", 100,
                        "currency", "GBP"))
                : new Burst.Call("/v1/accounts/" + account + "/withdrawals", Map.of("amount", 100, "currency", "GBP")),
                BURST_TIMEOUT);

        assertThat(results).allSatisfy(r -> assertThat(r.status()).as(r.toString()).isIn(201, 422));
        assertThat(results).filteredOn(r -> r.status() == 201).hasSize(10);
        assertThat(results).filteredOn(r -> r.status() == 422)
                .allSatisfy(r -> assertThat(r.code()).isEqualTo("insufficient_funds"));
        long holdsPlaced = results.stream().filter(r -> r.status() == 201 && "pending".equals(r.body().get("status"))).count();
        Map<String, Object> balance = burst.get("/v1/accounts/" + account + "/balance");
        assertThat(balance).containsEntry("available", 0);
        assertThat(((Number) balance.get("held")).longValue()).isEqualTo(holdsPlaced * 100);
    }

    // Batches ----------------------------------------------------------------------------------

    @Test
    void concurrentOverlappingBatchesFinishWithoutDeadlocksReachingClients() {
        List<UUID> accounts = IntStream.range(0, 6).mapToObj(i -> burst.account("CHF")).toList();
        accounts.forEach(a -> burst.deposit(a, 100_000, "CHF"));
        Random random = new Random(7);
        List<Map<String, Object>> batches = new ArrayList<>();
        for (int b = 0; b < 24; b++) {
            List<Map<String, Object>> items = new ArrayList<>();
            for (int i = 0; i < 10; i++) {
                int from = random.nextInt(accounts.size());
                int to = (from + 1 + random.nextInt(accounts.size() - 1)) % accounts.size();
                items.add(Map.of("fromAccountId", accounts.get(from), "toAccountId", accounts.get(to),
                        "amount", 1 + random.nextInt(100), "currency", "CHF"));
            }
            batches.add(Map.of("transfers", items));
        }

        List<HttpResult> results = burst.post(batches.size(), batches.size(),
                i -> new Burst.Call("/v1/transfer-batches", batches.get(i)), BURST_TIMEOUT);

        assertThat(results).allSatisfy(r -> assertThat(r.status()).as(r.toString()).isEqualTo(201));
        assertThat(accounts.stream().mapToLong(audit::balanceOf).sum()).isEqualTo(600_000);
        List<UUID> ids = new ArrayList<>();
        for (HttpResult result : results) {
            @SuppressWarnings("unchecked")
            List<Map<String, Object>> transfers = (List<Map<String, Object>>) result.body().get("transfers");
            assertThat(transfers).hasSize(10);
            transfers.forEach(t -> ids.add(UUID.fromString((String) t.get("id"))));
        }
        audit.assertPresentExactlyOnce(ids);
    }

    // Reversals --------------------------------------------------------------------------------

    @Test
    void concurrentReversalsNeverExceedTheOriginal() {
        UUID from = burst.account("EUR");
        UUID to = burst.account("EUR");
        burst.deposit(from, 1_000, "EUR");
        HttpResult transfer = burst.send(new Burst.Call("/v1/transfers", Map.of("fromAccountId", from, "toAccountId", to,
                "amount", 100, "currency", "EUR"))).block(BURST_TIMEOUT);
        String transferId = (String) transfer.body().get("id");

        List<HttpResult> results = burst.post(25, 25,
                i -> new Burst.Call("/v1/transfers/" + transferId + "/reversals", Map.of("amount", 10)), BURST_TIMEOUT);

        assertThat(results).filteredOn(r -> r.status() == 201).hasSize(10)
                .allSatisfy(r -> assertThat(r.body()).containsEntry("reversalOf", transferId).containsEntry("type", "reversal"));
        assertThat(results).filteredOn(r -> r.status() == 422).hasSize(15)
                .allSatisfy(r -> assertThat(r.code()).isEqualTo("reversal_exceeds_original"));
        assertThat(audit.balanceOf(to)).isZero();
        assertThat(audit.balanceOf(from)).isEqualTo(1_000);
    }

    private long transfersInto(UUID account) {
        return db.sql("SELECT count(*) AS n FROM transactions WHERE credit_account_id = :id AND type = 'transfer'")
                .bind("id", account).map(row -> row.get("n", Long.class)).one().block();
    }

    private long openHolds(UUID account) {
        return db.sql("""
                SELECT count(*) AS n FROM holds h WHERE h.debit_account_id = :id
                   AND NOT EXISTS (SELECT 1 FROM hold_events e WHERE e.hold_id = h.id AND e.status <> 'pending')""")
                .bind("id", account).map(row -> row.get("n", Long.class)).one().block();
    }
}
