package io.paystream.stream;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import io.paystream.PaystreamApplication;
import io.paystream.audit.Burst;
import io.paystream.audit.HttpResult;
import io.paystream.audit.LedgerAudit;
import io.paystream.testsupport.PaystreamIntegrationTest;
import io.paystream.testsupport.TestAuthentication;
import io.paystream.testsupport.TestDatabase;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.core.ParameterizedTypeReference;
import org.springframework.http.MediaType;
import org.springframework.http.codec.ServerSentEvent;
import org.springframework.r2dbc.core.DatabaseClient;
import org.springframework.test.context.TestPropertySource;
import org.springframework.web.reactive.function.client.WebClient;
import org.springframework.web.reactive.function.client.WebClientResponseException;
import reactor.core.publisher.Flux;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Live balance streams against a real PostgreSQL, across reconnects, listener loss and replicas. */
@PaystreamIntegrationTest
@TestPropertySource(properties = {"paystream.streams.heartbeat=1s", "paystream.streams.max-per-client=3",
        "paystream.ledger.attempt-timeout=60s", "spring.r2dbc.pool.max-acquire-time=60s"})
class BalanceStreamIntegrationTests {

    private static final ParameterizedTypeReference<ServerSentEvent<Map<String, Object>>> EVENTS =
            new ParameterizedTypeReference<>() {
            };
    private static final Duration WAIT = Duration.ofSeconds(60);
    /** How long the server may take to notice that a client closed its stream, and release its slot. */
    private static final Duration RELEASE = Duration.ofSeconds(30);

    @LocalServerPort
    int port;

    @Autowired
    DatabaseClient db;

    @Autowired
    TestDatabase database;

    @Autowired
    BalanceHub hub;

    Burst burst;

    @BeforeEach
    void setUp() {
        burst = new Burst(port);
    }

    @AfterEach
    void ledgerStillAddsUp() {
        new LedgerAudit(db).assertInvariants();
    }

    /**
     * A stream the client closed keeps its slot until the server sees the connection go, which can be
     * after the test has ended. Every test here streams as the same client (the admin key, at most 3
     * streams): the next test must start with all of them free. A stream never released fails here.
     */
    @AfterEach
    void everyClosedStreamIsReleased() {
        waitUntil(() -> hub.watchers() == 0, RELEASE);
        assertThat(hub.watchers()).as("streams still open on the server %s after their clients closed them", RELEASE)
                .isZero();
    }

    @Test
    void theFirstEventIsTheCurrentBalanceThenEveryChange() {
        UUID account = burst.account("EUR");
        burst.deposit(account, 100, "EUR");

        Flux<ServerSentEvent<Map<String, Object>>> stream = stream(port, account, null, null);
        List<ServerSentEvent<Map<String, Object>>> events = new ArrayList<>();
        var subscription = stream.filter(e -> e.event() != null).subscribe(events::add);
        try {
            awaitSize(events, 1);
            burst.deposit(account, 20, "EUR");
            burst.deposit(account, 3, "EUR");
            awaitSize(events, 3);
        } finally {
            subscription.dispose();
        }
        assertThat(events).extracting(ServerSentEvent::id).containsExactly("1", "2", "3");
        assertThat(events).extracting(ServerSentEvent::event).containsOnly("balance");
        Map<String, Object> last = events.get(2).data();
        assertThat(last).containsEntry("accountId", account.toString()).containsEntry("balance", 123)
                .containsEntry("held", 0).containsEntry("available", 123).containsEntry("version", 3)
                .containsKeys("transactionId", "createdAt");
    }

    @Test
    void resumingAfterABurstReplaysExactlyTheLedger() {
        UUID account = burst.account("EUR");
        UUID other = burst.account("EUR");
        burst.deposit(account, 100_000, "EUR");
        int transfers = 120;

        // A first connection takes a few events and drops; the burst goes on meanwhile.
        List<ServerSentEvent<Map<String, Object>>> first = new ArrayList<>();
        var subscription = stream(port, account, null, null).filter(e -> e.event() != null).take(20).subscribe(first::add);
        // The resume point is the last event this connection got: make sure there is one, however
        // quickly the burst runs.
        awaitSize(first, 1);
        List<HttpResult> results = burst.post(transfers, 16, i -> new Burst.Call("/v1/transfers",
                Map.of("fromAccountId", i % 2 == 0 ? account : other, "toAccountId", i % 2 == 0 ? other : account,
                        "amount", 10, "currency", "EUR")), WAIT.multipliedBy(4));
        subscription.dispose();
        assertThat(results).allSatisfy(r -> assertThat(r.status()).as(r.toString()).isIn(201, 422));
        long finalVersion = lastVersion(account);
        List<ServerSentEvent<Map<String, Object>>> copy = List.copyOf(first);
        String resumeFrom = copy.get(copy.size() - 1).id();

        // Reconnect as a browser does, with Last-Event-ID, and read up to the head.
        List<ServerSentEvent<Map<String, Object>>> second = stream(port, account, resumeFrom, null)
                .filter(e -> e.event() != null)
                .takeUntil(e -> Long.parseLong(e.id()) >= finalVersion)
                .collectList().block(WAIT);

        List<Long> seen = new ArrayList<>();
        copy.forEach(e -> seen.add(Long.parseLong(e.id())));
        second.forEach(e -> seen.add(Long.parseLong(e.id())));
        List<Long> ledger = db.sql("SELECT version FROM balances WHERE account_id = :id AND version >= :from ORDER BY version")
                .bind("id", account).bind("from", seen.get(0)).map(row -> row.get("version", Long.class)).all()
                .collectList().block();
        assertThat(seen).as("no gap, no duplicate, no reordering").isEqualTo(ledger);
        // And the balances match the ledger's, version by version.
        Map<String, Object> lastEvent = second.get(second.size() - 1).data();
        assertThat(((Number) lastEvent.get("balance")).longValue()).isEqualTo(new LedgerAudit(db).balanceOf(account));
    }

