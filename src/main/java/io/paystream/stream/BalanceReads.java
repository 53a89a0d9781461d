package io.paystream.stream;

import java.time.Instant;
import java.util.Map;
import java.util.UUID;

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
 * <li>opening a stream: who may watch the account, and its current balance;</li>
 * <li>the versions of many watched accounts after what this replica already knows, in one batch
 * ({@link BalanceHub} makes one such read for all the accounts a burst of changes touched, however many
 * watchers each has);</li>
 * <li>the versions of one account after a mark, a page at a time: a stream that resumes from further
 * back than the replica keeps in memory, or a reader that fell that far behind.</li>
 * </ul>
 */
@Component
class BalanceReads implements BalanceHub.Reader, DisposableBean {

    private static final String OPEN = """
            SELECT a.kind, a.owner_id, h.version, h.balance, h.held, h.transaction_id, h.hold_id, h.created_at
              FROM accounts a
              LEFT JOIN LATERAL (
                    SELECT b.version, b.balance, b.held, b.transaction_id, b.hold_id, b.created_at
                      FROM balances b WHERE b.account_id = a.id ORDER BY b.version DESC LIMIT 1) h ON true
             WHERE a.id = :id""";

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
    }

    @Override
    public void destroy() {
        pool.dispose();
    }

    Mono<Opening> open(UUID accountId) {
        return db.sql(OPEN).bind("id", accountId)
                .map(row -> new Opening(row.get("kind", String.class), row.get("owner_id", UUID.class),
                        row.get("version", Long.class) == null
                                ? new BalanceEvent(accountId, 0, 0, 0, 0, null, null, null)
                                : event(accountId, row)))
                .one();
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
