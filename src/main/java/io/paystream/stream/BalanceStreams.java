package io.paystream.stream;

import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Function;

import io.paystream.security.Caller;
import io.paystream.system.ApiException;
import io.paystream.system.Problem;
import io.r2dbc.spi.Readable;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.context.SmartLifecycle;
import org.springframework.http.codec.ServerSentEvent;
import org.springframework.r2dbc.core.DatabaseClient;
import org.springframework.stereotype.Service;
import reactor.core.Disposable;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;

/**
 * Live balance streams. A stream is a loop: wait for a wake-up, read every version after the last one
 * sent from the ledger (in pages), send them, repeat. The first read happens at once, so a resumed
 * stream replays what it missed and a new one starts with the current balance; from then on
 * announcements of committed changes ({@link BalanceChanges}) wake it, and a periodic safety check. Because every read starts after the last version sent, the switch from
 * replay to live has no gap, no duplicate and no reordering, and a lost notification only delays.
 *
 * <p>Memory per stream is bounded whatever the reader's speed: reads happen only when the HTTP writer
 * asks for more (a page at most), and wake-ups coalesce (at most one pending).
 */
@Service
class BalanceStreams implements SmartLifecycle {

    /** Versions per read: bounds the memory a stream holds at once. */
    static final int PAGE_ROWS = 100;

    private static final String OWNER = "SELECT kind, owner_id FROM accounts WHERE id = :id";

    private static final String HEAD = """
            SELECT version, balance, held, transaction_id, hold_id, created_at
              FROM balances WHERE account_id = :id ORDER BY version DESC LIMIT 1""";

    private static final String AFTER = """
            SELECT version, balance, held, transaction_id, hold_id, created_at
              FROM balances WHERE account_id = :id AND version > :after
             ORDER BY version
             LIMIT :limit""";

    private final DatabaseClient db;
    private final BalanceHub hub;
    private final Duration heartbeat;
    private final Duration retryHint;
    private final Duration maxLifetime;
    private final Duration safetyCheck;
    private final int maxPerClient;
    private final int maxTotal;
    /** Completes every stream at shutdown, so clients reconnect elsewhere instead of holding it up. */
    private final Sinks.Empty<Void> shutdown = Sinks.empty();
    private volatile boolean running;

    BalanceStreams(DatabaseClient db, BalanceHub hub,
            @Value("${paystream.streams.heartbeat}") Duration heartbeat,
            @Value("${paystream.streams.retry-hint}") Duration retryHint,
            @Value("${paystream.streams.max-lifetime}") Duration maxLifetime,
            @Value("${paystream.streams.safety-check}") Duration safetyCheck,
            @Value("${paystream.streams.max-per-client}") int maxPerClient,
            @Value("${paystream.streams.max-per-replica}") int maxTotal) {
        this.db = db;
        this.hub = hub;
        this.heartbeat = heartbeat;
        this.retryHint = retryHint;
        this.maxLifetime = maxLifetime;
        this.safetyCheck = safetyCheck;
        this.maxPerClient = maxPerClient;
        this.maxTotal = maxTotal;
    }

    /**
     * The stream of one account for one caller: every version after {@code after} (or, when null, the
     * current balance first), then each change as it commits.
     */
    Mono<Flux<ServerSentEvent<BalanceEvent>>> open(UUID accountId, Long after, Caller caller) {
        return db.sql(OWNER).bind("id", accountId)
                .map(row -> "user".equals(row.get("kind", String.class)) && caller.owns(row.get("owner_id", UUID.class))
                        || caller.isAdmin())
                .one()
                .filter(visible -> visible)
                .switchIfEmpty(Mono.error(() -> new ApiException(Problem.ACCOUNT_NOT_FOUND, "No account " + accountId)))
                .map(visible -> {
                    BalanceHub.Watcher watcher = hub.register(accountId, caller.clientId(), maxPerClient, maxTotal);
                    if (watcher == null) {
                        throw new ApiException(Problem.TOO_MANY_STREAMS, "At most " + maxPerClient
                                + " streams per client and " + maxTotal + " per server are open at once");
                    }
                    return stream(watcher, after);
                });
    }

    private Flux<ServerSentEvent<BalanceEvent>> stream(BalanceHub.Watcher watcher, Long after) {
        UUID accountId = watcher.accountId;
        // The safety check: the bound on how late a change whose announcement was lost (a replica
        // died between COMMIT and announcing it) can arrive. It wakes the watcher like a notification.
        Disposable safetyChecks = Flux.interval(safetyCheck, safetyCheck).subscribe(tick -> watcher.wake());
        return pipeline(watcher.wakes(), after, head(accountId), lastSent -> readAfter(accountId, lastSent),
                new Limits(heartbeat, retryHint, maxLifetime), shutdown.asMono())
                .doFinally(signal -> {
                    safetyChecks.dispose();
                    hub.unregister(watcher);
                });
    }

