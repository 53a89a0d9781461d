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
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;

/**
 * The benchmark: seed, then for each concurrency mode the SQL-only limit (pgbench), the API in
 * closed loop for each workload, and the API in open loop at fractions of the closed-loop peak, with
 * an audit of the ledger after every run. Then the report.
 */
final class Bench {

    static final Duration READY_TIMEOUT = Duration.ofSeconds(180);
    static final Duration RESPONSE_TIMEOUT = Duration.ofSeconds(30);

    final Config c;
    final Postgres db;
    final App app;
    final String runId = Long.toString(System.currentTimeMillis(), 36);
    final List<Pgbench.Result> sqlResults = new ArrayList<>();
    final Map<String, Map<String, Double>> sqlCpu = new LinkedHashMap<>();
    final Map<String, Audit.Result> sqlAudits = new LinkedHashMap<>();
    final List<Phase> phases = new ArrayList<>();
    final Map<Phase, Map<String, Double>> cpu = new HashMap<>();
    final Map<String, List<Map<String, Object>>> statements = new LinkedHashMap<>();
    final Map<String, Path> scripts = new LinkedHashMap<>();
    final Map<String, Phase> warmups = new LinkedHashMap<>();
    final Map<String, Audit.Result> warmupAudits = new LinkedHashMap<>();
    final List<String> notes = new ArrayList<>();
    Instant started;
    Instant finished;
    Seeder.Accounts accounts;
    Clients clients;
    String pgbenchVersion = "";

    Bench(Config c, Postgres db, App app) {
        this.c = c;
        this.db = db;
        this.app = app;
    }

    /** The seeded accounts with a role: the merchant, and per mode a drained account per drain run. */
    Map<String, Seeder.Special> specials() {
        Map<String, Seeder.Special> m = new LinkedHashMap<>();
        m.put("merchant", new Seeder.Special(c.funds, clients.merchant));
        // Drained accounts start with 1 minor unit; the rest is deposited just before their run.
        for (String mode : c.modes) {
            m.put("drain-warmup " + mode, new Seeder.Special(1_000_000_000_000L, clients.drain));
            if (c.workloads.contains("drain")) {
                m.put(drainRole(mode, "closed", 0), new Seeder.Special(1, clients.drain));
            }
            if (c.openWorkloads.contains("drain")) {
                for (int pct : c.openRates) {
                    m.put(drainRole(mode, "open", pct), new Seeder.Special(1, clients.drain));
                }
            }
        }
        return m;
    }

    static String drainRole(String mode, String loop, int pct) {
        return "drain " + mode + " " + loop + (loop.equals("open") ? " " + pct : "");
    }

    void run() throws Exception {
        started = Instant.now();
        // The first start migrates the schema (Flyway); then the accounts are seeded.
        app.startAndAwaitReady(c.modes.get(0), READY_TIMEOUT);
        clients = Clients.create(app, c.clients);
        if (!clients.perClientKeys) {
            notes.add("The application has no API keys endpoint: every request used the admin key");
        }
        try (Connection conn = db.admin()) {
            accounts = c.seed.equals("api")
                    ? Seeder.seedApi(conn, app, c.accounts, c.funds, specials(), clients)
                    : Seeder.seedSql(conn, c.accounts, c.funds, specials(), clients);
            Audit.Result seeded = Audit.run(conn, null);
            Log.info("Audit after seeding: %s", seeded.summary());
            if (!seeded.ok()) {
                notes.add("The audit right after seeding failed: " + seeded.summary());
            }
        }
        app.stop();

        AppSql sql = null;
        if (!c.skipPgbench) {
            try {
                sql = AppSql.load(c.projectDir);
                pgbenchVersion = Sh.firstLine(List.of(c.pgbench, "--version"));
                if (Pgbench.majorVersion(c.pgbench) == 0) {
                    notes.add("pgbench could not be run (" + c.pgbench + "); the SQL-only phase was skipped");
                    sql = null;
                }
            } catch (Exception e) {
                notes.add("The SQL-only phase was skipped: " + e.getMessage());
                Log.warn("SQL-only phase skipped: %s", e.getMessage());
            }
        }

        for (String mode : c.modes) {
            if (sql != null) {
                runPgbench(sql, mode);
            }
            app.startAndAwaitReady(mode, READY_TIMEOUT);
            warmApp(mode);
            Map<String, Double> peak = new HashMap<>();
            for (String workload : c.workloads) {
                // The drained account is funded for 30% of what the slowest closed-loop run so far would do.
                Double slowest = peak.values().stream().min(Double::compare).orElse(null);
                Phase p = runPhase(workload, mode, "closed", 0, 0, slowest);
                peak.put(workload, p.throughput());
            }
            for (String workload : c.openWorkloads) {
                Double closedPeak = peak.get(workload);
                if (closedPeak == null || closedPeak <= 0) {
                    notes.add("Open loop " + workload + " (" + mode + ") skipped: no closed-loop peak to scale from");
                    continue;
                }
                for (int pct : c.openRates) {
                    double rate = Math.max(1, closedPeak * pct / 100.0);
                    runPhase(workload, mode, "open", rate, pct, rate);
                }
            }
            app.stop();
        }
        finished = Instant.now();
        Report.write(this);
    }

