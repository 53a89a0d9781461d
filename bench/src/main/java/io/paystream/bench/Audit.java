package io.paystream.bench;

import java.sql.Array;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;

/**
 * Reads the ledger back after a run and checks what must hold whatever the concurrency: money
 * conserved per currency, no forbidden negative balance, every account's chain exact, every
 * transaction balanced, and every movement a client was told succeeded present exactly once.
 */
final class Audit {

    record Result(List<String> failures, Map<String, Object> facts) {

        boolean ok() {
            return failures.isEmpty();
        }

        String summary() {
            return ok() ? "pass" : "FAIL: " + String.join("; ", failures);
        }

        Map<String, Object> toMap() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("ok", ok());
            m.put("failures", failures);
            m.put("facts", facts);
            return m;
        }
    }

    private Audit() {
    }

    static Result run(Connection c, Collection<UUID> acknowledged) throws SQLException {
        List<String> failures = new ArrayList<>();
        Map<String, Object> facts = new LinkedHashMap<>();
        try (Statement s = c.createStatement()) {
            s.execute("SET statement_timeout = '10min'");
        }
        facts.put("accounts", count(c, "SELECT count(*) FROM accounts"));
        facts.put("transactions", count(c, "SELECT count(*) FROM transactions"));
        facts.put("balanceRows", count(c, "SELECT count(*) FROM balances"));

        // Conserved: per currency, the latest balances (the world's included) sum to zero.
        List<Map<String, Object>> unbalanced = rows(c, """
                SELECT currency, sum(balance) AS total, count(*) AS accounts
                  FROM (SELECT DISTINCT ON (account_id) account_id, currency, balance
                          FROM balances ORDER BY account_id, version DESC) heads
                 GROUP BY currency""");
        for (Map<String, Object> row : unbalanced) {
            facts.put("sumOfBalances." + String.valueOf(row.get("currency")).strip(), row.get("total"));
            if (((Number) row.get("total")).longValue() != 0) {
                failures.add("money not conserved in " + row.get("currency") + ": balances sum to " + row.get("total"));
            }
        }
        check(c, failures, "balances below zero where forbidden (balance < 0 or balance - held < 0 on a user account)", """
                SELECT b.account_id, b.version, b.balance, b.held
                  FROM balances b JOIN accounts a ON a.id = b.account_id
                 WHERE b.held < 0 OR (NOT a.allow_negative AND (b.balance < 0 OR b.balance - b.held < 0))""");
        // Exact chains: versions 1, 2, 3, ... without a gap; balance = previous + delta; held = previous + held_delta.
        check(c, failures, "broken balance chain links", """
                SELECT account_id, version, balance, delta, previous_balance, position
                  FROM (SELECT account_id, version, balance, delta, held, held_delta,
                               lag(balance) OVER chain AS previous_balance,
                               lag(held) OVER chain AS previous_held,
                               row_number() OVER chain AS position
                          FROM balances
                        WINDOW chain AS (PARTITION BY account_id ORDER BY version)) links
                 WHERE version <> position OR balance <> coalesce(previous_balance, 0) + delta
                    OR held <> coalesce(previous_held, 0) + held_delta""");
        check(c, failures, "transactions without exactly one debit (-amount) and one credit (+amount)", """
                SELECT t.id
                  FROM transactions t
                  LEFT JOIN balances b ON b.transaction_id = t.id
                 GROUP BY t.id, t.amount, t.debit_account_id, t.credit_account_id
                HAVING count(b.*) <> 2
                    OR count(*) FILTER (WHERE b.account_id = t.debit_account_id AND b.delta = -t.amount) <> 1
                    OR count(*) FILTER (WHERE b.account_id = t.credit_account_id AND b.delta = t.amount) <> 1""");
        check(c, failures, "balance rows that move money without a transaction", """
                SELECT account_id, version FROM balances
                 WHERE transaction_id IS NULL AND (hold_id IS NULL OR delta <> 0)""");

        if (acknowledged != null) {
            Map<String, Object> presence = presence(c, acknowledged);
            facts.putAll(presence);
            long distinct = (Long) presence.get("acknowledgedDistinct");
            if (distinct != acknowledged.size()) {
                failures.add((acknowledged.size() - distinct) + " acknowledged ids were given to two different requests");
            }
            long missing = (Long) presence.get("acknowledgedMissing");
            if (missing != 0) {
                failures.add(missing + " acknowledged movements are not in the ledger");
            }
        }
        return new Result(failures, facts);
    }

    /** How many of the acknowledged ids are distinct, and how many of those are in transactions. */
    static Map<String, Object> presence(Connection c, Collection<UUID> acknowledged) throws SQLException {
        Map<String, Object> m = new LinkedHashMap<>();
        HashSet<UUID> distinct = new HashSet<>(acknowledged);
        long present;
        try (PreparedStatement p = c.prepareStatement(
                "SELECT count(*) FROM (SELECT DISTINCT id FROM unnest(?::uuid[]) a(id)) a JOIN transactions t ON t.id = a.id")) {
            Array array = c.createArrayOf("uuid", distinct.toArray());
            p.setArray(1, array);
            try (ResultSet rs = p.executeQuery()) {
                rs.next();
                present = rs.getLong(1);
            }
        }
        m.put("acknowledged", (long) acknowledged.size());
        m.put("acknowledgedDistinct", (long) distinct.size());
        m.put("acknowledgedPresent", present);
        m.put("acknowledgedMissing", distinct.size() - present);
        return m;
    }

    static long count(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
            rs.next();
            return rs.getLong(1);
        }
    }

    /** Money-moving transactions of the given types. */
    static long movements(Connection c) throws SQLException {
        return count(c, "SELECT count(*) FROM transactions WHERE type IN ('transfer', 'withdrawal')");
    }

    private static void check(Connection c, List<String> failures, String what, String sql) throws SQLException {
        List<Map<String, Object>> bad = rows(c, "SELECT * FROM (" + sql + ") x LIMIT 5");
        if (!bad.isEmpty()) {
            long n = count(c, "SELECT count(*) FROM (" + sql + ") x");
            failures.add(n + " " + what + ", e.g. " + bad.get(0));
        }
    }

    static List<Map<String, Object>> rows(Connection c, String sql) throws SQLException {
        List<Map<String, Object>> result = new ArrayList<>();
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
            ResultSetMetaData md = rs.getMetaData();
            while (rs.next()) {
                Map<String, Object> row = new LinkedHashMap<>();
                for (int i = 1; i <= md.getColumnCount(); i++) {
                    row.put(md.getColumnLabel(i), rs.getObject(i));
                }
                result.add(row);
            }
        }
        return result;
    }
}
