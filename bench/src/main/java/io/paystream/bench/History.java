package io.paystream.bench;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.LongFunction;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.HdrHistogram.ConcurrentHistogram;
import org.HdrHistogram.Histogram;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * Does a long history slow an account down? The target: current-balance read and transfer latency
 * with 1,000,000 rows in an account's history at most 1.2 times what it is with 1,000.
 *
 * <p>Seeds one account with a long history and accounts with a short one (same currency, same
 * owner kind, all funded by deposits from the outside world), then measures
 * {@code GET /v1/accounts/{id}/balance} and {@code POST /v1/transfers} (debiting the account, with an
 * Idempotency-Key) on both, sequentially and with a few concurrent clients, in alternating rounds so
 * that drift on a shared machine falls on both sides alike. Transfers grow the account they debit:
 * each round of transfers on the short side debits a fresh short-history account, so that side stays
 * within a round's worth of its nominal length. Records {@code EXPLAIN (ANALYZE, BUFFERS)} of the
 * application's own statements (read from its sources), audits the whole ledger, and writes
 * {@code HISTORY.md}.
 */
final class History {

    static final String LEDGER = AppSql.LEDGER;
    static final String ACCOUNTS = "src/main/java/io/paystream/account/AccountRepository.java";
    static final double TARGET_RATIO = 1.2;

    /** Funds of each debited account: far above what its history and the run take (at most 100 per transfer). */
    static final long FUNDS = 1_000_000_000_000L;
    /** History transfers per seeding transaction. */
    static final int BATCH = 100_000;
    /** Histories longer than this are seeded with the ledger's triggers off (then verified); shorter ones with them on. */
    static final long CHECKED_LIMIT = 50_000;
    /** Longest one burst of requests may take. */
    static final Duration BURST_LIMIT = Duration.ofSeconds(300);
    static final int WARMUP_CHUNK = 250;

    /** One account the run measures, and the key of the client that owns it. */
    record Target(String role, UUID account, String ownerKey, UUID sink) {
    }

    /** One side of one measurement: latency of the 2xx answers, every answer by status. */
    static final class Stats {
        final Histogram latency = new ConcurrentHistogram(Phase.HIGHEST_MICROS, 3);
        final Map<String, LongAdder> statuses = new ConcurrentHashMap<>();
        final Map<String, String> sampleBodies = new ConcurrentHashMap<>();
        final List<Double> roundP50 = new ArrayList<>();
        long nanos;
        long requests;
        long historyFirst = Long.MAX_VALUE;
        long historyLast;

        void record(long t0, long t1, Http.Response r) {
            String label = r.label();
            statuses.computeIfAbsent(label, k -> new LongAdder()).increment();
            if (r.is2xx()) {
                latency.recordValue(Math.max(1, Math.min(Phase.HIGHEST_MICROS, (t1 - t0) / 1000)));
            } else {
                sampleBodies.putIfAbsent(label, r.body() == null ? "" : Phase.truncate(r.body(), 300));
            }
        }

        double ms(double percentile) {
            return latency.getTotalCount() == 0 ? Double.NaN : latency.getValueAtPercentile(percentile) / 1000.0;
        }

        double max() {
            return latency.getTotalCount() == 0 ? Double.NaN : latency.getMaxValue() / 1000.0;
        }

        long errors() {
            long n = 0;
            for (Map.Entry<String, LongAdder> e : statuses.entrySet()) {
                if (!e.getKey().startsWith("2")) {
                    n += e.getValue().sum();
                }
            }
            return n;
        }

        Map<String, Long> statusCounts() {
            Map<String, Long> m = new TreeMap<>();
            statuses.forEach((k, v) -> m.put(k, v.sum()));
            return m;
        }

        double throughput() {
            return nanos <= 0 ? Double.NaN : requests / (nanos / 1e9);
        }
    }

    /** One measurement: an endpoint at a concurrency, both sides. */
    static final class Scenario {
        final String endpoint;
        final int clients;
        final Stats small = new Stats();
        final Stats large = new Stats();
        Map<String, Double> cpu;
        double seconds;
        String note = "";

        Scenario(String endpoint, int clients) {
            this.endpoint = endpoint;
            this.clients = clients;
        }

        String title() {
            return endpoint + ", " + clients + (clients == 1 ? " client (sequential)" : " concurrent clients");
        }

        double ratio(double percentile) {
            return large.ms(percentile) / small.ms(percentile);
        }

        boolean meetsTarget() {
            return ratio(50) <= TARGET_RATIO && ratio(99) <= TARGET_RATIO;
        }
    }

    final Config c;
    final Postgres db;
    final App app;
    final String runId = Long.toString(System.currentTimeMillis(), 36);
    final List<String> notes = new ArrayList<>();
    final List<Scenario> scenarios = new ArrayList<>();
    final Map<String, String> explains = new LinkedHashMap<>();
    final Map<String, Long> explainHistory = new LinkedHashMap<>();
    final ConcurrentLinkedQueue<UUID> acknowledged = new ConcurrentLinkedQueue<>();
    final AtomicLong keys = new AtomicLong();
    final Map<String, Object> seedFacts = new LinkedHashMap<>();
    final List<String> seedCheckFailures = new ArrayList<>();
    final Stats warmup = new Stats();
    Instant started;
    Instant finished;
    Clients clients;
    Seeder.Accounts accounts;
    Audit.Result seedAudit;
    Audit.Result finalAudit;
    boolean bypassed;

    History(Config c, Postgres db, App app) {
        this.c = c;
        this.db = db;
        this.app = app;
    }

    // Roles of the seeded accounts -------------------------------------------------------------------------

    static final String LARGE = "history large";
    static final String SMALL_READ = "history small read";
    static final String LARGE_COUNTERPART = "history counterpart large";
    static final String SMALL_COUNTERPART = "history counterpart small";
    static final String LARGE_SINK = "history sink large";
    static final String SMALL_SINK = "history sink small";
    static final String WARM_FROM = "history warm-up from";
    static final String WARM_TO = "history warm-up to";