    /** At most this many requests per second of application warm-up (see {@link #warmApp}). */
    static final int APP_WARMUP_REQUESTS_PER_SECOND = 5_000;

    /**
     * A freshly started JVM runs the request path interpreted, then compiles it: the first thousands of
     * requests are much slower than the rest. Uniform transfers for --app-warmup seconds before anything
     * is measured; audited like every run, reported apart. The time ends it: the request bound is
     * {@link #APP_WARMUP_REQUESTS_PER_SECOND} a second of it, above any rate this harness has seen. (A
     * fixed 30,000 used to end it after about 50 of the 90 s once the groups made transfers fast, and
     * the JIT was still compiling the request path in the phases measured after it.)
     */
    private void warmApp(String mode) throws Exception {
        if (c.appWarmupSeconds <= 0) {
            return;
        }
        Phase p = new Phase("uniform", mode, "app warm-up", c.clients, 0, 0);
        Log.info("Application warm-up (%s): uniform transfers, %d clients, %d s", mode, c.clients, c.appWarmupSeconds);
        try (Connection conn = db.admin();
                Http http = new Http(app.port, app.apiKey, c.clients, RESPONSE_TIMEOUT, "warmup")) {
            Load.closed(http, Workload.uniform(accounts, clients), p, Duration.ZERO, Duration.ofSeconds(c.appWarmupSeconds),
                    (long) APP_WARMUP_REQUESTS_PER_SECOND * c.appWarmupSeconds,
                    "bench-" + runId + "-" + mode + "-appwarmup-", RESPONSE_TIMEOUT);
            Audit.Result audit = Audit.run(conn, p.acknowledgedList());
            Log.info("  warm-up: %.0f req/s on average; %s; audit %s", p.throughput(), p.statusCounts(), audit.summary());
            warmups.put(mode, p);
            warmupAudits.put(mode, audit);
        }
    }

    private void runPgbench(AppSql sql, String mode) throws Exception {
        Path dir = c.workDir.resolve("pgbench");
        Files.createDirectories(dir);
        String script = Pgbench.script(sql, mode, accounts.numbered().size());
        Path scriptFile = dir.resolve("transfer-" + mode + ".sql");
        Files.writeString(scriptFile, script, StandardCharsets.UTF_8);
        scripts.put(mode, scriptFile);
        try (Connection conn = db.admin()) {
            checkpoint(conn);
            Log.info("SQL-only (pgbench, %s): %d clients, warm-up %d s, measure %d s", mode, c.clients,
                    c.warmupSeconds, c.durationSeconds);
            if (c.warmupSeconds > 0) {
                Pgbench.run(c.pgbench, db, dir, scriptFile, mode, c.clients, c.warmupSeconds, false);
            }
            resetStatements(conn);
            Cpu.Sample s0 = Cpu.sample(-1, db.postmasterPid());
            Pgbench.Result r = Pgbench.run(c.pgbench, db, dir, scriptFile, mode, c.clients, c.durationSeconds, true);
            Cpu.Sample s1 = Cpu.sample(-1, db.postmasterPid());
            sqlCpu.put(mode, Cpu.cores(s0, s1));
            statements.put("pgbench " + mode, statements(conn));
            sqlResults.add(r);
            Audit.Result audit = Audit.run(conn, null);
            sqlAudits.put(mode, audit);
            Log.info("  pgbench %s: %.0f tx/s, p50 %.1f ms, p99 %.1f ms, failed %d, retried %d%s; audit %s", mode, r.tps(),
                    r.millis(50), r.millis(99), r.failed(), r.retried(), r.note().isEmpty() ? "" : " (" + r.note() + ")",
                    audit.summary());
        }
    }

