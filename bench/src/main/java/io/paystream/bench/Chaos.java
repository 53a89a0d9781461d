package io.paystream.bench;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;

import reactor.core.publisher.Mono;

/**
 * The chaos test. Clients send transfers and retry each one with the SAME Idempotency-Key on any
 * transport error, timeout, 5xx or 409 "request in progress", until it gets a 2xx or another 4xx
 * (bounded in attempts and time). Meanwhile the application is killed with kill -9 every few seconds
 * and restarted (as a process supervisor would), PostgreSQL is restarted mid-load, and random
 * connections of the application are terminated. Afterwards the ledger must hold every acknowledged
 * transfer exactly once, no key may have moved money twice, and the invariants must hold.
 */
final class Chaos {

    private static final int MAX_ATTEMPTS = 300;
    private static final Duration ATTEMPT_TIMEOUT = Duration.ofSeconds(10);
    private static final Duration READY_TIMEOUT = Duration.ofSeconds(120);

    /** One transfer and everything its client learnt about it. */
    static final class Key {
        final String body;
        final String apiKey;
        final Set<UUID> acknowledgedIds = ConcurrentHashMap.newKeySet();
        volatile String finalLabel;
        volatile int attempts;
        /** What the attempts before the final one got (at most 20 kept). */
        final List<String> earlier = Collections.synchronizedList(new ArrayList<>());
        volatile boolean finalReplayed;
        volatile boolean reconciled;

        Key(String body, String apiKey) {
            this.body = body;
            this.apiKey = apiKey;
        }

        boolean acknowledged() {
            return !acknowledgedIds.isEmpty();
        }

        boolean resolved() {
            return finalLabel != null;
        }
    }

    final Config c;
    final Postgres db;
    final App app;
    final String runId = Long.toString(System.currentTimeMillis(), 36);
    final Map<String, Key> keys = new ConcurrentHashMap<>();
    final Map<String, LongAdder> responses = new ConcurrentHashMap<>();
    final Map<String, String> sampleBodies = new ConcurrentHashMap<>();
    final AtomicLong requests = new AtomicLong();
    final AtomicLong lastAckNanos = new AtomicLong();
    final List<Double> readySeconds = Collections.synchronizedList(new ArrayList<>());
    final Map<String, LongAdder> terminatedByState = new ConcurrentHashMap<>();
    final List<String> events = Collections.synchronizedList(new ArrayList<>());
    final List<String> notes = Collections.synchronizedList(new ArrayList<>());
    int kills;
    int killsNeverReady;
    int failedStarts;
    final Map<String, Long> failedStartCauses = new ConcurrentHashMap<>();
    int pgRestarts;
    double pgRecoverySeconds = -1;
    long terminated;
    long terminateErrors;
    Instant started;
    Instant finished;
    long chaosStartNanos;
    volatile boolean chaosRunning = true;
    Audit.Result audit;
    final List<String> failures = new ArrayList<>();
    Clients clients;
    final Map<String, Object> verdict = new LinkedHashMap<>();

    Chaos(Config c, Postgres db, App app) {
        this.c = c;
        this.db = db;
        this.app = app;
    }

