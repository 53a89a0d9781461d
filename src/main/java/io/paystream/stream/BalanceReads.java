package io.paystream.stream;

import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import io.paystream.system.ApiException;
import io.paystream.system.Problem;
import io.r2dbc.pool.ConnectionPool;
import io.r2dbc.pool.ConnectionPoolConfiguration;
import io.r2dbc.spi.Readable;
import org.springframework.beans.factory.DisposableBean;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.boot.r2dbc.autoconfigure.R2dbcProperties;
import org.springframework.r2dbc.core.DatabaseClient;
import org.springframework.stereotype.Component;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * Every read a balance stream makes of the ledger. Three shapes, each one statement:
 * <ul>
 * <li>opening streams: who may watch each account, and its current balance, for every stream that is
 * opening at the time (up to {@link #OPENS_PER_READ} accounts);</li>
 * <li>the versions of many watched accounts after what this replica already knows, in one batch
 * ({@link BalanceHub} makes one such read for all the accounts a burst of changes touched, however many
 * watchers each has);</li>
 * <li>the versions of one account after a mark, a page at a time: a stream that resumes from further
 * back than the replica keeps in memory, or a reader that fell that far behind.</li>
 * </ul>
 */
@Component
class BalanceReads implements BalanceHub.Reader, DisposableBean {

    /** The owner and head of each of many accounts; an id with no account has no row. */
    private static final String OPEN_MANY = """
            SELECT a.id, a.kind, a.owner_id, h.version, h.balance, h.held, h.transaction_id, h.hold_id, h.created_at
              FROM accounts a
              LEFT JOIN LATERAL (
                    SELECT b.version, b.balance, b.held, b.transaction_id, b.hold_id, b.created_at
                      FROM balances b WHERE b.account_id = a.id ORDER BY b.version DESC LIMIT 1) h ON true
             WHERE a.id = ANY(:ids)""";

    /**
     * Accounts per opening read. Streams open in storms (a replica's watchers all reconnect elsewhere
     * when it stops), and one statement for a hundred accounts costs little more than one for one.
     */
    static final int OPENS_PER_READ = 100;

    /**
     * Openings waiting for a read. Beyond it an opening is refused at once (503, retry later) rather
     * than queued: with {@link #OPENS_PER_READ} per read, it is many reads' worth of backlog.
     */
    static final int MAX_WAITING_OPENS = 5_000;

    private static final String AFTER = """
            SELECT account_id, version, balance, held, transaction_id, hold_id, created_at
              FROM balances WHERE account_id = :id AND version > :after
             ORDER BY version
             LIMIT :limit""";

    /** Each account's next versions (at most :limit each) after its own mark, in one round trip. */
    private static final String AFTER_MANY = """
            SELECT b.account_id, b.version, b.balance, b.held, b.transaction_id, b.hold_id, b.created_at
              FROM unnest(CAST(:ids AS uuid[]), CAST(:afters AS bigint[])) AS w(account_id, after)
             CROSS JOIN LATERAL (
                    SELECT account_id, version, balance, held, transaction_id, hold_id, created_at
                      FROM balances WHERE account_id = w.account_id AND version > w.after
                     ORDER BY version
                     LIMIT :limit) b
             ORDER BY b.account_id, b.version""";

    /** Who owns an account, and its head: version 0 before its first movement. */
    record Opening(String kind, UUID ownerId, BalanceEvent head) {
    }

    static final String APPLICATION_NAME = "paystream-streams";

    private final ConnectionPool pool;
    private final DatabaseClient db;
    /** Opening reads in flight at once: one per connection of the pool, so none waits for one. */
    private final int maxOpeningReads;
    private final Queue<WaitingOpen> waitingOpens = new ConcurrentLinkedQueue<>();
    private final AtomicInteger waiting = new AtomicInteger();
    private final AtomicInteger openingReadsInFlight = new AtomicInteger();
    private final AtomicLong openingReads = new AtomicLong();

    /**
     * Stream reads have a small pool of their own, apart from the money movements' pool: a burst of
     * movements that fills that pool must not hold up the reads that announce them (measured: with
     * one shared pool of 10, deliveries stalled for whole seconds behind queued transfer batches), and
     * a storm of reconnecting streams must not starve the movements.
     */
    BalanceReads(R2dbcProperties properties, @Value("${paystream.streams.db-pool-max-size}") int maxSize) {
        // Sized on its own; its times are the application pool's (spring.r2dbc.pool.*).
        R2dbcProperties.Pool times = properties.getPool();
        this.pool = new ConnectionPool(ConnectionPoolConfiguration.builder(StreamConnections.factory(properties, APPLICATION_NAME))
                .name(APPLICATION_NAME)
                .initialSize(1)
                .maxSize(maxSize)
                .maxAcquireTime(times.getMaxAcquireTime())
                .maxCreateConnectionTime(times.getMaxCreateConnectionTime())
                .maxIdleTime(times.getMaxIdleTime())
                .maxLifeTime(times.getMaxLifeTime())
                .build());
        this.db = DatabaseClient.create(pool);
        this.maxOpeningReads = maxSize;
    }

    @Override
    public void destroy() {
        pool.dispose();
    }

    /** An opening waiting for its read; its answer is null when there is no such account. */
    private record WaitingOpen(UUID accountId, CompletableFuture<Opening> answer) {
    }

    /**
     * Who may watch an account, and its head; completes with null when there is no such account.
     * Openings that arrive while a read is in flight wait for the next, which serves up to
     * {@link #OPENS_PER_READ} accounts at once (and each account once, however many of its watchers
     * are opening): a storm of openings costs a few statements, not one each, and never queues for
     * the pool's connections. A single opening is read at once.
     */
    CompletableFuture<Opening> open(UUID accountId) {
        CompletableFuture<Opening> answer = new CompletableFuture<>();
        if (waiting.incrementAndGet() > MAX_WAITING_OPENS) {
            waiting.decrementAndGet();
            answer.completeExceptionally(new ApiException(Problem.DATABASE_UNAVAILABLE,
                    "Too many balance streams are opening at once; retry later"));
            return answer;
        }
        waitingOpens.add(new WaitingOpen(accountId, answer));
        startOpeningReads();
        return answer;
    }

    /** Opening reads made so far (each serves one or more openings). */
    long openingReads() {
        return openingReads.get();
    }

    private void startOpeningReads() {
        while (!waitingOpens.isEmpty()) {
            int inFlight = openingReadsInFlight.get();
            if (inFlight >= maxOpeningReads) {
                return; // the read in flight starts the next when it ends
            }
            if (!openingReadsInFlight.compareAndSet(inFlight, inFlight + 1)) {
                continue;
            }
            Map<UUID, List<CompletableFuture<Opening>>> batch = new LinkedHashMap<>();
            WaitingOpen next;
            while (batch.size() < OPENS_PER_READ && (next = waitingOpens.poll()) != null) {
                waiting.decrementAndGet();
                if (!next.answer().isDone()) { // not given up on (a client gone) meanwhile
                    batch.computeIfAbsent(next.accountId(), id -> new ArrayList<>(1)).add(next.answer());
                }
            }
            if (batch.isEmpty()) {
                openingReadsInFlight.decrementAndGet();
                continue;
            }
            openingReads.incrementAndGet();
            Mono.defer(() -> readOpenings(batch))
                    .onErrorResume(error -> {
                        // The batch's waiters get the failure (a 503 for a database that is away); the
                        // next openings get a read of their own.
                        batch.values().forEach(answers -> answers.forEach(a -> a.completeExceptionally(error)));
                        return Mono.empty();
                    })
                    .doFinally(signal -> {
                        openingReadsInFlight.decrementAndGet();
                        startOpeningReads();
                    })
                    .subscribe();
        }
    }

    /** One statement for the batch; every waiter is answered, with null for an account not found. */
    private Mono<Void> readOpenings(Map<UUID, List<CompletableFuture<Opening>>> batch) {
        return db.sql(OPEN_MANY).bind("ids", batch.keySet().toArray(UUID[]::new))
                .map(row -> {
                    UUID accountId = row.get("id", UUID.class);
                    return Map.entry(accountId, new Opening(row.get("kind", String.class), row.get("owner_id", UUID.class),
                            row.get("version", Long.class) == null
                                    ? new BalanceEvent(accountId, 0, 0, 0, 0, null, null, null)
                                    : event(accountId, row)));
                })
                .all()
                .collectMap(Map.Entry::getKey, Map.Entry::getValue)
                .doOnNext(found -> batch.forEach((accountId, answers) ->
                        answers.forEach(answer -> answer.complete(found.get(accountId)))))
                .then();
    }

    Flux<BalanceEvent> after(UUID accountId, long after, int limit) {
        return db.sql(AFTER).bind("id", accountId).bind("after", after).bind("limit", limit)
                .map(row -> event(accountId, row))
                .all();
    }

    @Override
    public Flux<BalanceEvent> after(Map<UUID, Long> cursors, int limit) {
        UUID[] ids = new UUID[cursors.size()];
        Long[] afters = new Long[cursors.size()];
        int i = 0;
        for (Map.Entry<UUID, Long> cursor : cursors.entrySet()) {
            ids[i] = cursor.getKey();
            afters[i++] = cursor.getValue();
        }
        return db.sql(AFTER_MANY).bind("ids", ids).bind("afters", afters).bind("limit", limit)
                .map(row -> event(row.get("account_id", UUID.class), row))
                .all();
    }

    private static BalanceEvent event(UUID accountId, Readable row) {
        long balance = row.get("balance", Long.class);
        long held = row.get("held", Long.class);
        return new BalanceEvent(accountId, balance, held, balance - held, row.get("version", Long.class),
                row.get("transaction_id", UUID.class), row.get("hold_id", UUID.class),
                row.get("created_at", Instant.class));
    }
}