    /**
     * One measured run. {@code expectedRate} (requests/s, may be null) sizes the drained account's funds:
     * 30% of the withdrawals the window would see at that rate, so that it runs dry mid-window.
     */
    private Phase runPhase(String workloadName, String mode, String loop, double rate, int pct, Double expectedRate)
            throws Exception {
        Phase p = new Phase(workloadName, mode, loop, loop.equals("closed") ? c.clients : 0, rate, pct);
        Duration warmup = Duration.ofSeconds(c.warmupSeconds);
        Duration measure = Duration.ofSeconds(c.durationSeconds);
        String keyPrefix = "bench-" + runId + "-" + mode + "-" + workloadName + "-" + loop + pct + "-";
        UUID drained = workloadName.equals("drain") ? accounts.special(drainRole(mode, loop, pct)) : null;
        long drainFunds = 0;
        if (drained != null) {
            long withdrawals = c.drainWithdrawals > 0 ? c.drainWithdrawals
                    : Math.max(20, Math.round((expectedRate == null ? 100 : expectedRate) * c.durationSeconds * 0.3));
            drainFunds = 1 + fund(drained, withdrawals * c.drainAmount, mode + "-" + loop + pct);
            Log.info("Drained account funded for %d withdrawals of %d", withdrawals, c.drainAmount);
        }
        Workload workload = switch (workloadName) {
            case "uniform" -> Workload.uniform(accounts, clients);
            case "hot" -> Workload.hot(accounts, clients, accounts.special("merchant"), c.hotShare);
            case "drain" -> Workload.drain(clients, accounts.special("drain-warmup " + mode), drained, c.drainAmount,
                    System.nanoTime() + warmup.toNanos() + (loop.equals("open") ? 10_000_000 : 0));
            default -> throw new IllegalArgumentException(workloadName);
        };
        try (Connection conn = db.admin()) {
            checkpoint(conn);
            p.ledgerRowsBefore = Audit.movements(conn);
            boolean captureStatements = workloadName.equals("uniform") && loop.equals("closed");
            if (captureStatements) {
                resetStatements(conn);
            }
            Log.info("API %s: %s, warm-up %d s, measure %d s", p.title(),
                    loop.equals("closed") ? c.clients + " clients" : String.format("%.0f req/s", rate),
                    c.warmupSeconds, c.durationSeconds);
            Cpu.Sample s0 = Cpu.sample(app.pid(), db.postmasterPid());
            try (Http http = new Http(app.port, app.apiKey, loop.equals("closed") ? c.clients : c.maxInFlight,
                    RESPONSE_TIMEOUT, "load")) {
                if (loop.equals("closed")) {
                    Load.closed(http, workload, p, warmup, measure, c.maxRequests, keyPrefix, RESPONSE_TIMEOUT);
                } else {
                    Load.open(http, workload, p, warmup, measure, c.maxRequests, c.maxInFlight, c.clients, keyPrefix,
                            RESPONSE_TIMEOUT);
                }
            }
            Cpu.Sample s1 = Cpu.sample(app.pid(), db.postmasterPid());
            cpu.put(p, Cpu.cores(s0, s1));
            if (captureStatements) {
                statements.put("API " + mode, statements(conn));
            }
            if (!app.alive()) {
                p.completed = false;
                p.note = (p.note.isEmpty() ? "" : p.note + "; ") + "the application died during the phase";
                notes.add("The application died during " + p.title() + "; last log lines:\n" + app.tail(30));
            }
            p.ledgerRowsAfter = Audit.movements(conn);
            p.audit = Audit.run(conn, p.acknowledgedList());
            checkWritten(p);
            if (drained != null) {
                checkDrain(conn, p, drained, drainFunds);
            }
        }
        phases.add(p);
        Log.info("  %.0f req/s (%.0f 2xx/s), p50 %.1f ms, p99 %.1f ms, p99.9 %.1f ms; %s; CPU %s; audit %s",
                p.throughput(), p.throughput2xx(), p.millis(50), p.millis(99), p.millis(99.9), p.statusCounts(),
                Cpu.describe(cpu.get(p)), p.audit.summary());
        return p;
    }

