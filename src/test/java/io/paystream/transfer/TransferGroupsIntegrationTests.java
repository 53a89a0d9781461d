package io.paystream.transfer;

import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;

import io.paystream.audit.Burst;
import io.paystream.audit.HttpResult;
import io.paystream.audit.LedgerAudit;
import io.paystream.idempotency.IdempotencyKey;
import io.paystream.security.Caller;
import io.paystream.testsupport.PaystreamIntegrationTest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.r2dbc.core.DatabaseClient;
import org.springframework.test.context.TestPropertySource;
import reactor.test.StepVerifier;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Transfers that arrive together share a transaction ({@link TransferGroups}), and each still gets
 * exactly the outcome it would have got alone. Through HTTP, against a real PostgreSQL; the ledger is
 * audited after every test.
 */
@PaystreamIntegrationTest
// Bursts queue by design and the test machine may be slow: room for the queue (still bounded), not 503s.
@TestPropertySource(properties = {"paystream.ledger.attempt-timeout=60s", "spring.r2dbc.pool.max-acquire-time=60s",
        "paystream.request-timeout=120s"})
class TransferGroupsIntegrationTests {

    private static final Duration BURST_TIMEOUT = Duration.ofSeconds(120);

    @LocalServerPort
    int port;

    @Autowired
    DatabaseClient db;

    @Autowired
    TransferGroups groups;

    @Autowired
    io.micrometer.core.instrument.MeterRegistry registry;

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
    void eachTransferIsAnsweredOnTheExecutorItCameWith() {
        UUID source = burst.account("EUR");
        burst.deposit(source, 100, "EUR");
        UUID payee = burst.account("EUR");
        Caller admin = new Caller(UUID.randomUUID(), Caller.Role.ADMIN, "test");
        // The request's event loop in production; here a thread of its own, so the answer can be told apart.
        AtomicInteger handedOver = new AtomicInteger();
        Executor answerOn = task -> {
            handedOver.incrementAndGet();
            new Thread(task, "answer-here").start();
        };
        IdempotencyKey key = IdempotencyKey.of(admin.clientId().toString(), "answer-" + UUID.randomUUID(), "POST",
                "/v1/transfers", new byte[0]);

        StepVerifier.create(groups.submit(key, "/v1/transfers", new TransferRequest(source, payee, 10L, "EUR", null, null),
                        admin, answerOn).map(response -> response.status() + " on " + Thread.currentThread().getName()))
                .expectNext("201 on answer-here")
                .verifyComplete();
        assertThat(handedOver).hasValue(1);
        assertThat(audit.balanceOf(payee)).isEqualTo(10);
    }