    static String smallTransferRole(int clients, int round) {
        return String.format(Locale.ROOT, "history small transfers %d clients round %02d", clients, round + 1);
    }

    List<Integer> concurrencies() {
        return c.clients == 1 ? List.of(1) : List.of(1, c.clients);
    }

    /** Runs everything; false when the run itself is not valid (an audit failed or requests went wrong). */
    boolean run() throws Exception {
        started = Instant.now();
        app.startAndAwaitReady(c.chaosMode, Bench.READY_TIMEOUT);
        clients = Clients.create(app, 2);
        try (Connection conn = db.admin()) {
            seed(conn);
        }
        warmUp();
        for (int n : concurrencies()) {
            scenarios.add(measure("GET /v1/accounts/{id}/balance", n));
        }
        for (int n : concurrencies()) {
            scenarios.add(measure("POST /v1/transfers", n));
        }
        try (Connection conn = db.admin()) {
            explainAll(conn);
            finalAudit = Audit.run(conn, new ArrayList<>(acknowledged));
            Log.info("Audit after the run: %s", finalAudit.summary());
        }
        app.stop();
        finished = Instant.now();
        boolean valid = valid();
        writeReport();
        Log.info("History verdict: %s (run %s)", verdict(), valid ? "valid" : "NOT valid");
        return valid;
    }

    boolean valid() {
        boolean errors = scenarios.stream().anyMatch(s -> s.small.errors() + s.large.errors() > 0 || !s.note.isEmpty());
        return seedAudit != null && seedAudit.ok() && seedCheckFailures.isEmpty() && finalAudit != null && finalAudit.ok()
                && !errors;
    }

    String verdict() {
        return scenarios.stream().allMatch(Scenario::meetsTarget) ? "PASS" : "FAIL";
    }

    // Seeding --------------------------------------------------------------------------------------------------

    private void seed(Connection conn) throws SQLException {
        long t0 = System.nanoTime();
        Clients.Client smallOwner = clients.load.get(0);
        Clients.Client largeOwner = clients.load.get(1);
        Clients.Client payee = clients.merchant;
        Map<String, Seeder.Special> specials = new LinkedHashMap<>();
        specials.put(LARGE, new Seeder.Special(FUNDS, largeOwner));
        specials.put(SMALL_READ, new Seeder.Special(FUNDS, smallOwner));
        for (int n : concurrencies()) {
            for (int r = 0; r < c.rounds; r++) {
                specials.put(smallTransferRole(n, r), new Seeder.Special(FUNDS, smallOwner));
            }
        }
        specials.put(LARGE_COUNTERPART, new Seeder.Special(1, payee));
        specials.put(SMALL_COUNTERPART, new Seeder.Special(1, payee));
        specials.put(LARGE_SINK, new Seeder.Special(1, payee));
        specials.put(SMALL_SINK, new Seeder.Special(1, payee));
        specials.put(WARM_FROM, new Seeder.Special(FUNDS, smallOwner));
        specials.put(WARM_TO, new Seeder.Special(1, payee));
        // Every account opened and funded by one deposit from the outside world, all triggers on.
        accounts = Seeder.seedSql(conn, 0, FUNDS, specials, clients);

        long t1 = System.nanoTime();
        long largeTransfers = c.largeRows - 1;
        long smallTransfers = c.smallRows - 1;
        history(conn, accounts.special(LARGE), accounts.special(LARGE_COUNTERPART), largeTransfers,
                largeTransfers > CHECKED_LIMIT);
        double largeSeconds = (System.nanoTime() - t1) / 1e9;
        long t2 = System.nanoTime();
        int smallAccounts = 0;
        for (String role : specials.keySet()) {
            if (role.startsWith("history small")) {
                history(conn, accounts.special(role), accounts.special(SMALL_COUNTERPART), smallTransfers,
                        smallTransfers > CHECKED_LIMIT);
                smallAccounts++;
            }
        }
        double smallSeconds = (System.nanoTime() - t2) / 1e9;
        Log.info("Histories seeded: %,d rows for the long one in %.1f s, %d short ones of %,d rows in %.1f s",
                c.largeRows, largeSeconds, smallAccounts, c.smallRows, smallSeconds);

        long t3 = System.nanoTime();
        try (Statement s = conn.createStatement()) {
            s.execute("SET statement_timeout = '20min'");
            s.execute("VACUUM (ANALYZE) balances");
            s.execute("VACUUM (ANALYZE) transactions");
            s.execute("VACUUM (ANALYZE) accounts");
            s.execute("CHECKPOINT");
        }
        double vacuumSeconds = (System.nanoTime() - t3) / 1e9;
        Log.info("VACUUM (ANALYZE) and CHECKPOINT in %.1f s", vacuumSeconds);

        long t4 = System.nanoTime();
        seedAudit = Audit.run(conn, null);
        verifyBypassed(conn);
        double auditSeconds = (System.nanoTime() - t4) / 1e9;
        Log.info("Audit after seeding: %s; checks of what the bypassed triggers check: %s (%.1f s)", seedAudit.summary(),
                seedCheckFailures.isEmpty() ? "pass" : "FAIL " + seedCheckFailures, auditSeconds);

        seedFacts.put("accounts", specials.size());
        seedFacts.put("largeRows", c.largeRows);
        seedFacts.put("smallRows", c.smallRows);
        seedFacts.put("smallAccounts", smallAccounts);
        seedFacts.put("largeSeconds", largeSeconds);
        seedFacts.put("smallSeconds", smallSeconds);
        seedFacts.put("vacuumSeconds", vacuumSeconds);
        seedFacts.put("auditSeconds", auditSeconds);
        seedFacts.put("totalSeconds", (System.nanoTime() - t0) / 1e9);
        seedFacts.put("largeHistory", headVersion(conn, accounts.special(LARGE)));
        seedFacts.put("smallReadHistory", headVersion(conn, accounts.special(SMALL_READ)));
        seedFacts.put("balanceRows", seedAudit.facts().get("balanceRows"));
        seedFacts.put("transactions", seedAudit.facts().get("transactions"));
    }

