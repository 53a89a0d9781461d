package io.paystream.transfer;

import java.time.Duration;
import java.util.UUID;

import io.paystream.testsupport.PaystreamIntegrationTest;
import io.r2dbc.spi.R2dbcException;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.r2dbc.core.DatabaseClient;
import org.springframework.transaction.ReactiveTransactionManager;
import org.springframework.transaction.reactive.TransactionalOperator;
import reactor.core.publisher.Mono;
import reactor.test.StepVerifier;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The database is a guard of its own: writes that bypass the application and break a ledger rule are
 * refused by constraints and triggers, with a SQLSTATE.
 */
@PaystreamIntegrationTest
class LedgerConstraintsIntegrationTests {

    private static final Duration TIMEOUT = Duration.ofSeconds(10);

    @Autowired
    DatabaseClient db;

    @Autowired
    ReactiveTransactionManager transactionManager;

    UUID alice;
    UUID bob;
    UUID world;
    UUID usd;

    @BeforeEach
    void accounts() {
        world = insertAccount("EUR", "system", true);
        alice = insertAccount("EUR", "user", false);
        bob = insertAccount("EUR", "user", false);
        usd = insertAccount("USD", "user", false);
        // A correct movement, written by hand: world -> alice, 100.
        UUID tx = UUID.randomUUID();
        long[] worldHead = db.sql("SELECT version, balance FROM balances WHERE account_id = :id ORDER BY version DESC LIMIT 1")
                .bind("id", world).map(row -> new long[] {row.get("version", Long.class), row.get("balance", Long.class)})
                .one().defaultIfEmpty(new long[] {0, 0}).block(TIMEOUT);
        run(insertTx(tx, world, alice, 100, "EUR")
                + ";" + insertBalance(world, worldHead[0] + 1, -100, worldHead[1] - 100, "EUR", tx)
                + ";" + insertBalance(alice, 1, 100, 100, "EUR", tx))
                .as(StepVerifier::create).verifyComplete();
    }

    @Test
    void ledgerRowsCannotBeUpdatedDeletedOrTruncated() {
        refused("UPDATE balances SET balance = 1000000 WHERE account_id = '" + alice + "'", "23001");
        refused("DELETE FROM balances WHERE account_id = '" + alice + "'", "23001");
        refused("UPDATE transactions SET amount = 1", "23001");
        refused("DELETE FROM transactions", "23001");
        refused("TRUNCATE balances CASCADE", "23001");
        refused("DELETE FROM accounts WHERE id = '" + bob + "'", "23001");
        refused("UPDATE accounts SET currency = 'USD' WHERE id = '" + bob + "'", "23001");
    }

    @Test
    void aBalanceCannotGoNegativeOnAUserAccount() {
        UUID tx = UUID.randomUUID();
        refused(insertTx(tx, alice, bob, 150, "EUR")
                + ";" + insertBalance(alice, 2, -150, -50, "EUR", tx)
                + ";" + insertBalance(bob, 1, 150, 150, "EUR", tx), "23514");
    }

    @Test
    void theChainMustBeExact() {
        UUID tx = UUID.randomUUID();
        // A wrong sum.
        refused(insertTx(tx, alice, bob, 10, "EUR")
                + ";" + insertBalance(alice, 2, -10, 100, "EUR", tx)
                + ";" + insertBalance(bob, 1, 10, 10, "EUR", tx), "23514");
        // A skipped version.
        refused(insertTx(tx, alice, bob, 10, "EUR")
                + ";" + insertBalance(alice, 3, -10, 90, "EUR", tx)
                + ";" + insertBalance(bob, 1, 10, 10, "EUR", tx), "40001");
        // A version taken twice.
        refused(insertTx(tx, alice, bob, 10, "EUR")
                + ";" + insertBalance(alice, 1, -10, 90, "EUR", tx)
                + ";" + insertBalance(bob, 1, 10, 10, "EUR", tx), "23505");
    }

    @Test
    void everyTransactionIsBalancedAtCommit() {
        UUID tx = UUID.randomUUID();
        // Only the credit side: money from nowhere.
        refused(insertTx(tx, alice, bob, 10, "EUR") + ";" + insertBalance(bob, 1, 10, 10, "EUR", tx), "23514");
        // Debit of the wrong amount.
        refused(insertTx(tx, alice, bob, 10, "EUR")
                + ";" + insertBalance(alice, 2, -5, 95, "EUR", tx)
                + ";" + insertBalance(bob, 1, 10, 10, "EUR", tx), "23514");
    }

