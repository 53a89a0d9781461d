package io.paystream.transfer;

import java.time.Duration;

import io.paystream.testsupport.PaystreamIntegrationTest;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.r2dbc.core.DatabaseClient;
import org.springframework.transaction.ReactiveTransactionManager;
import org.springframework.transaction.reactive.TransactionalOperator;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The expiry sweep runs all the time: its search for the next expired hold must stop at the present,
 * through the expiry index, and not read the holds that expire later.
 */
@PaystreamIntegrationTest
class HoldSweepPlanIntegrationTests {

    @Autowired
    DatabaseClient db;

    @Autowired
    ReactiveTransactionManager transactionManager;

    /**
     * The plan the statement gets on a large table. A test database is small, and on a small table a
     * sequential scan is cheapest whatever the statement says; with it ruled out, the planner shows
     * whether it can bound the index scan by the time, or only filter every row it reads.
     */
    private String planOnALargeTable(DatabaseClient.GenericExecuteSpec explain) {
        return db.sql("SET LOCAL enable_seqscan = off").then()
                .then(explain.map(row -> row.get(0, String.class)).one())
                .as(TransactionalOperator.create(transactionManager)::transactional)
                .block(Duration.ofSeconds(10));
    }

    @Test
    void theSweepSearchesOnlyExpiredHoldsThroughTheExpiryIndex() {
        String plan = planOnALargeTable(db.sql("EXPLAIN (FORMAT JSON) " + Holds.NEXT_EXPIRED));
        assertThat(plan).contains("\"Index Name\": \"holds_by_expiry\"");
        assertThat(plan).containsPattern("\"Index Cond\": \"\\(expires_at <= ");
        assertThat(plan).doesNotContainPattern("\"Filter\": \"[^\"]*expires_at");
    }
}
