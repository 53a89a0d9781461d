package io.paystream.transfer;

import io.paystream.testsupport.PaystreamIntegrationTest;
import io.paystream.testsupport.QueryPlans;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.r2dbc.core.DatabaseClient;
import org.springframework.transaction.ReactiveTransactionManager;

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

    @Test
    void theSweepSearchesOnlyExpiredHoldsThroughTheExpiryIndex() {
        String plan = QueryPlans.onALargeTable(db, transactionManager,
                db.sql("EXPLAIN (FORMAT JSON) " + Holds.NEXT_EXPIRED));
        assertThat(plan).contains("\"Index Name\": \"holds_by_expiry\"");
        assertThat(plan).containsPattern("\"Index Cond\": \"\\(expires_at <= ");
        assertThat(plan).doesNotContainPattern("\"Filter\": \"[^\"]*expires_at");
    }
}