    /**
     * Extends {@code account}'s chain by {@code transfers} transfers to {@code counterpart}, of 1 to 100
     * minor units each (a fixed pseudo-random sequence), in batches of {@link #BATCH}, one database
     * transaction per batch. Both rows are locked first, as the application locks them; each batch
     * reads both chain heads and writes versions head + 1, head + 2, ... with running balances from a
     * window function, one transaction row and two balance rows per transfer, timestamps one
     * microsecond apart and never before either head.
     *
     * <p>With {@code bypass}, each batch runs with {@code session_replication_role = replica} (which
     * needs a superuser): PostgreSQL then fires none of the ledger's triggers (chain, double entry,
     * insert-only) nor the foreign-key checks. {@link #verifyBypassed} and the audit check all of it
     * afterwards. Without it, every trigger fires as for the application's own writes.
     */
    private void history(Connection conn, UUID account, UUID counterpart, long transfers, boolean bypass)
            throws SQLException {
        boolean off = bypass;
        for (long from = 1; from <= transfers; from += BATCH) {
            long to = Math.min(transfers, from + BATCH - 1);
            conn.setAutoCommit(false);
            try {
                try (Statement s = conn.createStatement()) {
                    s.execute("SET LOCAL statement_timeout = '10min'");
                    if (off) {
                        try {
                            s.execute("SAVEPOINT replica");
                            s.execute("SET LOCAL session_replication_role = replica");
                            s.execute("RELEASE SAVEPOINT replica");
                            bypassed = true;
                        } catch (SQLException e) {
                            s.execute("ROLLBACK TO SAVEPOINT replica");
                            off = false;
                            notes.add("session_replication_role could not be set (" + e.getMessage()
                                    + "): the long history was seeded with every trigger on");
                            Log.warn("cannot bypass the ledger's triggers (%s); seeding with them on", e.getMessage());
                        }
                    }
                }
                try (PreparedStatement p = conn.prepareStatement(
                        "SELECT id FROM accounts WHERE id = ANY(?) ORDER BY id FOR NO KEY UPDATE")) {
                    p.setArray(1, conn.createArrayOf("uuid", new Object[] {account, counterpart}));
                    p.executeQuery().close();
                }
                Object[] a = head(conn, account);
                Object[] b = head(conn, counterpart);
                try (PreparedStatement p = conn.prepareStatement("""
                        CREATE TEMP TABLE history_batch ON COMMIT DROP AS
                        SELECT k, gen_random_uuid() AS tx, amount, sum(amount) OVER (ORDER BY k) AS cumulative,
                               greatest(statement_timestamp(), CAST(? AS timestamptz), CAST(? AS timestamptz))
                                   + k * interval '1 microsecond' AS at
                          FROM (SELECT g - CAST(? AS bigint) + 1 AS k, 1 + (g * 7919) % 100 AS amount
                                  FROM generate_series(CAST(? AS bigint), CAST(? AS bigint)) g) s""")) {
                    p.setObject(1, a[3]);
                    p.setObject(2, b[3]);
                    p.setLong(3, from);
                    p.setLong(4, from);
                    p.setLong(5, to);
                    p.executeUpdate();
                }
                try (PreparedStatement p = conn.prepareStatement("""
                        INSERT INTO transactions (id, type, debit_account_id, credit_account_id, amount, currency,
                                                  description, metadata, created_at)
                        SELECT tx, 'transfer', CAST(? AS uuid), CAST(? AS uuid), amount, 'EUR', 'history seed', '{}', at
                          FROM history_batch ORDER BY k""")) {
                    p.setObject(1, account);
                    p.setObject(2, counterpart);
                    p.executeUpdate();
                }
                try (PreparedStatement p = conn.prepareStatement("""
                        INSERT INTO balances (account_id, version, delta, balance, held_delta, held, currency,
                                              transaction_id, created_at)
                        SELECT account_id, version, delta, balance, 0, held, 'EUR', tx, at
                          FROM (SELECT k, 0 AS side, CAST(? AS uuid) AS account_id, CAST(? AS bigint) + k AS version,
                                       -amount AS delta, CAST(? AS bigint) - cumulative AS balance,
                                       CAST(? AS bigint) AS held, tx, at
                                  FROM history_batch
                                UNION ALL
                                SELECT k, 1, CAST(? AS uuid), CAST(? AS bigint) + k, amount,
                                       CAST(? AS bigint) + cumulative, CAST(? AS bigint), tx, at
                                  FROM history_batch) AS sides
                         ORDER BY k, side""")) {
                    p.setObject(1, account);
                    p.setLong(2, (Long) a[0]);
                    p.setLong(3, (Long) a[1]);
                    p.setLong(4, (Long) a[2]);
                    p.setObject(5, counterpart);
                    p.setLong(6, (Long) b[0]);
                    p.setLong(7, (Long) b[1]);
                    p.setLong(8, (Long) b[2]);
                    p.executeUpdate();
                }
                conn.commit();
            } catch (SQLException | RuntimeException e) {
                conn.rollback();
                throw e;
            } finally {
                conn.setAutoCommit(true);
            }
            if (transfers > BATCH) {
                Log.info("  history of %s: %,d of %,d transfers", account, to, transfers);
            }
        }
    }

    /** The head of a chain: version, balance, held, created_at (one backward probe of the primary key). */
    private static Object[] head(Connection conn, UUID account) throws SQLException {
        try (PreparedStatement p = conn.prepareStatement(
                "SELECT version, balance, held, created_at FROM balances WHERE account_id = ? ORDER BY version DESC LIMIT 1")) {
            p.setObject(1, account);
            try (ResultSet rs = p.executeQuery()) {
                if (!rs.next()) {
                    throw new IllegalStateException("account " + account + " has no balance row");
                }
                return new Object[] {rs.getLong(1), rs.getLong(2), rs.getLong(3), rs.getObject(4, OffsetDateTime.class)};
            }
        }
    }