    @Test
    void aBurstOnOneAccountSharesTransactionsAndEachTransferKeepsItsOwnOutcome() {
        UUID source = burst.account("EUR");
        burst.deposit(source, 1000, "EUR");
        List<UUID> payees = List.of(burst.account("EUR"), burst.account("EUR"), burst.account("EUR"));
        UUID dollars = burst.account("USD");
        long groupsBefore = groups.groups();
        long groupedBefore = groups.groupedTransfers();

        // 300 transfers of 10 from an account holding 1,000, all at once: 100 fit. Every 15th names the
        // source twice and every 20th a dollar account (never both): refused for what they are, whatever
        // their group, and refused before funds are looked at.
        List<HttpResult> results = burst.post(300, 300, i -> new Burst.Call("/v1/transfers", Map.of(
                "fromAccountId", source.toString(),
                "toAccountId", (i % 15 == 7 ? source : i % 20 == 3 ? dollars : payees.get(i % 3)).toString(),
                "amount", 10, "currency", "EUR"), "group-" + i), BURST_TIMEOUT);

        long sameAccount = results.stream().filter(r -> "same_account".equals(r.code())).count();
        long otherCurrency = results.stream().filter(r -> "currency_mismatch".equals(r.code())).count();
        assertThat(sameAccount).isEqualTo(20);
        assertThat(otherCurrency).isEqualTo(15);
        assertThat(results).filteredOn(r -> r.status() == 201).hasSize(100);
        assertThat(results).filteredOn(r -> r.status() == 422 && "insufficient_funds".equals(r.code()))
                .hasSize(300 - 100 - 20 - 15);
        assertThat(audit.balanceOf(source)).isZero();
        assertThat(payees.stream().mapToLong(audit::balanceOf).sum()).isEqualTo(1000);
        audit.assertPresentExactlyOnce(ids(results));

        // They did share: fewer transactions than transfers.
        long grouped = groups.groupedTransfers() - groupedBefore;
        long transactions = groups.groups() - groupsBefore;
        assertThat(grouped).isEqualTo(300);
        assertThat(transactions).isLessThan(grouped);
        // Never more groups in the database than the slot and the backlog's extra ones.
        assertThat(groups.mostInFlight()).isBetween(1, 1 + TransferGroups.BACKLOG_SLOTS);

        // Every answer was stored with its own key: a replay answers the same, and moves nothing more.
        long ledgerBefore = audit.transactionCount();
        List<HttpResult> replays = burst.post(300, 50, i -> new Burst.Call("/v1/transfers", Map.of(
                "fromAccountId", source.toString(),
                "toAccountId", (i % 15 == 7 ? source : i % 20 == 3 ? dollars : payees.get(i % 3)).toString(),
                "amount", 10, "currency", "EUR"), "group-" + i), BURST_TIMEOUT);
        for (int i = 0; i < 300; i++) {
            assertThat(replays.get(i).status()).as("replay %d", i).isEqualTo(results.get(i).status());
            assertThat(replays.get(i).body()).as("replay %d", i).isEqualTo(results.get(i).body());
            assertThat(replays.get(i).replayed()).as("replay %d", i).isTrue();
        }
        assertThat(audit.transactionCount()).isEqualTo(ledgerBefore);

        // The stored transfer is what the client was told.
        HttpResult first = results.stream().filter(r -> r.status() == 201).findFirst().orElseThrow();
        Map<String, Object> stored = burst.get("/v1/transfers/" + first.body().get("id"));
        assertThat(stored).isEqualTo(first.body());
    }

    @Test
    void twinsInABurstAreAppliedOnceAndCrossingTransfersDoNotDeadlock() {
        List<UUID> accounts = List.of(burst.account("EUR"), burst.account("EUR"), burst.account("EUR"),
                burst.account("EUR"));
        accounts.forEach(a -> burst.deposit(a, 10_000, "EUR"));

        // 400 requests: 100 keys, each sent 4 times at once, every transfer crossing the others' paths.
        List<HttpResult> results = burst.post(400, 400, i -> {
            int key = i / 4;
            UUID from = accounts.get(key % 4);
            UUID to = accounts.get((key + 1 + key / 4 % 3) % 4);
            return new Burst.Call("/v1/transfers", Map.of("fromAccountId", from.toString(), "toAccountId", to.toString(),
                    "amount", 1 + key, "currency", "EUR"), "twin-" + key);
        }, BURST_TIMEOUT);

        Map<Integer, Set<Object>> appliedIdsByKey = new HashMap<>();
        for (int i = 0; i < results.size(); i++) {
            HttpResult r = results.get(i);
            assertThat(r.status()).as("request %d: %s", i, r).isIn(201, 409);
            if (r.status() == 409) {
                assertThat(r.code()).isEqualTo("idempotency_request_in_progress");
            } else {
                appliedIdsByKey.computeIfAbsent(i / 4, k -> new HashSet<>()).add(r.body().get("id"));
            }
        }
        // However many twins got 201 (the first, or replays of it), they name one transfer.
        assertThat(appliedIdsByKey.values()).allSatisfy(ids -> assertThat(ids).hasSize(1));
        Set<UUID> applied = appliedIdsByKey.values().stream().map(ids -> UUID.fromString((String) ids.iterator().next()))
                .collect(Collectors.toSet());
        audit.assertPresentExactlyOnce(applied);
        long moved = applied.size();
        assertThat(db.sql("SELECT count(*) AS n FROM transactions WHERE type = 'transfer' AND debit_account_id = ANY(:ids)")
                .bind("ids", accounts.toArray(UUID[]::new)).map(row -> row.get("n", Long.class)).one().block())
                .isEqualTo(moved);
        assertThat(accounts.stream().mapToLong(audit::balanceOf).sum()).isEqualTo(40_000);
    }

