package io.paystream.audit;

import java.time.Duration;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import org.springframework.r2dbc.core.DatabaseClient;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Reads the whole ledger back and checks the invariants every money path must keep, whatever the
 * concurrency: money conserved per currency, no forbidden negative balance, every account's chain
 * exact, every transaction balanced, and every acknowledged movement present exactly once. It is the
 * audit half of a pair assertion: the database enforces these on write; this reads them back.
 */
public final class LedgerAudit {

    private static final Duration TIMEOUT = Duration.ofSeconds(30);

    private final DatabaseClient db;

    public LedgerAudit(DatabaseClient db) {
        this.db = db;
    }

    public void assertInvariants() {
        // Conserved: per currency, the current balances (the world's included) sum to zero.
        List<Map<String, Object>> unbalancedCurrencies = rows("""
                SELECT currency, sum(balance) AS total
                  FROM (SELECT DISTINCT ON (account_id) account_id, currency, balance
                          FROM balances ORDER BY account_id, version DESC) heads
                 GROUP BY currency
                HAVING sum(balance) <> 0""");
        assertThat(unbalancedCurrencies).as("money created or destroyed per currency").isEmpty();

        List<Map<String, Object>> negative = rows("""
                SELECT b.account_id, b.version, b.balance, b.held
                  FROM balances b JOIN accounts a ON a.id = b.account_id
                 WHERE b.held < 0 OR (NOT a.allow_negative AND (b.balance < 0 OR b.balance - b.held < 0))""");
        assertThat(negative).as("balances (or available balances) below zero where forbidden").isEmpty();

        // Exact chains: versions 1, 2, 3, ... with no gap, balance = previous balance + delta, and
        // held = previous held + heldDelta.
        List<Map<String, Object>> brokenLinks = rows("""
                SELECT account_id, version, balance, delta, previous_balance, position
                  FROM (SELECT account_id, version, balance, delta, held, held_delta,
                               lag(balance) OVER chain AS previous_balance,
                               lag(held) OVER chain AS previous_held,
                               row_number() OVER chain AS position
                          FROM balances
                        WINDOW chain AS (PARTITION BY account_id ORDER BY version)) links
                 WHERE version <> position OR balance <> coalesce(previous_balance, 0) + delta
                    OR held <> coalesce(previous_held, 0) + held_delta""");
        assertThat(brokenLinks).as("broken balance chain links").isEmpty();

        // Double entry: each transaction has exactly its debit (-amount) and credit (+amount) rows.
        List<Map<String, Object>> unbalancedTransactions = rows("""
                SELECT t.id
                  FROM transactions t
                  LEFT JOIN balances b ON b.transaction_id = t.id
                 GROUP BY t.id, t.amount, t.debit_account_id, t.credit_account_id
                HAVING count(b.*) <> 2
                    OR count(*) FILTER (WHERE b.account_id = t.debit_account_id AND b.delta = -t.amount) <> 1
                    OR count(*) FILTER (WHERE b.account_id = t.credit_account_id AND b.delta = t.amount) <> 1""");
        assertThat(unbalancedTransactions).as("transactions without exactly one debit and one credit").isEmpty();

        List<Map<String, Object>> orphanRows = rows("""
                SELECT b.account_id, b.version FROM balances b
                 WHERE b.transaction_id IS NULL AND (b.hold_id IS NULL OR b.delta <> 0)""");
        assertThat(orphanRows).as("balance rows that move money without a transaction").isEmpty();

        // What an account holds is exactly the sum of its holds that have no outcome yet.
        List<Map<String, Object>> wrongHeld = rows("""
                SELECT coalesce(heads.account_id, open.account_id) AS account_id, heads.held, open.amount
                  FROM (SELECT DISTINCT ON (account_id) account_id, held
                          FROM balances ORDER BY account_id, version DESC) heads
                  FULL JOIN (SELECT h.debit_account_id AS account_id, sum(h.amount) AS amount
                               FROM holds h
                              WHERE NOT EXISTS (SELECT 1 FROM hold_events e WHERE e.hold_id = h.id AND e.status <> 'pending')
                              GROUP BY h.debit_account_id) open ON open.account_id = heads.account_id
                 WHERE coalesce(heads.held, 0) <> coalesce(open.amount, 0)""");
        assertThat(wrongHeld).as("held amounts that do not match the open holds").isEmpty();

        List<Map<String, Object>> badOutcomes = rows("""
                SELECT h.id FROM holds h
                 WHERE (SELECT count(*) FROM hold_events e WHERE e.hold_id = h.id AND e.status = 'pending') <> 1
                    OR (SELECT count(*) FROM hold_events e WHERE e.hold_id = h.id AND e.status <> 'pending') > 1""");
        assertThat(badOutcomes).as("holds without exactly one pending event and at most one outcome").isEmpty();

        List<Map<String, Object>> overReversed = rows("""
                SELECT o.id FROM transactions o
                 WHERE o.amount < (SELECT coalesce(sum(r.amount), 0) FROM transactions r WHERE r.reversal_of = o.id)""");
        assertThat(overReversed).as("transfers reversed beyond their amount").isEmpty();
    }

    /** Every movement a client was told succeeded is in the ledger, once. */
    public void assertPresentExactlyOnce(Collection<UUID> acknowledged) {
        assertThat(new HashSet<>(acknowledged)).as("distinct acknowledged ids").hasSameSizeAs(acknowledged);
        Long present = db.sql("SELECT count(*) AS n FROM transactions WHERE id = ANY(:ids)")
                .bind("ids", acknowledged.toArray(UUID[]::new))
                .map(row -> row.get("n", Long.class)).one().block(TIMEOUT);
        assertThat(present).as("acknowledged movements present in the ledger").isEqualTo(acknowledged.size());
    }

    public long transactionCount() {
        return db.sql("SELECT count(*) AS n FROM transactions").map(row -> row.get("n", Long.class)).one()
                .block(TIMEOUT);
    }

    public long balanceOf(UUID accountId) {
        Long balance = db.sql("SELECT balance FROM balances WHERE account_id = :id ORDER BY version DESC LIMIT 1")
                .bind("id", accountId).map(row -> row.get("balance", Long.class)).one().block(TIMEOUT);
        return balance == null ? 0 : balance;
    }

    private List<Map<String, Object>> rows(String sql) {
        return db.sql(sql).fetch().all().collectList().block(TIMEOUT);
    }
}
