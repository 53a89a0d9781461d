package io.paystream.testsupport;

import java.time.Duration;

import org.springframework.r2dbc.core.DatabaseClient;
import org.springframework.transaction.ReactiveTransactionManager;
import org.springframework.transaction.reactive.TransactionalOperator;

/** What plan PostgreSQL gives a statement, for tests that a scan is bounded by its index. */
public final class QueryPlans {

    private QueryPlans() {
    }

    /**
     * The JSON plan of {@code explain} (an {@code EXPLAIN (FORMAT JSON) ...} with its parameters bound)
     * as it would be on a large table. A test database is small, and on a small table a sequential scan
     * is cheapest whatever the statement says; with it ruled out (for this transaction only), the plan
     * shows whether the planner can bound an index scan by the statement's condition, or only filter
     * every row it reads.
     */
    public static String onALargeTable(DatabaseClient db, ReactiveTransactionManager transactionManager,
            DatabaseClient.GenericExecuteSpec explain) {
        return db.sql("SET LOCAL enable_seqscan = off").then()
                .then(explain.map(row -> row.get(0, String.class)).one())
                .as(TransactionalOperator.create(transactionManager)::transactional)
                .block(Duration.ofSeconds(10));
    }
}
