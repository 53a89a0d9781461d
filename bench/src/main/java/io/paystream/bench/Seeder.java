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

    /** Deposits per INSERT of balance rows. */
    private static final int CHUNK = 50;

    /** A seeded account with a role, its funds and its owner. */
    record Special(long funds, Clients.Client owner) {
    }

    /**
     * What was seeded: numbered accounts (index 0 = account 1), the load client owning each (its
     * index), and the special ones by role.
     */
    record Accounts(List<UUID> numbered, int[] client, Map<String, UUID> special) {

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
            s.execute("CREATE TABLE IF NOT EXISTS bench.accounts (n int PRIMARY KEY, id uuid NOT NULL UNIQUE, "
                    + "client int NOT NULL, owner uuid)");
            s.execute("CREATE TABLE IF NOT EXISTS bench.special (role text PRIMARY KEY, id uuid NOT NULL, funds bigint NOT NULL, "
                    + "owner uuid)");
            // A rerun against the same database seeds new accounts; the ledger keeps the old ones.
            s.execute("TRUNCATE bench.accounts, bench.special");
            // pgbench connects as the application's role.
            s.execute("GRANT USAGE ON SCHEMA bench TO " + Postgres.APP_USER + "");
            s.execute("GRANT SELECT ON ALL TABLES IN SCHEMA bench TO " + Postgres.APP_USER);
        }
    }

    /**
     * Seeds with SQL, in one transaction, the way the ledger's own rules demand: the system account of
     * the currency exists (created exactly as the application creates it); its row is locked as the
     * application locks it; each account gets one 'deposit' transaction whose balance rows extend both
     * chains by exactly one link (the world's chain by N links, version after version, each balance the
     * previous one minus the deposit). The database's triggers check every row as it goes in, and the
     * deferred double-entry check runs at commit. Numbered account n belongs to load client
     * (n - 1) mod clients, as if that client had opened it.
     */
    static Accounts seedSql(Connection c, int count, long funds, Map<String, Special> specials, Clients clients)
            throws SQLException {
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
                                                      client int, owner uuid,
                                                      tx uuid NOT NULL DEFAULT gen_random_uuid()) ON COMMIT DROP""");
            }
            boolean owned = hasOwnerColumn(c);
            UUID[] owners = clients.load.stream().map(Clients.Client::id).toArray(UUID[]::new);
            String ownerColumn = owned ? ", owner_id" : "";
            UUID world;
            try (Statement s = c.createStatement();
                    ResultSet rs = s.executeQuery("SELECT id FROM accounts WHERE kind = 'system' AND currency = 'EUR' "
                            + "FOR NO KEY UPDATE")) {
                rs.next();
                world = rs.getObject(1, UUID.class);
            }
            try (PreparedStatement p = c.prepareStatement("""
                    WITH created AS (
                        INSERT INTO accounts (currency, name, kind%s)
                        SELECT 'EUR', 'bench ' || g, 'user'%s FROM generate_series(1, ?) g
                        RETURNING id, name)
                    INSERT INTO bench_seed (id, amount, n, client, owner)
                    SELECT id, ?, n, (n - 1) %% cardinality(?::uuid[]), (?::uuid[])[(n - 1) %% cardinality(?::uuid[]) + 1]
                      FROM (SELECT id, split_part(name, ' ', 2)::int AS n FROM created) x"""
                    .formatted(ownerColumn, owned ? ", (?::uuid[])[(g - 1) % cardinality(?::uuid[]) + 1]" : ""))) {
                int i = 1;
                if (owned) {
                    p.setArray(i++, c.createArrayOf("uuid", owners));
                    p.setArray(i++, c.createArrayOf("uuid", owners));
                }
                p.setInt(i++, count);
                p.setLong(i++, funds);
                p.setArray(i++, c.createArrayOf("uuid", owners));
                p.setArray(i++, c.createArrayOf("uuid", owners));
                p.setArray(i, c.createArrayOf("uuid", owners));
                p.executeUpdate();
            }
            try (PreparedStatement p = c.prepareStatement("""
                    WITH created AS (
                        INSERT INTO accounts (currency, name, kind%s) VALUES ('EUR', 'bench ' || ?, 'user'%s) RETURNING id)
                    INSERT INTO bench_seed (id, amount, role, owner) SELECT id, ?, ?, ? FROM created"""
                    .formatted(ownerColumn, owned ? ", ?" : ""))) {
                for (Map.Entry<String, Special> e : specials.entrySet()) {
                    int i = 1;
                    p.setString(i++, e.getKey());
                    if (owned) {
                        p.setObject(i++, e.getValue().owner().id());
                    }
                    p.setLong(i++, e.getValue().funds());
                    p.setString(i++, e.getKey());
                    p.setObject(i, e.getValue().owner().id());
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
                    SELECT tx, 'deposit', CAST(? AS uuid), id, amount, 'EUR', 'bench seed', CAST(? AS timestamptz)
                      FROM bench_seed_chain""")) {
                p.setObject(1, world);
                p.setTimestamp(2, at);
                p.executeUpdate();
            }
            // In chunks of CHUNK deposits: a statement-level trigger (balances_notify) sends every inserted
            // (account, version) in one pg_notify payload, which PostgreSQL caps at 8000 bytes.
            long total;
            try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT count(*) FROM bench_seed_chain")) {
                rs.next();
                total = rs.getLong(1);
            }
            try (PreparedStatement p = c.prepareStatement("""
                    INSERT INTO balances (account_id, version, delta, balance, held_delta, held, currency,
                                          transaction_id, created_at)
                    SELECT id, 1, amount, amount, 0, 0, 'EUR', tx, CAST(? AS timestamptz)
                      FROM bench_seed_chain WHERE i > ? AND i <= ?
                    UNION ALL
                    SELECT CAST(? AS uuid), CAST(? AS bigint) + i, -amount, CAST(? AS bigint) - cumulative, 0,
                           CAST(? AS bigint), 'EUR', tx, CAST(? AS timestamptz)
                      FROM bench_seed_chain WHERE i > ? AND i <= ?
                     ORDER BY 2""")) {
                for (long from = 0; from < total; from += CHUNK) {
                    p.setTimestamp(1, at);
                    p.setLong(2, from);
                    p.setLong(3, from + CHUNK);
                    p.setObject(4, world);
                    p.setLong(5, worldVersion);
                    p.setLong(6, worldBalance);
                    p.setLong(7, worldHeld);
                    p.setTimestamp(8, at);
                    p.setLong(9, from);
                    p.setLong(10, from + CHUNK);
                    p.executeUpdate();
                }
            }
            try (Statement s = c.createStatement()) {
                s.execute("INSERT INTO bench.accounts (n, id, client, owner) SELECT n, id, client, owner FROM bench_seed WHERE n IS NOT NULL");
                s.execute("INSERT INTO bench.special (role, id, funds, owner) SELECT role, id, amount, owner FROM bench_seed WHERE role IS NOT NULL");
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
     * Seeds through the API instead: POST /v1/accounts by the owning client, then one deposit each by
     * the admin key, 32 at a time. Slower, but it depends on nothing but the API.
     */
    static Accounts seedApi(Connection c, App app, int count, long funds, Map<String, Special> specials, Clients clients)
            throws SQLException {
        long t0 = System.nanoTime();
        createBenchSchema(c);
        List<String> names = new ArrayList<>();
        for (int i = 1; i <= count; i++) {
            names.add(Integer.toString(i));
        }
        names.addAll(specials.keySet());
        Map<String, UUID> created = new java.util.concurrent.ConcurrentHashMap<>();
        AtomicInteger failures = new AtomicInteger();
        String run = Long.toString(System.currentTimeMillis(), 36);
        try (Http http = new Http(app.port, app.apiKey, 32, Duration.ofSeconds(30), "seed")) {
            Flux.fromIterable(names).flatMap(name -> {
                Special special = specials.get(name);
                long amount = special == null ? funds : special.funds();
                String ownerKey = special != null ? special.owner().key()
                        : clients.load.get((Integer.parseInt(name) - 1) % clients.size()).key();
                return withRetry(() -> http.post("/v1/accounts", "{\"currency\":\"EUR\",\"name\":\"bench " + name + "\"}",
                        "seed-account-" + run + "-" + name, ownerKey))
                        .flatMap(r -> {
                            String id = Json.field(r.body(), "id");
                            if (r.status() != 201 || id == null) {
                                failures.incrementAndGet();
                                return Mono.error(new IllegalStateException("account creation answered " + r.label() + ": " + r.body()));
                            }
                            created.put(name, UUID.fromString(id));
                            return withRetry(() -> http.post("/v1/accounts/" + id + "/deposits",
                                    "{\"amount\":" + amount + ",\"currency\":\"EUR\"}", "seed-deposit-" + run + "-" + name,
                                    app.apiKey));
                        })
                        .flatMap(r -> r.status() == 201 ? Mono.just(r)
                                : Mono.error(new IllegalStateException("deposit answered " + r.label() + ": " + r.body())));
            }, 32).then().block(Duration.ofMinutes(30));
        }
        c.setAutoCommit(false);
        try (PreparedStatement numbered = c.prepareStatement("INSERT INTO bench.accounts (n, id, client, owner) VALUES (?, ?, ?, ?)");
                PreparedStatement special = c.prepareStatement("INSERT INTO bench.special (role, id, funds, owner) VALUES (?, ?, ?, ?)")) {
            for (Map.Entry<String, UUID> e : created.entrySet()) {
                Special sp = specials.get(e.getKey());
                if (sp != null) {
                    special.setString(1, e.getKey());
                    special.setObject(2, e.getValue());
                    special.setLong(3, sp.funds());
                    special.setObject(4, sp.owner().id());
                    special.addBatch();
                } else {
                    int n = Integer.parseInt(e.getKey());
                    numbered.setInt(1, n);
                    numbered.setObject(2, e.getValue());
                    numbered.setInt(3, (n - 1) % clients.size());
                    numbered.setObject(4, clients.load.get((n - 1) % clients.size()).id());
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

    static boolean hasOwnerColumn(Connection c) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("""
                SELECT EXISTS (SELECT 1 FROM information_schema.columns
                                WHERE table_schema = current_schema() AND table_name = 'accounts'
                                  AND column_name = 'owner_id')""")) {
            rs.next();
            return rs.getBoolean(1);
        }
    }

    static Accounts load(Connection c) throws SQLException {
        List<UUID> numbered = new ArrayList<>();
        List<Integer> client = new ArrayList<>();
        Map<String, UUID> special = new LinkedHashMap<>();
        try (Statement s = c.createStatement()) {
            try (ResultSet rs = s.executeQuery("SELECT n, id, client FROM bench.accounts ORDER BY n")) {
                int expected = 1;
                while (rs.next()) {
                    if (rs.getInt(1) != expected++) {
                        throw new IllegalStateException("bench.accounts is not numbered 1..N");
                    }
                    numbered.add(rs.getObject(2, UUID.class));
                    client.add(rs.getInt(3));
                }
            }
            try (ResultSet rs = s.executeQuery("SELECT role, id FROM bench.special ORDER BY role")) {
                while (rs.next()) {
                    special.put(rs.getString(1), rs.getObject(2, UUID.class));
                }
            }
        }
        return new Accounts(List.copyOf(numbered), client.stream().mapToInt(Integer::intValue).toArray(), Map.copyOf(special));
    }

    private static void analyze(Connection c) throws SQLException {
        try (Statement s = c.createStatement()) {
            s.execute("ANALYZE");
        }
    }
}