    void run() throws Exception {
        started = Instant.now();
        app.startAndAwaitReady(c.chaosMode, READY_TIMEOUT);
        clients = Clients.create(app, c.clients);
        Seeder.Accounts accounts;
        try (Connection conn = db.admin()) {
            accounts = c.seed.equals("api") ? Seeder.seedApi(conn, app, c.accounts, c.funds, Map.of(), clients)
                    : Seeder.seedSql(conn, c.accounts, c.funds, Map.of(), clients);
        }
        List<String> ids = accounts.numbered().stream().map(UUID::toString).toList();
        String[][] own = Workload.own(accounts, clients);
        chaosStartNanos = System.nanoTime();
        long deadline = chaosStartNanos + Duration.ofSeconds(c.durationSeconds).toNanos();
        Log.info("Chaos for %d s: %d clients, kill -9 every %d-%d s, pg_terminate_backend every %d-%d s, %d PostgreSQL restart(s)",
                c.durationSeconds, c.clients, c.killMinSeconds, c.killMaxSeconds, c.terminateMinSeconds,
                c.terminateMaxSeconds, db.external ? 0 : c.pgRestarts);
        try (Http http = new Http(app.port, app.apiKey, c.clients + 8, ATTEMPT_TIMEOUT, "chaos")) {
            List<Thread> threads = new ArrayList<>();
            for (int i = 0; i < c.clients; i++) {
                int client = i;
                threads.add(start("chaos-client-" + i, () -> clientLoop(http, ids, own[client], client, deadline)));
            }
            Thread monkey = start("chaos-monkey", () -> monkeyLoop(deadline));
            Thread terminator = start("chaos-terminator", () -> terminatorLoop(deadline));
            monkey.join(Duration.ofSeconds(c.durationSeconds + 400).toMillis());
            terminator.join(Duration.ofSeconds(30).toMillis());
            chaosRunning = false;
            if (monkey.isAlive()) {
                notes.add("the chaos monkey did not finish in time");
                monkey.interrupt();
            }
            // Chaos is over: the application must be (or come back) up so the clients can finish.
            if (!app.alive() || !app.awaitReady(Duration.ofSeconds(5))) {
                Log.info("Chaos over; restarting the application for the last transfers");
                app.kill9();
                if (!superviseUntilReady(System.nanoTime())) {
                    throw new IllegalStateException("the application does not start any more; log tail:\n" + app.tail(40));
                }
            }
            long joinDeadline = System.nanoTime() + Duration.ofSeconds(c.transferBudgetSeconds + 60).toNanos();
            for (Thread t : threads) {
                t.join(Math.max(1, (joinDeadline - System.nanoTime()) / 1_000_000));
                if (t.isAlive()) {
                    notes.add(t.getName() + " did not finish its last transfer in time");
                    t.interrupt();
                }
            }
            reconcile(http);
        }
        app.stop();
        try (Connection conn = db.admin()) {
            check(conn);
        }
        finished = Instant.now();
        writeReport();
    }

    private static Thread start(String name, Runnable body) {
        Thread t = new Thread(() -> {
            try {
                body.run();
            } catch (RuntimeException e) {
                Log.warn("%s failed: %s", name, e);
            }
        }, name);
        t.setDaemon(true);
        t.start();
        return t;
    }

    // Clients ----------------------------------------------------------------------------------------------

    private void clientLoop(Http http, List<String> ids, String[] own, int client, long deadline) {
        ThreadLocalRandom random = ThreadLocalRandom.current();
        String apiKey = clients.load.get(client).key();
        long seq = 0;
        // Clients go on until the chaos itself is over (a recovery check may run past the window).
        while (chaosRunning && !Thread.currentThread().isInterrupted()) {
            String key = "chaos-" + runId + "-" + client + "-" + (++seq);
            String from = own[random.nextInt(own.length)];
            String to;
            do {
                to = ids.get(random.nextInt(ids.size()));
            } while (to.equals(from));
            String body = "{\"fromAccountId\":\"" + from + "\",\"toAccountId\":\"" + to + "\",\"amount\":"
                    + (1 + random.nextInt(1000)) + ",\"currency\":\"EUR\",\"metadata\":{\"benchRun\":\"" + runId
                    + "\",\"benchKey\":\"" + key + "\"}}";
            Key k = new Key(body, apiKey);
            keys.put(key, k);
            send(http, key, k, System.nanoTime() + Duration.ofSeconds(c.transferBudgetSeconds).toNanos(), MAX_ATTEMPTS);
        }
    }

    /** Sends one transfer until it gets a final answer, the attempts run out, or its time does. */
    private void send(Http http, String key, Key k, long until, int maxAttempts) {
        long backoffMs = 50;
        for (int attempt = 1; attempt <= maxAttempts && !Thread.currentThread().isInterrupted(); attempt++) {
            k.attempts++;
            requests.incrementAndGet();
            Http.Response r = http.post("/v1/transfers", k.body, key, k.apiKey)
                    .timeout(ATTEMPT_TIMEOUT.plusSeconds(5), Mono.just(new Http.Response(-1, null, "timeout")))
                    .block();
            String label = r == null ? "no response" : r.label();
            responses.computeIfAbsent(label, x -> new LongAdder()).increment();
            if (r != null && r.is2xx()) {
                String id = Json.field(r.body(), "id");
                if (id != null) {
                    k.acknowledgedIds.add(UUID.fromString(id));
                }
                k.finalLabel = Integer.toString(r.status());
                k.finalReplayed = r.replayed();
                lastAckNanos.set(System.nanoTime());
                return;
            }
            if (r != null && (r.status() >= 500 || r.status() == 400)) {
                sampleBodies.putIfAbsent(label, r.body() == null ? "" : Phase.truncate(r.body(), 400));
            }
            if (k.earlier.size() < 20) {
                k.earlier.add(label);
            }
            if (!Retrying.worthRetrying(r, label)) {
                k.finalLabel = label;
                return;
            }
            if (System.nanoTime() > until) {
                return;
            }
            backoffMs = Retrying.pause(backoffMs);
            if (backoffMs < 0) {
                return;
            }
        }
    }

