package io.paystream.bench;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicInteger;

import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * Creates the accounts a run moves money between, each funded by one deposit from the currency's
 * system account (the outside world), and records them in a separate schema {@code bench} so that
 * pgbench and the load generator can pick them by number:
 * {@code bench.accounts(n, id)} for the numbered accounts 1..N and {@code bench.special(role, id)} for
 * the merchant of the hot workload and the accounts the drain workload empties.
 */
final class Seeder {

    static final String CURRENCY = "EUR";

    /** What was seeded: numbered accounts (index 0 = account 1) and the special ones by role. */
    record Accounts(List<UUID> numbered, Map<String, UUID> special) {

        UUID special(String role) {
            UUID id = special.get(role);
            if (id == null) {
                throw new IllegalStateException("no seeded account for " + role);
            }
            return id;
        }
    }

    private Seeder() {
    }

    static void createBenchSchema(Connection c) throws SQLException {
        try (Statement s = c.createStatement()) {
            s.execute("CREATE SCHEMA IF NOT EXISTS bench");
            s.execute("CREATE TABLE IF NOT EXISTS bench.accounts (n int PRIMARY KEY, id uuid NOT NULL UNIQUE)");
            s.execute("CREATE TABLE IF NOT EXISTS bench.special (role text PRIMARY KEY, id uuid NOT NULL, funds bigint NOT NULL)");
            // A rerun against the same database seeds new accounts; the ledger keeps the old ones.
            s.execute("TRUNCATE bench.accounts, bench.special");
        }
    }