    static long headVersion(Connection conn, UUID account) throws SQLException {
        return (Long) head(conn, account)[0];
    }

    /**
     * What the bypassed triggers would have refused and the audit does not look at: the foreign keys
     * (each balance row's account and transaction in its currency, each transaction's two accounts in
     * its currency) and time never running backwards along a chain. Over the whole ledger.
     */
    private void verifyBypassed(Connection conn) throws SQLException {
        Map<String, String> checks = new LinkedHashMap<>();
        checks.put("balance rows whose (account, currency) is not an account", """
                SELECT b.account_id, b.version FROM balances b
                  LEFT JOIN accounts a ON a.id = b.account_id AND a.currency = b.currency
                 WHERE a.id IS NULL""");
        checks.put("balance rows whose (transaction, currency) is not a transaction", """
                SELECT b.account_id, b.version FROM balances b
                  LEFT JOIN transactions t ON t.id = b.transaction_id AND t.currency = b.currency
                 WHERE b.transaction_id IS NOT NULL AND t.id IS NULL""");
        checks.put("transactions whose debit or credit (account, currency) is not an account", """
                SELECT t.id FROM transactions t
                  LEFT JOIN accounts d ON d.id = t.debit_account_id AND d.currency = t.currency
                  LEFT JOIN accounts k ON k.id = t.credit_account_id AND k.currency = t.currency
                 WHERE d.id IS NULL OR k.id IS NULL""");
        checks.put("balance rows older than the previous link of their chain", """
                SELECT account_id, version FROM (
                    SELECT account_id, version, created_at,
                           lag(created_at) OVER (PARTITION BY account_id ORDER BY version) AS previous
                      FROM balances) x
                 WHERE created_at < previous""");
        for (Map.Entry<String, String> e : checks.entrySet()) {
            long n = Audit.count(conn, "SELECT count(*) FROM (" + e.getValue() + ") x");
            seedFacts.put("check: " + e.getKey(), n);
            if (n != 0) {
                seedCheckFailures.add(n + " " + e.getKey());
            }
        }
    }

    // Load -------------------------------------------------------------------------------------------------------

    Target target(String role, boolean large) {
        return new Target(role, accounts.special(role), (large ? clients.load.get(1) : clients.load.get(0)).key(),
                accounts.special(large ? LARGE_SINK : SMALL_SINK));
    }

    Mono<Http.Response> balance(Http http, Target t) {
        return http.get("/v1/accounts/" + t.account() + "/balance", t.ownerKey());
    }

    Mono<Http.Response> transfer(Http http, Target t) {
        return http.post("/v1/transfers", "{\"fromAccountId\":\"" + t.account() + "\",\"toAccountId\":\"" + t.sink()
                        + "\",\"amount\":1,\"currency\":\"EUR\"}", "history-" + runId + "-" + keys.incrementAndGet(),
                t.ownerKey())
                .doOnNext(r -> {
                    String id = r.is2xx() ? Json.field(r.body(), "id") : null;
                    if (id != null) {
                        acknowledged.add(UUID.fromString(id));
                    }
                });
    }

    /**
     * {@code count} requests from {@code clients} clients, each sending its next as soon as it has the
     * previous answer. Bounded in count and in time ({@link #BURST_LIMIT}); false when time ran out.
     */
    static boolean burst(int clients, long count, LongFunction<Mono<Http.Response>> call, Stats stats) {
        AtomicLong issued = new AtomicLong();
        AtomicLong done = new AtomicLong();
        long start = System.nanoTime();
        long deadline = start + BURST_LIMIT.toNanos();
        Flux.range(0, clients)
                .flatMap(client -> Mono.defer(() -> {
                    long n = issued.incrementAndGet();
                    if (n > count) {
                        return Mono.<Http.Response>empty();
                    }
                    long t0 = System.nanoTime();
                    return call.apply(n).doOnNext(r -> {
                        stats.record(t0, System.nanoTime(), r);
                        done.incrementAndGet();
                    });
                }).repeat(() -> issued.get() < count && System.nanoTime() < deadline), clients)
                .then()
                .block(BURST_LIMIT.plus(Bench.RESPONSE_TIMEOUT).plusSeconds(90));
        stats.nanos += System.nanoTime() - start;
        stats.requests += done.get();
        return done.get() >= count;
    }

    /**
     * The JIT compiles the request path only after thousands of requests: before anything is measured,
     * {@code --warmup-requests} requests in chunks, in turn balance reads of both read accounts and
     * transfers between two accounts of their own (so that no measured history grows), with the
     * concurrent clients. Not measured.
     */
    private void warmUp() {
        if (c.warmupRequests <= 0) {
            return;
        }
        Target smallRead = target(SMALL_READ, false);
        Target large = target(LARGE, true);
        Target warm = new Target(WARM_FROM, accounts.special(WARM_FROM), clients.load.get(0).key(), accounts.special(WARM_TO));
        Log.info("Warm-up: %,d requests (balance reads of both accounts, transfers between two others), %d clients",
                c.warmupRequests, c.clients);
        long t0 = System.nanoTime();
        long deadline = t0 + Duration.ofSeconds(900).toNanos();
        try (Http http = new Http(app.port, app.apiKey, c.clients, Bench.RESPONSE_TIMEOUT, "history-warmup")) {
            long sent = 0;
            int turn = 0;
            while (sent < c.warmupRequests && System.nanoTime() < deadline) {
                long n = Math.min(WARMUP_CHUNK, c.warmupRequests - sent);
                switch (turn++ % 3) {
                    case 0 -> burst(c.clients, n, i -> balance(http, smallRead), warmup);
                    case 1 -> burst(c.clients, n, i -> balance(http, large), warmup);
                    default -> burst(c.clients, n, i -> transfer(http, warm), warmup);
                }
                sent += n;
            }
        }
        Log.info("  warm-up: %,d requests in %.1f s; %s", warmup.requests, (System.nanoTime() - t0) / 1e9,
                warmup.statusCounts());
    }