    /** Transfers left without a final answer are asked once more, on a stable application: same key, same body. */
    private void reconcile(Http http) {
        List<Map.Entry<String, Key>> open = keys.entrySet().stream().filter(e -> !e.getValue().resolved()).toList();
        if (open.isEmpty()) {
            return;
        }
        Log.info("Reconciling %d transfers that got no final answer during the chaos", open.size());
        long until = System.nanoTime() + Duration.ofSeconds(120).toNanos();
        for (Map.Entry<String, Key> e : open) {
            e.getValue().reconciled = true;
            send(http, e.getKey(), e.getValue(), Math.min(until, System.nanoTime() + Duration.ofSeconds(30).toNanos()), 10);
        }
    }

    // Chaos --------------------------------------------------------------------------------------------------

    private void monkeyLoop(long deadline) {
        ThreadLocalRandom random = ThreadLocalRandom.current();
        int restarts = db.external ? 0 : c.pgRestarts;
        List<Long> pgRestartAt = new ArrayList<>();
        for (int i = 1; i <= restarts; i++) {
            pgRestartAt.add(chaosStartNanos + (deadline - chaosStartNanos) * i / (restarts + 1));
        }
        while (System.nanoTime() < deadline) {
            long pauseMs = 1000L * c.killMinSeconds + random.nextLong(1000L * (c.killMaxSeconds - c.killMinSeconds) + 1);
            long wakeAt = Math.min(deadline, System.nanoTime() + pauseMs * 1_000_000);
            while (System.nanoTime() < wakeAt) {
                Sh.sleep(Math.max(1, Math.min(200, (wakeAt - System.nanoTime()) / 1_000_000)));
            }
            if (System.nanoTime() >= deadline) {
                break;
            }
            if (!pgRestartAt.isEmpty() && System.nanoTime() >= pgRestartAt.get(0)) {
                pgRestartAt.remove(0);
                restartPostgres();
            } else {
                killAndRestartApp();
            }
        }
    }

    private void killAndRestartApp() {
        long pid = app.pid();
        long t0 = System.nanoTime();
        app.kill9();
        kills++;
        event("kill -9 of the application (pid " + pid + ")");
        if (superviseUntilReady(t0)) {
            double seconds = (System.nanoTime() - t0) / 1e9;
            readySeconds.add(seconds);
            event(String.format(Locale.ROOT, "application ready again after %.1f s (pid %d)", seconds, app.pid()));
        } else {
            killsNeverReady++;
            event("application NOT ready " + READY_TIMEOUT.toSeconds() + " s after the kill");
            notes.add("The application did not become ready after kill #" + kills + "; log tail:\n" + app.tail(30));
        }
    }

    /**
     * Starts the application and waits until it is ready, as a process supervisor would: a start that
     * exits on its own (for example because its migration connection was terminated) is started
     * again, within READY_TIMEOUT from {@code t0}.
     */
    private boolean superviseUntilReady(long t0) {
        long deadline = t0 + READY_TIMEOUT.toNanos();
        while (System.nanoTime() < deadline) {
            try {
                app.start(c.chaosMode);
            } catch (Exception e) {
                notes.add("Starting the application failed: " + e.getMessage());
                return false;
            }
            if (app.awaitReady(Duration.ofNanos(Math.max(0, deadline - System.nanoTime())))) {
                return true;
            }
            if (!app.alive()) {
                failedStarts++;
                String cause = app.tail(400).lines().filter(l -> l.startsWith("Caused by:"))
                        .reduce((a, b) -> b).orElse("(no cause in the log)");
                failedStartCauses.merge(Phase.truncate(cause, 200), 1L, Long::sum);
                event("the application exited while starting (" + Phase.truncate(cause, 120) + "); restarting it");
            }
            app.kill9();
        }
        return false;
    }