    /**
     * Seeds with SQL, in one transaction, the way the ledger's own rules demand: the system account of
     * the currency exists (created exactly as the application creates it); its row is locked as the
     * application locks it; each account gets one 'deposit' transaction whose balance rows extend both
     * chains by exactly one link (the world's chain by N links, version after version, each balance the
     * previous one minus the deposit). The database's triggers check every row as it goes in, and the
     * deferred double-entry check runs at commit.
     */
    static Accounts seedSql(Connection c, int count, long funds, Map<String, Long> specialFunds) throws SQLException {
        long t0 = System.nanoTime();
        c.setAutoCommit(false);
        try {
            createBenchSchema(c);
            try (Statement s = c.createStatement()) {
                s.execute("SET LOCAL statement_timeout = '10min'");
                s.execute("""
                        INSERT INTO accounts (currency, name, kind, allow_negative)
                        VALUES ('EUR', 'Outside world (EUR)', 'system', true)
                        ON CONFLICT (currency) WHERE kind = 'system' DO NOTHING""");
                s.execute("""
                        CREATE TEMP TABLE bench_seed (id uuid NOT NULL, amount bigint NOT NULL, n int, role text,
                                                      tx uuid NOT NULL DEFAULT gen_random_uuid()) ON COMMIT DROP""");
            }
            UUID world;
            try (Statement s = c.createStatement();
                    ResultSet rs = s.executeQuery("SELECT id FROM accounts WHERE kind = 'system' AND currency = 'EUR' "
                            + "FOR NO KEY UPDATE")) {
                rs.next();
                world = rs.getObject(1, UUID.class);
            }
            try (PreparedStatement p = c.prepareStatement("""
                    WITH created AS (
                        INSERT INTO accounts (currency, name, kind)
                        SELECT 'EUR', 'bench ' || g, 'user' FROM generate_series(1, ?) g
                        RETURNING id, name)
                    INSERT INTO bench_seed (id, amount, n)
                    SELECT id, ?, split_part(name, ' ', 2)::int FROM created""")) {
                p.setInt(1, count);
                p.setLong(2, funds);
                p.executeUpdate();
            }
            try (PreparedStatement p = c.prepareStatement("""
                    WITH created AS (
                        INSERT INTO accounts (currency, name, kind) VALUES ('EUR', 'bench ' || ?, 'user') RETURNING id)
                    INSERT INTO bench_seed (id, amount, role) SELECT id, ?, ? FROM created""")) {
                for (Map.Entry<String, Long> e : specialFunds.entrySet()) {
                    p.setString(1, e.getKey());
                    p.setLong(2, e.getValue());
                    p.setString(3, e.getKey());
                    p.executeUpdate();
                }
            }
            long worldVersion = 0;
            long worldBalance = 0;
            long worldHeld = 0;
            try (PreparedStatement p = c.prepareStatement(
                    "SELECT version, balance, held FROM balances WHERE account_id = ? ORDER BY version DESC LIMIT 1")) {
                p.setObject(1, world);
                try (ResultSet rs = p.executeQuery()) {
                    if (rs.next()) {
                        worldVersion = rs.getLong(1);
                        worldBalance = rs.getLong(2);
                        worldHeld = rs.getLong(3);
                    }
                }
            }
            Timestamp at;
            try (PreparedStatement p = c.prepareStatement(
                    "SELECT greatest(clock_timestamp(), (SELECT max(created_at) FROM balances WHERE account_id = ?))")) {
                p.setObject(1, world);
                try (ResultSet rs = p.executeQuery()) {
                    rs.next();
                    at = rs.getTimestamp(1);
                }
            }
            try (Statement s = c.createStatement()) {
                s.execute("""
                        CREATE TEMP TABLE bench_seed_chain ON COMMIT DROP AS
                        SELECT id, amount, tx, row_number() OVER (ORDER BY id) AS i,
                               sum(amount) OVER (ORDER BY id) AS cumulative
                          FROM bench_seed""");
            }
            try (PreparedStatement p = c.prepareStatement("""
                    INSERT INTO transactions (id, type, debit_account_id, credit_account_id, amount, currency,
                                              description, created_at)
                    SELECT tx, 'deposit', ?, id, amount, 'EUR', 'bench seed', ? FROM bench_seed_chain""")) {
                p.setObject(1, world);
                p.setTimestamp(2, at);
                p.executeUpdate();
            }
            try (PreparedStatement p = c.prepareStatement("""
                    INSERT INTO balances (account_id, version, delta, balance, held_delta, held, currency,
                                          transaction_id, created_at)
                    SELECT id, 1, amount, amount, 0, 0, 'EUR', tx, ? FROM bench_seed_chain
                    UNION ALL
                    SELECT ?, ? + i, -amount, ? - cumulative, 0, ?, 'EUR', tx, ? FROM bench_seed_chain""")) {
                p.setTimestamp(1, at);
                p.setObject(2, world);
                p.setLong(3, worldVersion);
                p.setLong(4, worldBalance);
                p.setLong(5, worldHeld);
                p.setTimestamp(6, at);
                p.executeUpdate();
            }
            try (Statement s = c.createStatement()) {
                s.execute("INSERT INTO bench.accounts (n, id) SELECT n, id FROM bench_seed WHERE n IS NOT NULL");
                s.execute("INSERT INTO bench.special (role, id, funds) SELECT role, id, amount FROM bench_seed WHERE role IS NOT NULL");
            }
            c.commit();
        } catch (SQLException | RuntimeException e) {
            c.rollback();
            throw e;
        } finally {
            c.setAutoCommit(true);
        }
        analyze(c);
        Accounts accounts = load(c);
        Log.info("Seeded %d accounts (+%d special) with SQL in %.1f s", accounts.numbered().size(),
                accounts.special().size(), (System.nanoTime() - t0) / 1e9);
        return accounts;
    }