    /**
     * One endpoint at one concurrency: {@code --rounds} rounds, each {@code --round-requests} requests
     * on one side then as many on the other, the side going first alternating from round to round.
     */
    private Scenario measure(String endpoint, int n) throws SQLException {
        Scenario s = new Scenario(endpoint, n);
        boolean isTransfer = endpoint.startsWith("POST");
        Log.info("Measuring %s: %d rounds of %d requests per account", s.title(), c.rounds, c.roundRequests);
        Cpu.Sample c0 = Cpu.sample(app.pid(), db.postmasterPid());
        long t0 = System.nanoTime();
        try (Http http = new Http(app.port, app.apiKey, n, Bench.RESPONSE_TIMEOUT, "history");
                Connection conn = db.admin()) {
            for (int r = 0; r < c.rounds; r++) {
                Target small = target(isTransfer ? smallTransferRole(n, r) : SMALL_READ, false);
                Target large = target(LARGE, true);
                List<Target> order = r % 2 == 0 ? List.of(small, large) : List.of(large, small);
                for (Target t : order) {
                    boolean isLarge = t.role().equals(LARGE);
                    Stats stats = isLarge ? s.large : s.small;
                    long before = headVersion(conn, t.account());
                    Stats round = new Stats();
                    LongFunction<Mono<Http.Response>> call = isTransfer ? i -> transfer(http, t) : i -> balance(http, t);
                    boolean complete = burst(n, c.roundRequests, call, round);
                    merge(round, stats);
                    stats.roundP50.add(round.ms(50));
                    stats.historyFirst = Math.min(stats.historyFirst, before);
                    stats.historyLast = Math.max(stats.historyLast, headVersion(conn, t.account()));
                    if (!complete) {
                        s.note = "a round ran out of time (" + BURST_LIMIT.toSeconds() + " s) before its "
                                + c.roundRequests + " requests";
                    }
                }
            }
        }
        s.seconds = (System.nanoTime() - t0) / 1e9;
        s.cpu = Cpu.cores(c0, Cpu.sample(app.pid(), db.postmasterPid()));
        Log.info("  1k: p50 %s p99 %s p99.9 %s ms; 1M: p50 %s p99 %s p99.9 %s ms; ratio p50 %.2f p99 %.2f; %s / %s; CPU %s",
                Report.ms(s.small.ms(50)), Report.ms(s.small.ms(99)), Report.ms(s.small.ms(99.9)),
                Report.ms(s.large.ms(50)), Report.ms(s.large.ms(99)), Report.ms(s.large.ms(99.9)), s.ratio(50),
                s.ratio(99), s.small.statusCounts(), s.large.statusCounts(), Cpu.describe(s.cpu));
        return s;
    }

    private static void merge(Stats from, Stats into) {
        into.latency.add(from.latency);
        from.statuses.forEach((k, v) -> into.statuses.computeIfAbsent(k, x -> new LongAdder()).add(v.sum()));
        from.sampleBodies.forEach(into.sampleBodies::putIfAbsent);
        into.nanos += from.nanos;
        into.requests += from.requests;
    }

    // EXPLAIN ----------------------------------------------------------------------------------------------------

    private static final Pattern PARAMETER = Pattern.compile("(?<![:\\w]):([A-Za-z]\\w*)");

    /**
     * {@code EXPLAIN (ANALYZE, BUFFERS)} of the application's statements, read from its sources, with
     * the values it binds as typed literals: the balance read ({@code AccountRepository.FIND}, as the
     * account's owner), the transfer's check-and-post ({@code Ledger.CHECK_AND_POST}, debiting the
     * account; executed, so in a transaction that is rolled back) and the chain-head read inside it on
     * its own. Each runs twice; the second is shown (the first warms the cache).
     */
    private void explainAll(Connection conn) {
        try {
            String ledger = Files.readString(c.projectDir.resolve(LEDGER), StandardCharsets.UTF_8);
            String repository = Files.readString(c.projectDir.resolve(ACCOUNTS), StandardCharsets.UTF_8);
            String checkAndPost = AppSql.textBlock(ledger, "CHECK_AND_POST", LEDGER);
            String find = constant(repository, "FIND", ACCOUNTS);
            Matcher lateral = Pattern.compile("LEFT JOIN LATERAL \\(\\s*(SELECT .*?)\\) b ON true", Pattern.DOTALL)
                    .matcher(checkAndPost);
            String headRead = lateral.find() ? lateral.group(1).stripIndent().strip() : null;
            if (headRead == null || !headRead.contains("s.account_id")) {
                notes.add("The chain-head read could not be found inside Ledger.CHECK_AND_POST; only the whole statement was explained");
                headRead = null;
            }
            for (boolean large : List.of(false, true)) {
                Target t = target(large ? LARGE : SMALL_READ, large);
                String side = large ? "long history" : "short history";
                long rows = headVersion(conn, t.account());
                UUID owner = large ? clients.load.get(1).id() : clients.load.get(0).id();
                Map<String, String> values = new LinkedHashMap<>();
                values.put("id", "'" + t.account() + "'");
                values.put("admin", "false");
                values.put("owner", owner == null ? "NULL" : "'" + owner + "'");
                values.put("type", "'transfer'");
                values.put("debit", "'" + t.account() + "'");
                values.put("credit", "'" + t.sink() + "'");
                values.put("amount", "1");
                values.put("currency", "'EUR'");
                values.put("debitMayGoNegative", "false");
                values.put("debitHeldDelta", "0");
                values.put("maxBalance", "1000000000000000000");
                values.put("metadata", "'{}'");
                put("Balance read (AccountRepository.FIND), " + side, rows, explain(conn, bind(find, values)));
                if (headRead != null) {
                    put("Chain-head read (the LATERAL subquery of Ledger.CHECK_AND_POST), " + side, rows,
                            explain(conn, headRead.replace("s.account_id", "CAST('" + t.account() + "' AS uuid)")));
                }
                put("Transfer check-and-post (Ledger.CHECK_AND_POST, rolled back), " + side, rows,
                        explain(conn, bind(checkAndPost, values)));
            }
        } catch (Exception e) {
            notes.add("EXPLAIN failed: " + e);
            Log.warn("EXPLAIN failed: %s", e);
        }
    }