    private void restartPostgres() {
        long t0 = System.nanoTime();
        event("pg_ctl restart -m fast");
        try {
            db.restartFast();
            pgRestarts++;
            long up = System.nanoTime();
            event(String.format(Locale.ROOT, "PostgreSQL accepting connections again after %.1f s", (up - t0) / 1e9));
            // The application is not restarted: it must find the database again by itself.
            long until = up + Duration.ofSeconds(90).toNanos();
            while (System.nanoTime() < until && lastAckNanos.get() < up) {
                Sh.sleep(50);
            }
            if (lastAckNanos.get() >= up) {
                pgRecoverySeconds = (lastAckNanos.get() - t0) / 1e9;
                event(String.format(Locale.ROOT, "first transfer acknowledged %.1f s after the restart began, "
                        + "application not restarted", pgRecoverySeconds));
            } else {
                event("NO transfer acknowledged within 90 s of the PostgreSQL restart");
                notes.add("The application did not serve a transfer within 90 s of the PostgreSQL restart; health "
                        + (app.isUp() ? "UP" : "not UP") + "; log tail:\n" + app.tail(20));
            }
        } catch (RuntimeException e) {
            notes.add("Restarting PostgreSQL failed: " + e.getMessage());
        }
    }

    private void terminatorLoop(long deadline) {
        ThreadLocalRandom random = ThreadLocalRandom.current();
        Connection conn = null;
        while (System.nanoTime() < deadline) {
            long pauseMs = 1000L * c.terminateMinSeconds
                    + random.nextLong(1000L * (c.terminateMaxSeconds - c.terminateMinSeconds) + 1);
            Sh.sleep(Math.max(1, Math.min(pauseMs, (deadline - System.nanoTime()) / 1_000_000)));
            if (System.nanoTime() >= deadline) {
                break;
            }
            try {
                if (conn == null || conn.isClosed()) {
                    conn = db.admin();
                }
                try (PreparedStatement p = conn.prepareStatement("""
                        SELECT s.pid, s.state, pg_terminate_backend(s.pid) AS done
                          FROM (SELECT pid, coalesce(state, 'unknown') AS state
                                  FROM pg_stat_activity
                                 WHERE usename = ? AND backend_type = 'client backend' AND pid <> pg_backend_pid()
                                   AND datname = current_database()
                                   AND coalesce(application_name, '') <> ?
                                 ORDER BY random() LIMIT 1) s""")) {
                    p.setString(1, db.appUser);
                    p.setString(2, Postgres.BENCH_APPLICATION_NAME);
                    try (ResultSet rs = p.executeQuery()) {
                        if (rs.next() && rs.getBoolean("done")) {
                            terminated++;
                            terminatedByState.computeIfAbsent(rs.getString("state"), x -> new LongAdder()).increment();
                        }
                    }
                }
            } catch (SQLException e) {
                terminateErrors++;
                try {
                    if (conn != null) {
                        conn.close();
                    }
                } catch (SQLException ignored) {
                    // reconnect next time
                }
                conn = null;
            }
        }
        try {
            if (conn != null) {
                conn.close();
            }
        } catch (SQLException ignored) {
            // done
        }
    }

    private void event(String what) {
        String line = String.format(Locale.ROOT, "%6.1f s  %s", (System.nanoTime() - chaosStartNanos) / 1e9, what);
        events.add(line);
        Log.info("chaos: %s", line.strip());
    }

    // Checks ---------------------------------------------------------------------------------------------------