    /**
     * Seeds through the API instead: POST /v1/accounts, then one deposit each, 32 at a time. Slower,
     * but it depends on nothing but the API.
     */
    static Accounts seedApi(Connection c, App app, int count, long funds, Map<String, Long> specialFunds)
            throws SQLException {
        long t0 = System.nanoTime();
        createBenchSchema(c);
        List<String> names = new ArrayList<>();
        for (int i = 1; i <= count; i++) {
            names.add(Integer.toString(i));
        }
        names.addAll(specialFunds.keySet());
        Map<String, UUID> created = new java.util.concurrent.ConcurrentHashMap<>();
        AtomicInteger failures = new AtomicInteger();
        String run = Long.toString(System.currentTimeMillis(), 36);
        try (Http http = new Http(app.port, app.apiKey, 32, Duration.ofSeconds(30), "seed")) {
            Flux.fromIterable(names).flatMap(name -> {
                long amount = specialFunds.getOrDefault(name, funds);
                return withRetry(() -> http.post("/v1/accounts", "{\"currency\":\"EUR\",\"name\":\"bench " + name + "\"}",
                        "seed-account-" + run + "-" + name))
                        .flatMap(r -> {
                            String id = Json.field(r.body(), "id");
                            if (r.status() != 201 || id == null) {
                                failures.incrementAndGet();
                                return Mono.error(new IllegalStateException("account creation answered " + r.label() + ": " + r.body()));
                            }
                            created.put(name, UUID.fromString(id));
                            return withRetry(() -> http.post("/v1/accounts/" + id + "/deposits",
                                    "{\"amount\":" + amount + ",\"currency\":\"EUR\"}", "seed-deposit-" + run + "-" + name));
                        })
                        .flatMap(r -> r.status() == 201 ? Mono.just(r)
                                : Mono.error(new IllegalStateException("deposit answered " + r.label() + ": " + r.body())));
            }, 32).then().block(Duration.ofMinutes(30));
        }
        c.setAutoCommit(false);
        try (PreparedStatement numbered = c.prepareStatement("INSERT INTO bench.accounts (n, id) VALUES (?, ?)");
                PreparedStatement special = c.prepareStatement("INSERT INTO bench.special (role, id, funds) VALUES (?, ?, ?)")) {
            for (Map.Entry<String, UUID> e : created.entrySet()) {
                if (specialFunds.containsKey(e.getKey())) {
                    special.setString(1, e.getKey());
                    special.setObject(2, e.getValue());
                    special.setLong(3, specialFunds.get(e.getKey()));
                    special.addBatch();
                } else {
                    numbered.setInt(1, Integer.parseInt(e.getKey()));
                    numbered.setObject(2, e.getValue());
                    numbered.addBatch();
                }
            }
            numbered.executeBatch();
            special.executeBatch();
            c.commit();
        } finally {
            c.setAutoCommit(true);
        }
        analyze(c);
        Accounts accounts = load(c);
        Log.info("Seeded %d accounts (+%d special) through the API in %.1f s", accounts.numbered().size(),
                accounts.special().size(), (System.nanoTime() - t0) / 1e9);
        return accounts;
    }

    /** Retries a seeding request on transport errors and 5xx (same Idempotency-Key), 10 times at most. */
    private static Mono<Http.Response> withRetry(java.util.function.Supplier<Mono<Http.Response>> call) {
        return Mono.defer(call).flatMap(r -> r.status() < 0 || r.status() >= 500 || r.status() == 409
                        ? Mono.<Http.Response>error(new IllegalStateException(r.label())) : Mono.just(r))
                .retryWhen(reactor.util.retry.Retry.backoff(10, Duration.ofMillis(100)));
    }

    static Accounts load(Connection c) throws SQLException {
        List<UUID> numbered = new ArrayList<>();
        Map<String, UUID> special = new LinkedHashMap<>();
        try (Statement s = c.createStatement()) {
            try (ResultSet rs = s.executeQuery("SELECT n, id FROM bench.accounts ORDER BY n")) {
                int expected = 1;
                while (rs.next()) {
                    if (rs.getInt(1) != expected++) {
                        throw new IllegalStateException("bench.accounts is not numbered 1..N");
                    }
                    numbered.add(rs.getObject(2, UUID.class));
                }
            }
            try (ResultSet rs = s.executeQuery("SELECT role, id FROM bench.special ORDER BY role")) {
                while (rs.next()) {
                    special.put(rs.getString(1), rs.getObject(2, UUID.class));
                }
            }
        }
        return new Accounts(List.copyOf(numbered), Map.copyOf(special));
    }

    private static void analyze(Connection c) throws SQLException {
        try (Statement s = c.createStatement()) {
            s.execute("ANALYZE");
        }
    }
}