    private void put(String title, long rows, String plan) {
        explains.put(title, plan);
        explainHistory.put(title, rows);
    }

    /** Runs the EXPLAIN twice, each in its own transaction that is rolled back; returns the second plan. */
    private static String explain(Connection conn, String sql) throws SQLException {
        String plan = "";
        conn.setAutoCommit(false);
        try {
            for (int i = 0; i < 2; i++) {
                StringBuilder out = new StringBuilder();
                try (Statement s = conn.createStatement();
                        ResultSet rs = s.executeQuery("EXPLAIN (ANALYZE, BUFFERS) " + sql)) {
                    while (rs.next()) {
                        out.append(rs.getString(1)).append('\n');
                    }
                }
                conn.rollback();
                plan = out.toString();
            }
        } finally {
            conn.rollback();
            conn.setAutoCommit(true);
        }
        return plan;
    }

    /** Each {@code :name} becomes {@code CAST(value AS type)}, the type the application binds it with. */
    static String bind(String sql, Map<String, String> values) {
        Map<String, String> types = new LinkedHashMap<>(AppSql.PARAMETER_TYPES);
        types.put("id", "uuid");
        types.put("admin", "boolean");
        types.put("owner", "uuid");
        Matcher m = PARAMETER.matcher(sql);
        StringBuilder out = new StringBuilder();
        while (m.find()) {
            String name = m.group(1);
            String type = types.get(name);
            if (type == null) {
                throw new IllegalStateException("the application's SQL has a parameter :" + name + " of unknown type");
            }
            String replacement;
            if (type.startsWith("NULL ")) {
                replacement = "CAST(NULL AS " + type.substring(5) + ")";
            } else {
                String value = values.get(name);
                if (value == null) {
                    throw new IllegalStateException("no value for :" + name);
                }
                replacement = "CAST(" + value + " AS " + type + ")";
            }
            m.appendReplacement(out, Matcher.quoteReplacement(replacement));
        }
        m.appendTail(out);
        return out.toString().strip();
    }

    /**
     * The value of a String constant of a Java source: text blocks, string literals and other
     * constants of the same file, joined with {@code +}.
     */
    static String constant(String source, String name, String file) {
        Matcher m = Pattern.compile("\\bString\\s+" + name + "\\s*=\\s*(.*?);\\s*$", Pattern.DOTALL | Pattern.MULTILINE)
                .matcher(source);
        if (!m.find()) {
            throw new IllegalStateException("cannot find the constant " + name + " in " + file);
        }
        String expression = m.group(1).strip();
        if (expression.startsWith("\"\"\"")) {
            return AppSql.textBlock(source, name, file);
        }
        StringBuilder value = new StringBuilder();
        Matcher part = Pattern.compile("\\s*(?:\"((?:[^\"\\\\]|\\\\.)*)\"|([A-Z_][A-Z0-9_]*))\\s*(\\+|$)").matcher(expression);
        int at = 0;
        while (at < expression.length() && part.find(at) && part.start() == at) {
            value.append(part.group(1) != null ? part.group(1).translateEscapes() : constant(source, part.group(2), file));
            at = part.end();
        }
        if (at < expression.length()) {
            throw new IllegalStateException("cannot read the constant " + name + " in " + file + ": " + expression);
        }
        return value.toString();
    }

    // Report -----------------------------------------------------------------------------------------------------

