package io.paystream.idempotency;

import java.time.Duration;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.r2dbc.core.DatabaseClient;
import org.springframework.scheduling.annotation.Scheduled;
import org.springframework.stereotype.Component;
import reactor.core.publisher.Mono;

/**
 * Forgets idempotency keys older than the retention (24 hours by default). Safe with any number of
 * replicas: each run deletes at most {@value #BATCH_ROWS} of the oldest keys, skipping rows another
 * replica is deleting right now, so runs never block each other and never hold long locks.
 */
@Component
class IdempotencyKeyPurger {

    private static final Logger log = LoggerFactory.getLogger(IdempotencyKeyPurger.class);

    /** Rows per run: small enough to keep the statement short, big enough to keep up with traffic. */
    static final int BATCH_ROWS = 5_000;

    /**
     * The cut-off is taken from {@code statement_timestamp()}, which is stable within the statement, so
     * it bounds the scan of {@code idempotency_keys_by_age}. {@code clock_timestamp()} is volatile: the
     * planner may not use it in an index condition, and the purge would read every key on every run.
     */
    static final String PURGE = """
            DELETE FROM idempotency_keys
             WHERE (scope, key) IN (
                   SELECT scope, key FROM idempotency_keys
                    WHERE created_at < statement_timestamp() - make_interval(secs => :retentionSeconds)
                    ORDER BY created_at
                    LIMIT :batchRows
                    FOR UPDATE SKIP LOCKED)""";

    private final DatabaseClient db;
    private final Duration retention;

    IdempotencyKeyPurger(DatabaseClient db, @Value("${paystream.idempotency.retention}") Duration retention) {
        if (retention.compareTo(Duration.ofHours(1)) < 0) {
            throw new IllegalArgumentException("paystream.idempotency.retention must be at least 1h, was " + retention);
        }
        this.db = db;
        this.retention = retention;
    }

    @Scheduled(fixedDelayString = "${paystream.idempotency.purge-interval}", initialDelayString = "PT30S")
    Mono<Long> purge() {
        return purgeOnce()
                .doOnNext(rows -> {
                    if (rows > 0) {
                        log.info("Purged {} idempotency keys older than {}", rows, retention);
                    }
                })
                .onErrorResume(error -> {
                    log.warn("Idempotency key purge failed; the next run tries again: {}", error.toString());
                    return Mono.empty();
                });
    }

    Mono<Long> purgeOnce() {
        return db.sql(PURGE)
                .bind("retentionSeconds", (double) retention.toSeconds())
                .bind("batchRows", BATCH_ROWS)
                .fetch().rowsUpdated();
    }
}
