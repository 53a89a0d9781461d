package io.paystream.idempotency;

import io.paystream.testsupport.PaystreamIntegrationTest;
import io.paystream.testsupport.QueryPlans;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.r2dbc.core.DatabaseClient;
import org.springframework.transaction.ReactiveTransactionManager;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The purge runs every minute on a table that holds a day of keys: it must read only the expired ones.
 * A cut-off the planner cannot use as an index condition (a volatile clock) made every run read every
 * key, about 300 ms for 250,000 keys, while it deleted none.
 */
@PaystreamIntegrationTest
class IdempotencyKeyPurgerIntegrationTests {

    @Autowired
    DatabaseClient db;

    @Autowired
    ReactiveTransactionManager transactionManager;

    @Test
    void thePurgeReadsOnlyExpiredKeysThroughTheAgeIndex() {
        String plan = QueryPlans.onALargeTable(db, transactionManager,
                db.sql("EXPLAIN (FORMAT JSON) " + IdempotencyKeyPurger.PURGE)
                        .bind("retentionSeconds", 86_400.0)
                        .bind("batchRows", IdempotencyKeyPurger.BATCH_ROWS));
        assertThat(plan).contains("\"Index Name\": \"idempotency_keys_by_age\"");
        assertThat(plan).containsPattern("\"Index Cond\": \"\\(created_at < ");
        assertThat(plan).doesNotContainPattern("\"Filter\": \"[^\"]*created_at");
    }
}