    private void writeReport() throws Exception {
        Path out = c.resultsDir;
        Files.createDirectories(out);
        Map<String, Object> machine = Machine.describe(c, db, c.workDir.resolve("app.jar"));
        StringBuilder md = new StringBuilder();
        long seconds = Duration.between(started, finished).toSeconds();
        md.append("# Account history and latency\n\n");
        md.append("Generated by `bench/run.sh history` (see [bench/README.md](../README.md)) on ").append(Report.WHEN.format(started))
                .append(", ").append(seconds / 60).append(" min ").append(seconds % 60).append(" s in all.\n\n");
        md.append("Command: `").append(c.commandLine.isBlank() ? "bench/run.sh history" : c.commandLine).append("`\n\n");
        md.append("**Target**: current-balance read and transfer latency with ").append(String.format(Locale.ROOT, "%,d", c.largeRows))
                .append(" rows in an account's history at most ").append(TARGET_RATIO).append(" × what it is with ")
                .append(String.format(Locale.ROOT, "%,d", c.smallRows)).append(", on p50 and on p99.\n\n");
        md.append("**Verdict: ").append(verdict()).append("**");
        long passed = scenarios.stream().filter(Scenario::meetsTarget).count();
        md.append(" (").append(passed).append(" of ").append(scenarios.size()).append(" measurements within ")
                .append(TARGET_RATIO).append(" on both p50 and p99).");
        if (!valid()) {
            md.append(" **The run is not valid**: see the audits and answers below.");
        }
        md.append(" Audit after seeding: ").append(seedAudit == null ? "not run" : seedAudit.summary())
                .append("; after the run: ").append(finalAudit == null ? "not run" : finalAudit.summary()).append(".\n\n");
        double other = scenarios.stream().filter(s -> s.cpu != null && s.cpu.containsKey("other"))
                .mapToDouble(s -> s.cpu.get("other")).average().orElse(0);
        if (other > 0.25) {
            md.append(String.format(Locale.ROOT, "> Other processes on the machine used %.2f of its %s cores on average "
                    + "while this ran (see CPU below). Both sides of each measurement ran in alternating rounds, so the "
                    + "disturbance falls on both, but it widens the tails.%n%n", other, machine.get("cpus")));
        }

        md.append("## Latency (ms)\n\n");
        md.append("Each request from send to last byte of the answer, 2xx answers only (every answer is counted below).\n\n");
        md.append("| measurement | account | history rows during it | requests | req/s | p50 | p99 | p99.9 | max |\n");
        md.append("|---|---|---|---|---|---|---|---|---|\n");
        for (Scenario s : scenarios) {
            for (boolean large : List.of(false, true)) {
                Stats st = large ? s.large : s.small;
                md.append("| ").append(s.title()).append(" | ").append(large ? "long history" : "short history").append(" | ")
                        .append(range(st)).append(" | ").append(String.format(Locale.ROOT, "%,d", st.latency.getTotalCount()))
                        .append(" | ").append(Report.num(st.throughput())).append(" | ").append(Report.ms(st.ms(50)))
                        .append(" | ").append(Report.ms(st.ms(99))).append(" | ").append(Report.ms(st.ms(99.9)))
                        .append(" | ").append(Report.ms(st.max())).append(" |\n");
            }
        }
        md.append("\n## Long history / short history\n\n");
        md.append("| measurement | p50 | p99 | p99.9 | target (p50 and p99 ≤ ").append(TARGET_RATIO).append(") |\n|---|---|---|---|---|\n");
        for (Scenario s : scenarios) {
            md.append("| ").append(s.title()).append(" | ").append(ratio(s.ratio(50))).append(" | ").append(ratio(s.ratio(99)))
                    .append(" | ").append(ratio(s.ratio(99.9))).append(" | ").append(s.meetsTarget() ? "met" : "**missed**")
                    .append(" |\n");
        }
        md.append("\nThe p50 of each round, long history / short history (the spread shows the noise of the machine):\n\n");
        for (Scenario s : scenarios) {
            List<String> ratios = new ArrayList<>();
            for (int i = 0; i < Math.min(s.small.roundP50.size(), s.large.roundP50.size()); i++) {
                ratios.add(ratio(s.large.roundP50.get(i) / s.small.roundP50.get(i)));
            }
            md.append("- ").append(s.title()).append(": ").append(String.join(", ", ratios)).append('\n');
        }

        md.append("\n## Answers\n\n| measurement | short history | long history |\n|---|---|---|\n");
        for (Scenario s : scenarios) {
            md.append("| ").append(s.title()).append(" | ").append(Report.statuses(s.small.statusCounts())).append(" | ")
                    .append(Report.statuses(s.large.statusCounts())).append(" |\n");
        }
        md.append("\nWarm-up (not measured): ").append(String.format(Locale.ROOT, "%,d", warmup.requests)).append(" requests, ")
                .append(Report.statuses(warmup.statusCounts())).append(".\n");
        for (Scenario s : scenarios) {
            if (!s.note.isEmpty()) {
                md.append("\n- ").append(s.title()).append(": ").append(s.note);
            }
            for (Stats st : List.of(s.small, s.large)) {
                st.sampleBodies.forEach((k, v) -> md.append("\n- ").append(s.title()).append(", ").append(k).append(": `")
                        .append(v.replace('`', '\'')).append('`'));
            }
        }

        md.append("\n\n## How it was measured\n\n");
        md.append("- The packaged application (`java -jar`, production defaults, ").append(c.chaosMode)
                .append(" concurrency mode) on its own PostgreSQL on 127.0.0.1, both started by the harness as for the benchmark. ")
                .append(c.rateLimit == null ? "The per-client rate limit at its default."
                        : c.rateLimit.equals("0") ? "The per-client rate limit off (`PAYSTREAM_RATE_LIMIT_PER_SECOND=0`): each account has "
                                + "one owner, who sends hundreds of requests per second here; the limiter costs both sides the same."
                                : "The per-client rate limit at " + c.rateLimit + " requests/s.")
                .append('\n');
        md.append("- Warm-up first, not measured: ").append(String.format(Locale.ROOT, "%,d", c.warmupRequests))
                .append(" requests (`--warmup-requests`) from ").append(c.clients).append(" clients, in chunks of ")
                .append(WARMUP_CHUNK).append(", in turn balance reads of both read accounts and transfers between two "
                        + "accounts of their own, so that the JIT has compiled the request path.\n");
        md.append("- Each measurement: ").append(c.rounds).append(" rounds (`--rounds`); in each, ").append(c.roundRequests)
                .append(" requests (`--round-requests`) on one account, then as many on the other; the account going first "
                        + "alternates from round to round, so drift on the shared machine falls on both sides alike. ")
                .append("Closed loop: each client sends its next request as soon as it has the previous answer; sequential "
                        + "is 1 client, concurrent is ").append(c.clients).append(" (`--clients`).\n");
        md.append("- `GET /v1/accounts/{id}/balance` as the account's owner. The short side is one account of exactly ")
                .append(String.format(Locale.ROOT, "%,d", c.smallRows)).append(" rows, the long side one of ")
                .append(String.format(Locale.ROOT, "%,d", c.largeRows)).append(" rows; reads do not grow them.\n");
        md.append("- `POST /v1/transfers` of 1 minor unit with an Idempotency-Key, as the owner, from the account to a "
                + "payee account of its own side (two payees, with the same history growth). A transfer adds a row to the "
                + "account it debits: each round on the short side debits a fresh account seeded with ")
                .append(String.format(Locale.ROOT, "%,d", c.smallRows)).append(" rows, so the short side stays between ")
                .append(String.format(Locale.ROOT, "%,d", c.smallRows)).append(" and ")
                .append(String.format(Locale.ROOT, "%,d", c.smallRows + c.roundRequests))
                .append(" rows; the long side is one account throughout (the table shows the rows during each measurement).\n");
        md.append("- Latency with HdrHistogram, in microseconds, per side over all its rounds.\n");

        md.append("\n## Seeding\n\n");
        md.append("- Accounts: ").append(seedFacts.get("accounts")).append(", opened and funded as the benchmark seeds them "
                + "(`Seeder.seedSql`): one deposit each from the currency's system account, in one transaction, every "
                + "trigger of the ledger on. The debited accounts hold 10^12 minor units, far more than their history and the "
                + "run take.\n");
        md.append("- Histories: an account with N rows gets N - 1 transfers to a counterpart account of 1 to 100 minor units "
                + "each (a fixed pseudo-random sequence), written with SQL in batches of ").append(String.format(Locale.ROOT, "%,d", BATCH))
                .append(" transfers, one database transaction per batch: both account rows locked as the application locks them, "
                        + "both chain heads read, then one `INSERT ... SELECT` of the transactions and one of the balance rows "
                        + "(versions head + 1, head + 2, ...; running balances from `sum(amount) OVER (ORDER BY k)`; timestamps "
                        + "one microsecond apart, never before either head).\n");
        md.append(String.format(Locale.ROOT, "- The long history (%,d rows, and as many for its counterpart) took %.1f s. ",
                c.largeRows, seedFacts.get("largeSeconds")));
        if (bypassed) {
            md.append("It was written with `SET LOCAL session_replication_role = replica` (as the superuser, inside each "
                    + "seeding transaction only): PostgreSQL then fires none of the ledger's triggers (chain check, double "
                    + "entry, insert-only) nor the foreign-key checks. So the result was verified instead, over the whole "
                    + "ledger, before anything was measured: the harness's audit (below) and the checks the audit does not "
                    + "make (foreign keys, time order along every chain).");
        } else {
            md.append("It was written with every trigger on.");
        }
        md.append(String.format(Locale.ROOT, "%n- The %d short histories (%,d rows each, their shared counterpart %,d) took %.1f s, with every trigger on.%n",
                seedFacts.get("smallAccounts"), c.smallRows, ((Integer) seedFacts.get("smallAccounts")) * (c.smallRows - 1) + 1,
                seedFacts.get("smallSeconds")));
        md.append(String.format(Locale.ROOT, "- Then `VACUUM (ANALYZE)` of balances, transactions and accounts and a `CHECKPOINT` "
                + "(%.1f s), as autovacuum would have done in production over such a history. Seeding in all: %.1f s.%n",
                seedFacts.get("vacuumSeconds"), seedFacts.get("totalSeconds")));
        md.append(String.format(Locale.ROOT, "- The ledger after seeding: %,d transactions, %,d balance rows.%n%n",
                seedFacts.get("transactions"), seedFacts.get("balanceRows")));
        md.append("**Audit after seeding** (").append(String.format(Locale.ROOT, "%.1f s", seedFacts.get("auditSeconds")))
                .append("): ").append(seedAudit.summary()).append(". Money conserved per currency, no forbidden negative balance, "
                        + "every chain exact (versions 1..n, balance = previous + delta, held = previous + held_delta), every "
                        + "transaction one debit of -amount and one credit of +amount. Checks of what the bypassed triggers check:\n\n");
        seedFacts.forEach((k, v) -> {
            if (k.startsWith("check: ")) {
                md.append("- ").append(k.substring(7)).append(": ").append(v).append('\n');
            }
        });
        md.append("\n**Audit after the run**: ").append(finalAudit == null ? "not run" : finalAudit.summary())
                .append(finalAudit == null ? "" : "; " + finalAudit.facts()).append(".\n");

        md.append("\n## CPU (cores used: application / PostgreSQL / load generator / other)\n\n| measurement | seconds | cores |\n|---|---|---|\n");
        for (Scenario s : scenarios) {
            md.append("| ").append(s.title()).append(" | ").append(String.format(Locale.ROOT, "%.0f", s.seconds)).append(" | ")
                    .append(Report.cpu(s.cpu)).append(" |\n");
        }

        md.append("\n## EXPLAIN (ANALYZE, BUFFERS)\n\n");
        md.append("The application's statements as its sources have them (`").append(ACCOUNTS).append("`, `").append(LEDGER)
                .append("`), each parameter replaced by the value the application binds, cast to the type it binds it with "
                        + "(so this is the plan for those values). Each ran twice after the measurements; the second run is shown. "
                        + "The check-and-post inserts: it ran in a transaction that was rolled back.\n");
        explains.forEach((title, plan) -> md.append("\n### ").append(title).append(" (")
                .append(String.format(Locale.ROOT, "%,d", explainHistory.get(title))).append(" rows in the history)\n\n```\n")
                .append(plan).append("```\n"));

        md.append("\n## Setup\n\n");
        md.append("- Machine: ").append(machine.get("cpus")).append(" CPUs (").append(machine.get("cpuModel")).append("), ")
                .append(machine.get("memory")).append(", ").append(machine.get("os")).append(", kernel ")
                .append(machine.get("kernel")).append("; shared by the application, PostgreSQL and the load generator.\n");
        md.append("- Java: ").append(machine.get("appJava")).append(" for the application; PostgreSQL ").append(machine.get("postgres")).append('\n');
        md.append("- Application: ").append(machine.get("appJar")).append(", project commit ").append(machine.get("projectCommit")).append('\n');
        md.append("- Started ").append(started).append(", finished ").append(finished).append('\n');

        md.append("\n## Reading the figures\n\n");
        md.append("- Two shared cores run the application, PostgreSQL and the load generator; figures vary from run to run. "
                + "The ratios compare sides measured in the same rounds, which is what makes them comparable; the absolute "
                + "latencies are this machine's.\n");
        md.append("- Every transfer commits with `fsync` and `synchronous_commit` on, as in production.\n");
        md.append("- p99.9 rests on the slowest few requests of each side, and is noisy.\n");
        for (String n : notes) {
            md.append("- ").append(n).append('\n');
        }
        Files.writeString(out.resolve("HISTORY.md"), md.toString(), StandardCharsets.UTF_8);
        Log.info("History report written to %s", out.resolve("HISTORY.md"));
    }

    private static String range(Stats st) {
        if (st.historyFirst == Long.MAX_VALUE) {
            return "";
        }
        return st.historyFirst == st.historyLast ? String.format(Locale.ROOT, "%,d", st.historyFirst)
                : String.format(Locale.ROOT, "%,d to %,d", st.historyFirst, st.historyLast);
    }

    private static String ratio(double r) {
        return Double.isNaN(r) || Double.isInfinite(r) ? "" : String.format(Locale.ROOT, "%.2f", r);
    }
}