    @Test
    void aTransferTheDatabaseRefusesFailsAloneAndTheRestOfItsGroupIsApplied() {
        UUID source = burst.account("EUR");
        burst.deposit(source, 1000, "EUR");
        UUID payee = burst.account("EUR");
        // A rule only the database knows (nothing in the application checks it), so a group holding
        // this transfer fails as a whole, in the database, after every check in Java passed.
        db.sql("""
                CREATE FUNCTION test_refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.description = 'boom' THEN
                        RAISE EXCEPTION 'boom' USING ERRCODE = 'check_violation';
                    END IF;
                    RETURN NEW;
                END $$""").then().block();
        db.sql("CREATE TRIGGER test_refuse_boom BEFORE INSERT ON transactions FOR EACH ROW EXECUTE FUNCTION test_refuse_boom()")
                .then().block();
        try {
            List<HttpResult> results = burst.post(60, 60, i -> new Burst.Call("/v1/transfers", Map.of(
                    "fromAccountId", source.toString(), "toAccountId", payee.toString(), "amount", 10, "currency", "EUR",
                    "description", i == 30 ? "boom" : "fine"), "boom-" + i), BURST_TIMEOUT);

            assertThat(results.get(30).status()).isEqualTo(500);
            assertThat(results.get(30).code()).isEqualTo("internal_error");
            List<HttpResult> others = new java.util.ArrayList<>(results);
            others.remove(30);
            assertThat(others).allSatisfy(r -> assertThat(r.status()).isEqualTo(201));
            assertThat(audit.balanceOf(payee)).isEqualTo(590);
            audit.assertPresentExactlyOnce(ids(results));
        } finally {
            db.sql("DROP TRIGGER test_refuse_boom ON transactions").then().block();
            db.sql("DROP FUNCTION test_refuse_boom()").then().block();
        }
    }

    /**
     * A group that waits for an account's lock reads that account's head after the lock is granted, so
     * it extends what the lock's holder committed and never loses a race it need not: batches, which
     * hold the hot account's lock while they post ten transfers each, and single transfers through it
     * all at once, and not one retry. (A head read with the snapshot the statement took before it
     * waited would name a version the holder had just written: the write refused, the group retried.)
     */
    @Test
    void aGroupThatWaitedForALockExtendsWhatItsHolderCommitted() {
        UUID hot = burst.account("EUR");
        burst.deposit(hot, 1_000_000, "EUR");
        List<UUID> others = List.of(burst.account("EUR"), burst.account("EUR"), burst.account("EUR"), burst.account("EUR"));
        others.forEach(other -> burst.deposit(other, 1_000, "EUR"));
        double retriesBefore = retries();

        List<HttpResult> results = burst.post(200, 200, i -> {
            UUID other = others.get(i % others.size());
            if (i % 4 == 0) {
                List<Map<String, Object>> items = new java.util.ArrayList<>();
                for (int j = 0; j < 10; j++) {
                    items.add(Map.of("fromAccountId", hot.toString(), "toAccountId", others.get(j % others.size()).toString(),
                            "amount", 1, "currency", "EUR"));
                }
                return new Burst.Call("/v1/transfer-batches", Map.of("transfers", items), "holder-" + i);
            }
            boolean in = i % 2 == 1;
            return new Burst.Call("/v1/transfers", Map.of("fromAccountId", (in ? other : hot).toString(),
                    "toAccountId", (in ? hot : other).toString(), "amount", 1, "currency", "EUR"), "waiter-" + i);
        }, BURST_TIMEOUT);

        assertThat(results).allSatisfy(r -> assertThat(r.status()).as(r.toString()).isEqualTo(201));
        assertThat(retries() - retriesBefore).as("attempts run again after losing a race").isZero();
        // 50 batches of 10 out, 50 transfers out and 100 in.
        assertThat(audit.balanceOf(hot)).isEqualTo(1_000_000 - 500 - 50 + 100);
    }

    private double retries() {
        return registry.find("paystream.ledger.retries").counters().stream()
                .mapToDouble(io.micrometer.core.instrument.Counter::count).sum();
    }

    private static List<UUID> ids(List<HttpResult> results) {
        return results.stream().filter(r -> r.status() == 201).map(r -> UUID.fromString((String) r.body().get("id")))
                .toList();
    }
}