    record Limits(Duration heartbeat, Duration retryHint, Duration maxLifetime) {
    }

    /**
     * The stream itself, apart from where its data comes from (so it can be tested on its own): the
     * current balance unless resuming, then a read after the last version sent at once and on every
     * wake-up, with heartbeats, until its lifetime or the shutdown ends it.
     */
    static Flux<ServerSentEvent<BalanceEvent>> pipeline(Flux<Boolean> wakes, Long after, Mono<BalanceEvent> head,
            Function<AtomicLong, Flux<BalanceEvent>> readAfter, Limits limits, Mono<Void> shutdown) {
        AtomicLong lastSent = new AtomicLong(after == null ? -1 : after);
        // Sent at once, so the client sees the response start even when there is nothing to replay,
        // and learns how soon to reconnect.
        ServerSentEvent<BalanceEvent> opened = ServerSentEvent.<BalanceEvent>builder().comment("stream open")
                .retry(limits.retryHint()).build();
        Flux<ServerSentEvent<BalanceEvent>> first = after != null ? Flux.empty() : head
                .doOnNext(event -> lastSent.set(event.version()))
                .map(BalanceStreams::event)
                .flux();
        Flux<ServerSentEvent<BalanceEvent>> changes = wakes
                .startWith(Boolean.TRUE)
                .concatMap(wake -> readAfter.apply(lastSent), 1)
                .map(BalanceStreams::event);
        Flux<ServerSentEvent<BalanceEvent>> heartbeats = Flux.interval(limits.heartbeat())
                .map(tick -> ServerSentEvent.<BalanceEvent>builder().comment("heartbeat").build());
        // Prefetch 1: nothing is read ahead of what the HTTP writer asks for, beyond one event.
        // A read that fails (the database busy or gone) ends the stream cleanly rather than cutting the
        // connection: the client reconnects with its Last-Event-ID and misses nothing.
        Sinks.Empty<Void> ended = Sinks.empty();
        Flux<ServerSentEvent<BalanceEvent>> events = Flux.concat(Flux.just(opened), first, changes)
                .onErrorResume(error -> Flux.empty())
                .doFinally(signal -> ended.tryEmitEmpty());
        return Flux.merge(1, events, heartbeats.takeUntilOther(ended.asMono()))
                .take(limits.maxLifetime())
                .takeUntilOther(shutdown);
    }

    /** The current balance: the head of the chain, or version 0 before the first movement. */
    private Mono<BalanceEvent> head(UUID accountId) {
        return db.sql(HEAD).bind("id", accountId).map(row -> event(accountId, row)).one()
                .defaultIfEmpty(new BalanceEvent(accountId, 0, 0, 0, 0, null, null, null));
    }

    /** Every version after the last one sent, page by page, advancing the mark as it goes. */
    Flux<BalanceEvent> readAfter(UUID accountId, AtomicLong lastSent) {
        return Flux.defer(() -> db.sql(AFTER).bind("id", accountId).bind("after", Math.max(lastSent.get(), 0))
                        .bind("limit", PAGE_ROWS)
                        .map(row -> event(accountId, row))
                        .all()
                        .collectList())
                .concatMap(page -> {
                    if (!page.isEmpty()) {
                        lastSent.set(page.get(page.size() - 1).version());
                    }
                    Flux<BalanceEvent> rows = Flux.fromIterable(page);
                    return page.size() < PAGE_ROWS ? rows : rows.concatWith(readAfter(accountId, lastSent));
                });
    }

    private static ServerSentEvent<BalanceEvent> event(BalanceEvent event) {
        return ServerSentEvent.<BalanceEvent>builder(event).event("balance").id(Long.toString(event.version())).build();
    }

    private static BalanceEvent event(UUID accountId, Readable row) {
        long balance = row.get("balance", Long.class);
        long held = row.get("held", Long.class);
        return new BalanceEvent(accountId, balance, held, balance - held, row.get("version", Long.class),
                row.get("transaction_id", UUID.class), row.get("hold_id", UUID.class), row.get("created_at", Instant.class));
    }

    // Shutdown: end every stream first, before the web server's graceful shutdown waits for requests.

    @Override
    public void start() {
        running = true;
    }

    @Override
    public void stop() {
        running = false;
        shutdown.tryEmitEmpty();
    }

    @Override
    public boolean isRunning() {
        return running;
    }

    @Override
    public int getPhase() {
        return Integer.MAX_VALUE; // stopped first
    }
}