    @Test
    void aBalanceRowCannotBeAddedToACommittedTransaction() {
        UUID tx = db.sql("SELECT transaction_id FROM balances WHERE account_id = :id AND version = 1").bind("id", alice)
                .map(row -> row.get("transaction_id", UUID.class)).one().block(TIMEOUT);
        // Money from nowhere, booked against a transaction that is already balanced.
        refused(insertBalance(alice, 2, 1_000_000, 1_000_100, "EUR", tx), "23514");
    }

    @Test
    void currenciesCannotMix() {
        UUID tx = UUID.randomUUID();
        refused(insertTx(tx, alice, usd, 10, "EUR"), "23503");
        refused(insertTx(tx, alice, bob, 10, "USD"), "23503");
    }

    @Test
    void amountsAndAccountsAreChecked() {
        refused(insertTx(UUID.randomUUID(), alice, bob, 0, "EUR"), "23514");
        refused(insertTx(UUID.randomUUID(), alice, bob, 1_000_000_000_000_001L, "EUR"), "23514");
        refused(insertTx(UUID.randomUUID(), alice, alice, 5, "EUR"), "23514");
        refused("INSERT INTO accounts (currency, name, kind, allow_negative, owner_id)"
                + " VALUES ('EUR', 'x', 'user', true, gen_random_uuid())", "23514");
        refused("INSERT INTO accounts (currency, name, kind) VALUES ('EUR', 'no owner', 'user')", "23514");
        refused("INSERT INTO accounts (currency, name, kind, allow_negative) VALUES ('EUR', 'second world', 'system', true)",
                "23505");
        refused("INSERT INTO accounts (currency, name, kind, owner_id) VALUES ('eur', 'x', 'user', gen_random_uuid())",
                "23514");
    }

    /**
     * The tables every movement grows are vacuumed at a pace (db/V5__gentle_vacuum.sql): at the default
     * pace one vacuum wrote 30 MB of WAL in a second, and every commit in it waited to flush that.
     */
    @Test
    void theTablesEveryMovementGrowsAreVacuumedAtAPace() {
        for (String table : java.util.List.of("balances", "transactions", "idempotency_keys")) {
            String options = db.sql("SELECT array_to_string(reloptions, ',') AS options FROM pg_class"
                            + " WHERE oid = CAST(:table AS regclass)")
                    .bind("table", table).map(row -> String.valueOf(row.get("options", String.class)))
                    .one().block(TIMEOUT);
            assertThat(options).as(table).contains("autovacuum_vacuum_cost_delay=20");
        }
    }

    private void refused(String sql, String sqlState) {
        run(sql).as(StepVerifier::create)
                .expectErrorSatisfies(error -> assertThat(sqlStateOf(error)).as(sql).isEqualTo(sqlState))
                .verify(TIMEOUT);
    }

    /** Runs the statements in one transaction, so deferred checks fire at its commit. */
    private Mono<Void> run(String statements) {
        TransactionalOperator tx = TransactionalOperator.create(transactionManager);
        Mono<Void> all = Mono.empty();
        for (String sql : statements.split(";")) {
            all = all.then(db.sql(sql).then());
        }
        return all.as(tx::transactional);
    }

    private UUID insertAccount(String currency, String kind, boolean allowNegative) {
        if ("system".equals(kind)) {
            UUID existing = db.sql("SELECT id FROM accounts WHERE kind = 'system' AND currency = :c").bind("c", currency)
                    .map(row -> row.get("id", UUID.class)).one().block(TIMEOUT);
            if (existing != null) {
                return existing;
            }
        }
        return db.sql("INSERT INTO accounts (currency, name, kind, allow_negative, owner_id)"
                        + " VALUES (:c, 'x', :k, :n, CASE WHEN :k = 'user' THEN gen_random_uuid() END) RETURNING id")
                .bind("c", currency).bind("k", kind).bind("n", allowNegative)
                .map(row -> row.get("id", UUID.class)).one().block(TIMEOUT);
    }

    private static String insertTx(UUID id, UUID debit, UUID credit, long amount, String currency) {
        return "INSERT INTO transactions (id, type, debit_account_id, credit_account_id, amount, currency, created_at)"
                + " VALUES ('" + id + "', 'transfer', '" + debit + "', '" + credit + "', " + amount + ", '" + currency
                + "', now())";
    }

    private static String insertBalance(UUID account, long version, long delta, long balance, String currency, UUID tx) {
        return "INSERT INTO balances (account_id, version, delta, balance, currency, transaction_id, created_at)"
                + " VALUES ('" + account + "', " + version + ", " + delta + ", " + balance + ", '" + currency + "', '" + tx
                + "', clock_timestamp())";
    }

    private static String sqlStateOf(Throwable error) {
        for (Throwable t = error; t != null; t = t.getCause()) {
            if (t instanceof R2dbcException r2dbc) {
                return r2dbc.getSqlState();
            }
        }
        return "none: " + error;
    }
}
