package io.paystream.stream;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import io.paystream.audit.Burst;
import io.paystream.testsupport.PaystreamIntegrationTest;
import io.paystream.testsupport.TestAuthentication;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.core.ParameterizedTypeReference;
import org.springframework.http.MediaType;
import org.springframework.http.client.reactive.ReactorClientHttpConnector;
import org.springframework.http.codec.ServerSentEvent;
import org.springframework.r2dbc.core.DatabaseClient;
import org.springframework.test.context.TestPropertySource;
import org.springframework.web.reactive.function.client.WebClient;
import reactor.core.publisher.Flux;
import reactor.netty.http.client.HttpClient;
import reactor.netty.resources.ConnectionProvider;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Streams opening in a storm (a replica's watchers all reconnecting to this one) share their opening
 * reads: each still gets its own account's owner and current head, and an account that does not exist
 * is still "not found", while the database sees a few statements rather than one per stream.
 */
@PaystreamIntegrationTest
@TestPropertySource(properties = {"paystream.streams.max-per-client=1000", "paystream.ledger.attempt-timeout=60s",
        "spring.r2dbc.pool.max-acquire-time=60s"})
class BalanceOpeningIntegrationTests {

    private static final ParameterizedTypeReference<ServerSentEvent<Map<String, Object>>> EVENTS =
            new ParameterizedTypeReference<>() {
            };

    @LocalServerPort
    int port;

    @Autowired
    BalanceReads reads;

    @Autowired
    DatabaseClient db;

    @Test
    void openingsInAStormShareReadsAndEachGetsItsOwnAccount() throws Exception {
        Burst burst = new Burst(port);
        List<UUID> accounts = new ArrayList<>();
        Map<UUID, Long> versions = new HashMap<>();
        for (int i = 0; i < 20; i++) {
            UUID account = burst.account("EUR");
            for (int d = 0; d < i % 3; d++) {
                burst.deposit(account, 10 + d, "EUR");
            }
            accounts.add(account);
            versions.put(account, (long) (i % 3));
        }
        List<UUID> missing = List.of(UUID.randomUUID(), UUID.randomUUID(), UUID.randomUUID());

        long readsBefore = reads.openingReads();
        int openings = 600;
        List<UUID> asked = new ArrayList<>(openings);
        List<CompletableFuture<BalanceReads.Opening>> answers = new ArrayList<>(openings);
        for (int i = 0; i < openings; i++) {
            UUID id = i % 23 < 20 ? accounts.get(i % 23) : missing.get(i % 23 - 20);
            asked.add(id);
            answers.add(reads.open(id));
        }
        CompletableFuture.allOf(answers.toArray(CompletableFuture[]::new)).get(60, TimeUnit.SECONDS);
        long statements = reads.openingReads() - readsBefore;

        for (int i = 0; i < openings; i++) {
            UUID id = asked.get(i);
            BalanceReads.Opening opening = answers.get(i).get();
            if (missing.contains(id)) {
                assertThat(opening).as("opening %d, of an account that does not exist", i).isNull();
                continue;
            }
            assertThat(opening).as("opening %d", i).isNotNull();
            assertThat(opening.kind()).isEqualTo("user");
            assertThat(opening.ownerId()).isEqualTo(ownerOf(id));
            assertThat(opening.head().accountId()).isEqualTo(id);
            assertThat(opening.head().version()).as("head of %s", id).isEqualTo(versions.get(id));
            assertThat(opening.head().balance()).isEqualTo(balanceOf(id));
        }
        // 600 openings of 23 accounts, added faster than one read takes: a few reads, never one each
        // (how few depends on scheduling; one read per opening would be about 600).
        assertThat(statements).as("opening reads for %d openings", openings).isBetween(1L, 150L);
    }

    @Test
    void twoHundredStreamsOpenedAtOnceEachStartAtTheirAccountsHead() {
        Burst burst = new Burst(port);
        List<UUID> accounts = new ArrayList<>();
        for (int i = 0; i < 20; i++) {
            UUID account = burst.account("EUR");
            burst.deposit(account, 100 + i, "EUR");
            accounts.add(account);
        }
        ConnectionProvider connections = ConnectionProvider.builder("openings").maxConnections(250)
                .pendingAcquireMaxCount(-1).build();
        WebClient client = WebClient.builder()
                .clientConnector(new ReactorClientHttpConnector(HttpClient.create(connections)))
                .baseUrl("http://127.0.0.1:" + port).build();
        try {
            List<ServerSentEvent<Map<String, Object>>> firsts = Flux.range(0, 200)
                    .flatMap(i -> client.get().uri("/v1/accounts/{id}/balance/stream", accounts.get(i % 20))
                            .header("Authorization", TestAuthentication.bearer(TestAuthentication.ADMIN_KEY))
                            .accept(MediaType.TEXT_EVENT_STREAM)
                            .retrieve().bodyToFlux(EVENTS)
                            .filter(e -> "balance".equals(e.event()))
                            .next(), 200)
                    .collectList()
                    .block(Duration.ofSeconds(60));
            assertThat(firsts).hasSize(200);
            Map<Object, Long> perAccount = new HashMap<>();
            for (ServerSentEvent<Map<String, Object>> first : firsts) {
                UUID account = UUID.fromString((String) first.data().get("accountId"));
                assertThat(accounts).contains(account);
                assertThat(first.id()).isEqualTo("1");
                assertThat(((Number) first.data().get("balance")).longValue())
                        .isEqualTo(100 + accounts.indexOf(account));
                perAccount.merge(account, 1L, Long::sum);
            }
            assertThat(perAccount).hasSize(20).allSatisfy((account, count) -> assertThat(count).isEqualTo(10L));
        } finally {
            connections.dispose();
        }
    }

    private UUID ownerOf(UUID account) {
        return db.sql("SELECT owner_id FROM accounts WHERE id = :id").bind("id", account)
                .map(row -> row.get("owner_id", UUID.class)).one().block(Duration.ofSeconds(10));
    }

    private long balanceOf(UUID account) {
        return db.sql("SELECT coalesce(max(balance) FILTER (WHERE version = (SELECT max(version) FROM balances"
                        + " WHERE account_id = :id)), 0) AS b FROM balances WHERE account_id = :id")
                .bind("id", account).map(row -> row.get("b", Long.class)).one().block(Duration.ofSeconds(10));
    }
}