    @Test
    void resumeByQueryParameterAndAccessToken() {
        UUID account = burst.account("EUR");
        for (int i = 0; i < 3; i++) {
            burst.deposit(account, 1, "EUR");
        }
        List<ServerSentEvent<Map<String, Object>>> events = WebClient.create("http://127.0.0.1:" + port)
                .get().uri("/v1/accounts/{id}/balance/stream?after=1&access_token={key}", account, TestAuthentication.ADMIN_KEY)
                .accept(MediaType.TEXT_EVENT_STREAM).retrieve().bodyToFlux(EVENTS)
                .filter(e -> e.event() != null).take(2).collectList().block(WAIT);
        assertThat(events).extracting(ServerSentEvent::id).containsExactly("2", "3");
    }

    @Test
    void losingTheListenerConnectionLosesNoEvent() {
        UUID account = burst.account("EUR");
        List<ServerSentEvent<Map<String, Object>>> events = new ArrayList<>();
        var subscription = stream(port, account, null, null).filter(e -> e.event() != null).subscribe(events::add);
        try {
            awaitSize(events, 1);
            burst.deposit(account, 1, "EUR");
            awaitSize(events, 2);
            Long terminated = db.sql("SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity"
                            + " WHERE application_name = :name AND datname = current_database()")
                    .bind("name", BalanceListener.APPLICATION_NAME).map(row -> row.get("n", Long.class)).one().block();
            assertThat(terminated).isGreaterThanOrEqualTo(1);
            // Changes while the listener is down, and after it is back.
            for (int i = 0; i < 5; i++) {
                burst.deposit(account, 1, "EUR");
            }
            awaitSize(events, 7);
        } finally {
            subscription.dispose();
        }
        assertThat(events).extracting(ServerSentEvent::id).containsExactly("0", "1", "2", "3", "4", "5", "6");
    }

    @Test
    void aChangeThroughOneReplicaReachesAWatcherOnAnother() throws InterruptedException {
        UUID account = burst.account("EUR");
        // Command-line arguments: they outrank application.properties, as a deployment's environment does.
        try (ConfigurableApplicationContext replicaB = new SpringApplicationBuilder(PaystreamApplication.class)
                .run("--server.port=0", "--spring.r2dbc.url=" + database.r2dbcUrl(),
                        "--spring.r2dbc.username=" + database.username(), "--spring.r2dbc.password=" + database.password(),
                        "--spring.flyway.enabled=false", "--paystream.security.admin-api-key=" + TestAuthentication.ADMIN_KEY,
                        "--paystream.rate-limit.requests-per-second=0")) {
            int portB = Integer.parseInt(replicaB.getEnvironment().getProperty("local.server.port"));
            List<ServerSentEvent<Map<String, Object>>> events = new ArrayList<>();
            var subscription = stream(portB, account, null, null).filter(e -> e.event() != null).subscribe(events::add);
            try {
                awaitSize(events, 1);
                burst.deposit(account, 42, "EUR"); // through replica A
                awaitSize(events, 2);
            assertThat(events.get(1).data()).containsEntry("balance", 42).containsEntry("version", 1);

            // Both replicas lose their listener connection; changes through A keep reaching B.
            db.sql("SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity"
                            + " WHERE application_name = :name AND datname = current_database()")
                    .bind("name", BalanceListener.APPLICATION_NAME).map(row -> row.get("n", Long.class)).one().block();
            for (int i = 0; i < 5; i++) {
                burst.deposit(account, 1, "EUR");
            }
            awaitSize(events, 7);
            assertThat(events).extracting(ServerSentEvent::id).containsExactly("0", "1", "2", "3", "4", "5", "6");
            } finally {
                subscription.dispose();
            }

            // A rolling update stops replica B: its open streams end at once with their resume point,
            // instead of holding the shutdown for its whole grace period.
            List<ServerSentEvent<Map<String, Object>>> beforeShutdown = new ArrayList<>();
            java.util.concurrent.CountDownLatch ended = new java.util.concurrent.CountDownLatch(1);
            stream(portB, account, null, null).filter(e -> e.event() != null)
                    .doFinally(signal -> ended.countDown()).subscribe(beforeShutdown::add, error -> { });
            awaitSize(beforeShutdown, 1);
            long started = System.nanoTime();
            replicaB.close();
            // Well under the 20 s shutdown phase that a stream left open would hold the close for.
            assertThat(ended.await(15, java.util.concurrent.TimeUnit.SECONDS)).as("stream ended at shutdown").isTrue();
            assertThat(Duration.ofNanos(System.nanoTime() - started)).isLessThan(Duration.ofSeconds(15));
            assertThat(beforeShutdown.get(0).id()).isEqualTo("6");
        }
    }