    private void check(Connection conn) throws SQLException {
        List<UUID> acknowledged = new ArrayList<>();
        keys.values().forEach(k -> acknowledged.addAll(k.acknowledgedIds));
        audit = Audit.run(conn, acknowledged);

        // What the ledger holds for this run, by key (each chaos transfer names its key in its metadata).
        Map<String, List<UUID>> ledger = new HashMap<>();
        try (PreparedStatement p = conn.prepareStatement("""
                SELECT metadata->>'benchKey' AS key, id FROM transactions
                 WHERE type = 'transfer' AND metadata->>'benchRun' = ?""")) {
            p.setString(1, runId);
            try (ResultSet rs = p.executeQuery()) {
                while (rs.next()) {
                    ledger.computeIfAbsent(rs.getString(1), x -> new ArrayList<>()).add(rs.getObject(2, UUID.class));
                }
            }
        }
        // What the application remembered for each key.
        Map<String, String> storedIds = new HashMap<>();
        Map<String, Integer> storedStatus = new HashMap<>();
        try (PreparedStatement p = conn.prepareStatement(
                "SELECT key, status_code, convert_from(response_body, 'UTF8') FROM idempotency_keys WHERE key LIKE ?")) {
            p.setString(1, "chaos-" + runId + "-%");
            try (ResultSet rs = p.executeQuery()) {
                while (rs.next()) {
                    storedStatus.put(rs.getString(1), rs.getInt(2));
                    storedIds.put(rs.getString(1), Json.field(rs.getString(3), "id"));
                }
            }
        }
        long ledgerTransfers = ledger.values().stream().mapToLong(List::size).sum();
        long acked = 0;
        long refused = 0;
        long unresolved = 0;
        long lost = 0;
        long duplicated = 0;
        long conflictingAnswers = 0;
        long refusedButApplied = 0;
        long appliedUnacknowledged = 0;
        long keyRecordMismatch = 0;
        long reconciled = 0;
        long appliedBehind5xx = 0;
        long appliedBehindTransportError = 0;
        long replays = 0;
        Map<String, Long> appliedBehind = new TreeMap<>();
        List<String> examples = new ArrayList<>();
        for (Map.Entry<String, Key> e : keys.entrySet()) {
            Key k = e.getValue();
            List<UUID> inLedger = ledger.getOrDefault(e.getKey(), List.of());
            if (k.reconciled) {
                reconciled++;
            }
            if (inLedger.size() > 1) {
                duplicated++;
                examples.add("key " + e.getKey() + " moved money " + inLedger.size() + " times: " + inLedger);
            }
            if (k.acknowledgedIds.size() > 1) {
                conflictingAnswers++;
                examples.add("key " + e.getKey() + " was acknowledged with different ids: " + k.acknowledgedIds);
            }
            if (k.acknowledged() && k.finalReplayed) {
                // Applied by an earlier attempt whose answer the client did not get as a 2xx.
                replays++;
                List<String> before = new ArrayList<>(k.earlier);
                boolean only5xx = !before.isEmpty() && before.stream().allMatch(l -> l.startsWith("5"));
                if (only5xx) {
                    appliedBehind5xx++;
                    before.forEach(l -> appliedBehind.merge(l, 1L, Long::sum));
                    if (examples.size() < 20) {
                        examples.add("key " + e.getKey() + " was answered " + before + " and then replayed as applied: "
                                + "the 5xx said nothing was applied, but the transfer had been");
                    }
                } else if (before.stream().anyMatch(l -> !Character.isDigit(l.charAt(0)))) {
                    appliedBehindTransportError++;
                }
            }
            if (k.acknowledged()) {
                acked++;
                for (UUID id : k.acknowledgedIds) {
                    if (!inLedger.contains(id)) {
                        lost++;
                        examples.add("key " + e.getKey() + " acknowledged as " + id + " but the ledger has " + inLedger);
                    }
                }
                String stored = storedIds.get(e.getKey());
                if (stored == null || !k.acknowledgedIds.contains(UUID.fromString(stored))
                        || storedStatus.getOrDefault(e.getKey(), 0) / 100 != 2) {
                    keyRecordMismatch++;
                }
            } else if (k.resolved()) {
                refused++;
                if (!inLedger.isEmpty()) {
                    refusedButApplied++;
                    examples.add("key " + e.getKey() + " was answered " + k.finalLabel + " but moved money: " + inLedger);
                }
            } else {
                unresolved++;
                if (!inLedger.isEmpty()) {
                    appliedUnacknowledged++;
                }
            }
        }
        for (String key : ledger.keySet()) {
            if (!keys.containsKey(key)) {
                examples.add("the ledger has a transfer for key " + key + " that no client sent");
                duplicated++;
            }
        }
        verdict.put("transfersStarted", (long) keys.size());
        verdict.put("httpRequests", requests.get());
        verdict.put("acknowledged", acked);
        verdict.put("refused4xx", refused);
        verdict.put("unresolved", unresolved);
        verdict.put("reconciledAfterChaos", reconciled);
        verdict.put("lost", lost);
        verdict.put("duplicated", duplicated + conflictingAnswers);
        verdict.put("refusedButApplied", refusedButApplied);
        verdict.put("appliedButNeverAcknowledged", appliedUnacknowledged);
        verdict.put("acknowledgedAsReplay", replays);
        verdict.put("appliedAlthoughOnly5xxAnswered", appliedBehind5xx);
        verdict.put("appliedBehind5xxByAnswer", appliedBehind);
        verdict.put("appliedBehindTimeoutOrCutConnection", appliedBehindTransportError);
        verdict.put("ledgerTransfers", ledgerTransfers);
        verdict.put("ledgerTransfersEqualAcknowledgedKeys", ledgerTransfers == acked);
        verdict.put("storedKeyMismatches", keyRecordMismatch);
        verdict.put("kills", kills);
        verdict.put("killsNotReadyWithin" + READY_TIMEOUT.toSeconds() + "s", killsNeverReady);
        verdict.put("failedStartsRestartedBySupervisor", failedStarts);
        verdict.put("postgresRestarts", pgRestarts);
        verdict.put("connectionsTerminated", terminated);
        verdict.put("examples", examples.stream().limit(20).toList());
        if (!audit.ok()) {
            failures.add("ledger audit: " + audit.summary());
        }
        if (lost > 0) {
            failures.add(lost + " acknowledged transfers lost");
        }
        if (duplicated + conflictingAnswers > 0) {
            failures.add((duplicated + conflictingAnswers) + " keys applied twice or answered with different ids");
        }
        if (refusedButApplied > 0) {
            failures.add(refusedButApplied + " transfers answered with a 4xx moved money");
        }
        if (ledgerTransfers != acked + appliedUnacknowledged) {
            failures.add("the ledger holds " + ledgerTransfers + " transfers of this run for " + acked + " acknowledged keys");
        }
        if (keyRecordMismatch > 0) {
            failures.add(keyRecordMismatch + " acknowledged keys whose stored response does not name the acknowledged transfer");
        }
        if (killsNeverReady > 0) {
            failures.add(killsNeverReady + " kills after which the application did not become ready within "
                    + READY_TIMEOUT.toSeconds() + " s");
        }
        if (!db.external && c.pgRestarts > 0 && pgRestarts > 0 && pgRecoverySeconds < 0) {
            failures.add("no transfer was served within 90 s of the PostgreSQL restart");
        }
        verdict.put("failures", failures);
        Log.info("Chaos verdict: %s; %s", failures.isEmpty() ? "pass" : "FAIL " + failures, verdict);
    }

