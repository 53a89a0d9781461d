package io.paystream.transfer;

import java.time.Duration;
import java.util.ArrayList;
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
 * The classic ways money goes wrong under concurrency, through HTTP against a real PostgreSQL, in
 * each concurrency mode (the subclasses). After every test the whole ledger is audited.
 */
@PaystreamIntegrationTest
@TestPropertySource(properties = {
        "paystream.ledger.daily-deposit-limit-minor=" + MoneyMovementConcurrencyIntegrationTests.DAILY_LIMIT,
        // Hundreds of requests queue on one account's lock here by design, and the test machine may be
        // slow: these tests check correctness, so give the queue room (still bounded) instead of 503s.
        "paystream.ledger.attempt-timeout=60s",
        "spring.r2dbc.pool.max-acquire-time=60s",
        // The last of a serialized queue waits for all before it: not a 503 after the default 30 s.
        "paystream.request-timeout=120s"})
abstract class MoneyMovementConcurrencyIntegrationTests {

    static final long DAILY_LIMIT = 1_000_000;
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

    @Test
    void drainTwoHundredWithdrawalsFromOneThousandLeavesExactlyZero() {
        UUID account = account("EUR");
        deposit(account, 1000);

        List<HttpResult> results = burst.post(200, 200,
                i -> new Burst.Call("/v1/accounts/" + account + "/withdrawals", Map.of("amount", 10, "currency", "EUR")),
                BURST_TIMEOUT);

        assertThat(results).filteredOn(r -> r.status() == 201).hasSize(100);
        assertThat(results).filteredOn(r -> r.status() == 422)
                .hasSize(100)
                .allSatisfy(r -> assertThat(r.code()).isEqualTo("insufficient_funds"));
        assertThat(audit.balanceOf(account)).isZero();
        audit.assertPresentExactlyOnce(ids(results));
    }

    @Test
    void hotAccountTakesFiveHundredConcurrentDepositsExactly() {
        UUID account = account("USD");

        List<HttpResult> results = burst.post(500, 500,
                i -> new Burst.Call("/v1/accounts/" + account + "/deposits", Map.of("amount", i + 1, "currency", "USD")),
                BURST_TIMEOUT);

        assertThat(results).allSatisfy(r -> assertThat(r.status()).as(r.toString()).isEqualTo(201));
        assertThat(audit.balanceOf(account)).isEqualTo(500L * 501 / 2);
        audit.assertPresentExactlyOnce(ids(results));
    }

    @Test
    void crossingTrafficAmongTwentyAccountsConservesMoney() {
        int accounts = 20;
        int clients = 32;
        int transfersPerClient = 25;
        long funding = 5_000;
        List<UUID> ids = IntStream.range(0, accounts).mapToObj(i -> account("GBP")).toList();
        ids.forEach(id -> deposit(id, funding));
        Random random = new Random(42);
        List<Map<String, Object>> requests = new ArrayList<>();
        for (int i = 0; i < clients * transfersPerClient; i++) {
            int from = random.nextInt(accounts);
            int to = (from + 1 + random.nextInt(accounts - 1)) % accounts;
            requests.add(Map.of("fromAccountId", ids.get(from), "toAccountId", ids.get(to),
                    "amount", 1 + random.nextInt(700), "currency", "GBP"));
        }

        // 32 clients, each sending its 25 transfers one after another.
        List<HttpResult> results = Flux.range(0, clients)
                .flatMap(client -> Flux.range(0, transfersPerClient)
                        .concatMap(i -> burst.send(new Burst.Call("/v1/transfers",
                                requests.get(client * transfersPerClient + i)))), clients)
                .collectList()
                .block(BURST_TIMEOUT);

        assertThat(results).hasSize(clients * transfersPerClient);
        assertThat(results).allSatisfy(r -> assertThat(r.status()).as(r.toString()).isIn(201, 422));
        assertThat(results).filteredOn(r -> r.status() == 422)
                .allSatisfy(r -> assertThat(r.code()).isEqualTo("insufficient_funds"));
        assertThat(results).filteredOn(HttpResult::is2xx).isNotEmpty();
        long total = ids.stream().mapToLong(audit::balanceOf).sum();
        assertThat(total).isEqualTo(accounts * funding);
        audit.assertPresentExactlyOnce(ids(results));
        Long transfersInLedger = db.sql("SELECT count(*) AS n FROM transactions WHERE type = 'transfer'"
                        + " AND debit_account_id = ANY(:ids)")
                .bind("ids", ids.toArray(UUID[]::new)).map(row -> row.get("n", Long.class)).one().block();
        assertThat(transfersInLedger).isEqualTo(results.stream().filter(HttpResult::is2xx).count());
    }

    @Test
    void twoConcurrentDepositsCanNeverBothSlipUnderTheDailyLimit() {
        UUID account = account("CHF");
        long amount = DAILY_LIMIT / 10;

        List<HttpResult> results = burst.post(40, 40,
                i -> new Burst.Call("/v1/accounts/" + account + "/deposits", Map.of("amount", amount, "currency", "CHF")),
                BURST_TIMEOUT);

        assertThat(results).filteredOn(r -> r.status() == 201).hasSize(10);
        assertThat(results).filteredOn(r -> r.status() == 422).hasSize(30)
                .allSatisfy(r -> assertThat(r.code()).isEqualTo("deposit_limit_exceeded"));
        assertThat(audit.balanceOf(account)).isEqualTo(DAILY_LIMIT);
    }

    UUID account(String currency) {
        HttpResult created = burst.send(new Burst.Call("/v1/accounts", Map.of("currency", currency, "name", "test")))
                .block(BURST_TIMEOUT);
        assertThat(created.status()).isEqualTo(201);
        return UUID.fromString((String) created.body().get("id"));
    }

    void deposit(UUID account, long amount) {
        HttpResult result = burst.send(new Burst.Call("/v1/accounts/" + account + "/deposits",
                Map.of("amount", amount, "currency", currencyOf(account)))).block(BURST_TIMEOUT);
        assertThat(result.status()).as(result.toString()).isEqualTo(201);
    }

    private String currencyOf(UUID account) {
        return db.sql("SELECT currency FROM accounts WHERE id = :id").bind("id", account)
                .map(row -> row.get("currency", String.class)).one().block();
    }

    static List<UUID> ids(List<HttpResult> results) {
        return results.stream().filter(HttpResult::is2xx).map(r -> UUID.fromString((String) r.body().get("id"))).toList();
    }
}