    @Test
    void heartbeatsKeepAnIdleStreamAlive() {
        UUID account = burst.account("EUR");
        // Two heartbeats (one a second here) on a stream with nothing else to say. Waited for, not counted
        // in a fixed window: connecting and opening the stream come first, and take long on a busy machine.
        List<ServerSentEvent<Map<String, Object>>> heartbeats = stream(port, account, null, null)
                .filter(e -> "heartbeat".equals(e.comment())).take(2).collectList().block(WAIT);
        assertThat(heartbeats).hasSize(2);
    }

    @Test
    void onlyTheOwnerOrAnAdminMayWatchAndStreamsAreLimited() {
        Map<String, Object> key = WebClient.create("http://127.0.0.1:" + port).post().uri("/v1/api-keys")
                .header("Authorization", TestAuthentication.bearer(TestAuthentication.ADMIN_KEY))
                .contentType(MediaType.APPLICATION_JSON).bodyValue(Map.of("name", "watcher", "role", "client"))
                .retrieve().bodyToMono(new ParameterizedTypeReference<Map<String, Object>>() {
                }).block(WAIT);
        UUID notTheirs = burst.account("EUR");
        assertThatThrownBy(() -> stream(port, notTheirs, null, (String) key.get("key")).blockFirst(WAIT))
                .isInstanceOfSatisfying(WebClientResponseException.class, e -> assertThat(e.getStatusCode().value()).isEqualTo(404));
        assertThatThrownBy(() -> stream(port, notTheirs, "not-a-version", null).blockFirst(WAIT))
                .isInstanceOfSatisfying(WebClientResponseException.class, e -> assertThat(e.getStatusCode().value()).isEqualTo(400));

        List<reactor.core.Disposable> open = new ArrayList<>();
        try {
            for (int i = 0; i < 3; i++) {
                List<Object> got = new ArrayList<>();
                open.add(stream(port, notTheirs, null, null).subscribe(got::add));
                awaitSize(got, 1);
            }
            assertThatThrownBy(() -> stream(port, notTheirs, null, null).blockFirst(WAIT))
                    .isInstanceOfSatisfying(WebClientResponseException.class, e -> {
                        assertThat(e.getStatusCode().value()).isEqualTo(429);
                        assertThat(e.getResponseBodyAsString()).contains("too_many_streams");
                    });
        } finally {
            open.forEach(reactor.core.Disposable::dispose);
        }
    }

    // ---------------------------------------------------------------------------------------------

    private static Flux<ServerSentEvent<Map<String, Object>>> stream(int port, UUID account, String lastEventId, String key) {
        return WebClient.create("http://127.0.0.1:" + port).get().uri("/v1/accounts/{id}/balance/stream", account)
                .header("Authorization", TestAuthentication.bearer(key == null ? TestAuthentication.ADMIN_KEY : key))
                .headers(h -> {
                    if (lastEventId != null) {
                        h.set("Last-Event-ID", lastEventId);
                    }
                })
                .accept(MediaType.TEXT_EVENT_STREAM)
                .retrieve().bodyToFlux(EVENTS);
    }

    private long lastVersion(UUID account) {
        return db.sql("SELECT max(version) AS v FROM balances WHERE account_id = :id").bind("id", account)
                .map(row -> row.get("v", Long.class)).one().block();
    }

    private static void awaitSize(List<?> list, int size) {
        waitUntil(() -> list.size() >= size, WAIT);
        assertThat(list).as("events received in time").hasSizeGreaterThanOrEqualTo(size);
    }

    /** Polls until the condition holds or the time is up; the caller asserts what it waited for. */
    private static void waitUntil(java.util.function.BooleanSupplier condition, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!condition.getAsBoolean() && System.nanoTime() < deadline) {
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }
}