    // Report ---------------------------------------------------------------------------------------------------

    private void writeReport() throws Exception {
        Path out = c.resultsDir;
        Files.createDirectories(out);
        Map<String, Object> machine = Machine.describe(c, db, c.workDir.resolve("app.jar"));
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("started", started.toString());
        json.put("finished", finished.toString());
        json.put("command", c.commandLine);
        json.put("machine", machine);
        json.put("verdict", verdict);
        json.put("responses", counts(responses));
        json.put("readySecondsAfterKill", readySeconds);
        json.put("postgresRecoverySeconds", pgRecoverySeconds);
        json.put("terminatedByState", counts(terminatedByState));
        json.put("audit", audit.toMap());
        json.put("events", events);
        json.put("notes", notes);
        json.put("appLog", AppLog.warningsAndErrors(app.logFile(), 12));
        Files.writeString(out.resolve("chaos.json"), Json.write(json), StandardCharsets.UTF_8);

        StringBuilder md = new StringBuilder();
        md.append("# Paystream chaos test\n\n");
        md.append("Generated by `bench/run.sh chaos` (see [bench/README.md](../README.md)) on ")
                .append(Report.WHEN.format(started)).append(".\n\n");
        md.append("Command: `").append(c.commandLine.isBlank() ? "bench/run.sh chaos" : c.commandLine).append("`\n\n");
        md.append(c.durationSeconds).append(" s of chaos, ").append(c.clients).append(" clients, ").append(c.chaosMode)
                .append(" mode, ").append(c.accounts).append(" accounts. Each client sends transfers between random "
                        + "accounts and retries each one with the same Idempotency-Key (and the same body) on any "
                        + "transport error, timeout, 5xx or 409 `idempotency_request_in_progress`, with exponential "
                        + "backoff (50 ms to 1 s), for at most ").append(c.transferBudgetSeconds).append(" s and ")
                .append(MAX_ATTEMPTS).append(" attempts, until it gets a 2xx or another 4xx. Meanwhile the "
                        + "application is killed with `kill -9` every ").append(c.killMinSeconds).append("-")
                .append(c.killMaxSeconds).append(" s and restarted at once (as a process supervisor would), ")
                .append(db.external ? "" : "PostgreSQL is restarted with `pg_ctl restart -m fast` " + c.pgRestarts
                        + " time(s), ")
                .append("and every ").append(c.terminateMinSeconds).append("-").append(c.terminateMaxSeconds)
                .append(" s one random connection of the application is ended with `pg_terminate_backend`.\n\n");

        boolean ok = failures.isEmpty();
        md.append("## Verdict: ").append(ok ? "pass" : "**FAIL**: " + String.join("; ", failures)).append("\n\n");
        md.append("| check | result |\n|---|---|\n");
        md.append("| acknowledged transfers lost (must be 0) | ").append(verdict.get("lost")).append(" |\n");
        md.append("| keys that moved money twice, or were acknowledged with two ids (must be 0) | ").append(verdict.get("duplicated")).append(" |\n");
        md.append("| transfers answered 4xx that moved money anyway (must be 0) | ").append(verdict.get("refusedButApplied")).append(" |\n");
        md.append("| transfers of this run in the ledger = keys acknowledged | ").append(verdict.get("ledgerTransfers"))
                .append(" = ").append(verdict.get("acknowledged")).append(Boolean.TRUE.equals(verdict.get("ledgerTransfersEqualAcknowledgedKeys")) ? " (yes)" : " (**no**)").append(" |\n");
        md.append("| acknowledged keys whose stored response names another transfer (must be 0) | ").append(verdict.get("storedKeyMismatches")).append(" |\n");
        md.append("| ledger invariants (conservation, no negative balance, exact chains, balanced transactions, acknowledged present) | ")
                .append(audit.ok() ? "pass" : "**" + audit.summary() + "**").append(" |\n");
        md.append("| ready again after every kill -9, without a human (restarted by the harness as a supervisor would) | ")
                .append(killsNeverReady == 0 ? "yes" : "**no**").append(", ")
                .append(readySeconds.size()).append(" of ").append(kills).append(readySeconds.isEmpty() ? "" : String.format(Locale.ROOT,
                        " (median %.1f s, max %.1f s from the kill to /actuator/health UP)", median(readySeconds),
                        readySeconds.stream().mapToDouble(Double::doubleValue).max().orElse(0))).append(" |\n");
        if (!db.external && c.pgRestarts > 0) {
            md.append("| serving transfers again after the PostgreSQL restart, without restarting the application | ")
                    .append(pgRestarts == 0 ? "not reached: the window ended before the restart was due"
                            : pgRecoverySeconds >= 0 ? String.format(Locale.ROOT, "yes, first acknowledgement %.1f s after the restart began", pgRecoverySeconds)
                            : "**no**").append(" |\n");
        }
        md.append("\n## Counts\n\n| | |\n|---|---|\n");
        md.append("| kill -9 of the application | ").append(kills).append(" |\n");
        md.append("| starts that exited on their own and were started again (the harness acting as supervisor) | ")
                .append(failedStarts).append(failedStartCauses.isEmpty() ? "" : " (" + String.join("; ", failedStartCauses.entrySet()
                        .stream().map(e -> e.getValue() + "x `" + e.getKey().replace("|", "/") + "`").toList()) + ")").append(" |\n");
        md.append("| PostgreSQL restarts | ").append(pgRestarts).append(" |\n");
        md.append("| connections terminated (pg_terminate_backend) | ").append(terminated).append(" ")
                .append(counts(terminatedByState).isEmpty() ? "" : "(state when ended: " + Report.statuses(counts(terminatedByState)) + ")").append(" |\n");
        md.append("| transfers started (distinct Idempotency-Keys) | ").append(verdict.get("transfersStarted")).append(" |\n");
        md.append("| HTTP requests (attempts, retries included) | ").append(verdict.get("httpRequests")).append(" |\n");
        md.append("| acknowledged (2xx) | ").append(verdict.get("acknowledged")).append(" |\n");
        md.append("| refused with a final 4xx | ").append(verdict.get("refused4xx")).append(" |\n");
        md.append("| without a final answer after the chaos and one more try on a stable application | ").append(verdict.get("unresolved")).append(" |\n");
        md.append("| of which applied in the ledger (acknowledgement never received) | ").append(verdict.get("appliedButNeverAcknowledged")).append(" |\n");
        md.append("| asked again after the chaos (no final answer within their budget) | ").append(verdict.get("reconciledAfterChaos")).append(" |\n");
        md.append("| acknowledged as a replay (`Idempotent-Replayed: true`): applied by an earlier attempt the client never saw succeed | ")
                .append(verdict.get("acknowledgedAsReplay")).append(" |\n");
        md.append("| ... of which every earlier attempt got a 5xx, which says nothing was applied | ")
                .append(verdict.get("appliedAlthoughOnly5xxAnswered"))
                .append(appliedBehindByAnswer().isEmpty() ? "" : " (" + Report.statuses(appliedBehindByAnswer()) + ")").append(" |\n");
        md.append("| ... of which an earlier attempt timed out or lost its connection | ")
                .append(verdict.get("appliedBehindTimeoutOrCutConnection")).append(" |\n");
        md.append("| lost | ").append(verdict.get("lost")).append(" |\n");
        md.append("| duplicated | ").append(verdict.get("duplicated")).append(" |\n");
        md.append("\n## Responses, all attempts\n\n| response | count |\n|---|---|\n");
        counts(responses).forEach((k, v) -> md.append("| ").append(k).append(" | ").append(v).append(" |\n"));
        if (!sampleBodies.isEmpty()) {
            md.append("\nOne body of each error response:\n\n");
            new TreeMap<>(sampleBodies).forEach((k, v) -> md.append("- `").append(k).append("`: `").append(v.replace("`", "'")).append("`\n"));
        }
        md.append("\n## Timeline\n\n```\n").append(String.join("\n", events)).append("\n```\n");
        Map<String, Long> log = AppLog.warningsAndErrors(app.logFile(), 12);
        md.append("\n## Application log\n\n").append(AppLog.count(app.logFile(), "ERROR")).append(" ERROR and ")
                .append(AppLog.count(app.logFile(), "WARN")).append(" WARN lines over ").append(app.starts())
                .append(" starts. Most frequent (ids and numbers blanked):\n\n");
        if (log.isEmpty()) {
            md.append("(none)\n");
        } else {
            md.append("| count | line |\n|---|---|\n");
            log.forEach((k, v) -> md.append("| ").append(v).append(" | `").append(k.replace("|", "\\|").replace("`", "'")).append("` |\n"));
        }
        if (!notes.isEmpty() || !((List<?>) verdict.get("examples")).isEmpty()) {
            md.append("\n## Notes\n\n");
            for (Object n : (List<?>) verdict.get("examples")) {
                md.append("- ").append(n).append('\n');
            }
            for (String n : notes) {
                md.append("- ").append(n.replace("\n", "\n  ")).append('\n');
            }
        }
        md.append("\n## How it is checked\n\n");
        md.append("- Every transfer carries its Idempotency-Key in its metadata (`benchKey`), so the ledger itself says "
                + "which key moved money, independently of the application's idempotency table.\n");
        md.append("- Lost: a key acknowledged with transfer id X, but X is not the ledger's transfer for that key.\n");
        md.append("- Duplicated: a key with more than one transfer in the ledger, or two different ids acknowledged "
                + "for one key across its retries.\n");
        md.append("- The application's stored response for every acknowledged key (`idempotency_keys`) must name the "
                + "acknowledged transfer.\n");
        md.append("- Only the chaos clients move money during the window, so the ledger's transfers of this run must "
                + "equal the acknowledged keys (plus any applied whose acknowledgement never arrived, which the "
                + "one more try after the chaos turns into acknowledgements).\n");
        md.append("- Then the full ledger audit of the benchmark (see RESULTS.md).\n");
        md.append("\n## Setup\n\n- Machine: ").append(machine.get("cpus")).append(" CPUs, ").append(machine.get("cpuModel"))
                .append(", ").append(machine.get("memory")).append(", ").append(machine.get("os")).append('\n');
        md.append("- Java: ").append(machine.get("appJava")).append(" for the application\n");
        md.append("- PostgreSQL ").append(machine.get("postgres")).append(", fsync=on, synchronous_commit=on\n");
        md.append("- Application: ").append(machine.get("appJar")).append(", project commit ").append(machine.get("projectCommit"))
                .append(", production defaults (pool of 10, 5 s attempt timeout, 64 retries)\n");
        md.append("- Per attempt: ").append(ATTEMPT_TIMEOUT.toSeconds()).append(" s response timeout\n");
        Files.writeString(out.resolve("CHAOS.md"), md.toString(), StandardCharsets.UTF_8);
        Log.info("Chaos report written to %s", out.resolve("CHAOS.md"));
    }

    @SuppressWarnings("unchecked")
    private Map<String, Long> appliedBehindByAnswer() {
        Object m = verdict.get("appliedBehind5xxByAnswer");
        return m == null ? Map.of() : (Map<String, Long>) m;
    }

    private static Map<String, Long> counts(Map<String, LongAdder> m) {
        Map<String, Long> sorted = new TreeMap<>();
        m.forEach((k, v) -> sorted.put(k, v.sum()));
        return sorted;
    }

    private static double median(List<Double> values) {
        List<Double> s = new ArrayList<>(values);
        Collections.sort(s);
        return s.isEmpty() ? 0 : s.get(s.size() / 2);
    }
}