    /**
     * Everything the run wrote must have been acknowledged, except what may have committed behind a
     * response the client never got (a timeout or a cut connection): a 4xx or 5xx means nothing was applied.
     */
    private void checkWritten(Phase p) {
        long written = p.ledgerRowsAfter - p.ledgerRowsBefore;
        long acknowledged = p.acknowledged.size();
        long unanswered = 0;
        for (Map<String, Long> counts : List.of(p.statusCounts(), p.warmupStatusCounts())) {
            for (Map.Entry<String, Long> e : counts.entrySet()) {
                if (!Character.isDigit(e.getKey().charAt(0)) && !e.getKey().equals("dropped")) {
                    unanswered += e.getValue();
                }
            }
        }
        p.audit.facts().put("movementsWritten", written);
        p.audit.facts().put("unansweredRequests", unanswered);
        if (written > acknowledged + unanswered) {
            p.audit.failures().add((written - acknowledged) + " movements were written but only " + acknowledged
                    + " acknowledged, with " + unanswered + " requests unanswered: a refused request was applied");
        }
    }

    /** The drained account ends where its withdrawals put it, and was refused only once really empty. */
    private void checkDrain(Connection conn, Phase p, UUID drained, long funds) throws SQLException {
        long balance;
        long withdrawals;
        long withdrawn;
        try (PreparedStatement s = conn.prepareStatement("""
                SELECT CAST(? AS uuid) AS unused,
                       (SELECT balance - held FROM balances WHERE account_id = ? ORDER BY version DESC LIMIT 1),
                       (SELECT count(*) FROM transactions WHERE debit_account_id = ? AND type = 'withdrawal'),
                       (SELECT coalesce(sum(amount), 0) FROM transactions WHERE debit_account_id = ? AND type = 'withdrawal')""")) {
            for (int i = 1; i <= 4; i++) {
                s.setObject(i, drained);
            }
            try (ResultSet rs = s.executeQuery()) {
                rs.next();
                balance = rs.getLong(2);
                withdrawals = rs.getLong(3);
                withdrawn = rs.getLong(4);
            }
        }
        long refusals = p.statusCounts().getOrDefault("422 insufficient_funds", 0L);
        p.audit.facts().put("drainFunds", funds);
        p.audit.facts().put("drainWithdrawals", withdrawals);
        p.audit.facts().put("drainFinalAvailable", balance);
        p.audit.facts().put("drainRefusals", refusals);
        if (funds - withdrawn != balance) {
            p.audit.failures().add("drained account: funds " + funds + " - withdrawn " + withdrawn + " <> balance " + balance);
        }
        if (refusals > 0 && balance >= c.drainAmount) {
            p.audit.failures().add("drained account: " + refusals + " withdrawals refused for insufficient funds "
                    + "although " + balance + " is still available");
        }
    }

    /** An admin deposit through the API, retried with the same key on a transient failure; returns the amount. */
    private long fund(UUID account, long amount, String tag) {
        try (Http http = new Http(app.port, app.apiKey, 2, RESPONSE_TIMEOUT, "fund")) {
            String key = "bench-" + runId + "-fund-" + tag;
            for (int attempt = 1; attempt <= 10; attempt++) {
                Http.Response r = http.post("/v1/accounts/" + account + "/deposits",
                        "{\"amount\":" + amount + ",\"currency\":\"EUR\"}", key, app.apiKey).block();
                if (r != null && r.status() == 201) {
                    return amount;
                }
                if (r != null && r.status() >= 400 && r.status() < 500 && r.status() != 409 && r.status() != 429) {
                    throw new IllegalStateException("funding the drained account answered " + r.label() + ": " + r.body());
                }
                Sh.sleep(500L * attempt);
            }
            throw new IllegalStateException("funding the drained account failed 10 times");
        }
    }

    static void checkpoint(Connection conn) {
        try (Statement s = conn.createStatement()) {
            s.execute("CHECKPOINT");
        } catch (SQLException e) {
            // not a superuser (external database): fine
        }
    }

    static void resetStatements(Connection conn) {
        try (Statement s = conn.createStatement()) {
            s.execute("SELECT pg_stat_statements_reset()");
        } catch (SQLException e) {
            // pg_stat_statements not available (external database): fine
        }
    }

    /** Where the database spent its time, statement by statement (pg_stat_statements), top 8. */
    static List<Map<String, Object>> statements(Connection conn) {
        try {
            return Audit.rows(conn, """
                    SELECT calls, round(mean_exec_time::numeric, 3) AS mean_ms,
                           round(mean_plan_time::numeric, 3) AS plan_ms,
                           round((100 * total_exec_time / nullif(sum(total_exec_time) OVER (), 0))::numeric, 1) AS pct,
                           left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS query
                      FROM pg_stat_statements
                     WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                       AND query NOT ILIKE '%pg_stat_statements%'
                     ORDER BY total_exec_time DESC
                     LIMIT 8""");
        } catch (SQLException e) {
            return List.of();
        }
    }
}
