package io.paystream.bench.streams;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.time.Duration;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.LockSupport;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import io.netty.handler.codec.http.HttpHeaderNames;
import org.HdrHistogram.ConcurrentHistogram;
import org.HdrHistogram.Histogram;
import org.HdrHistogram.Recorder;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.netty.ByteBufFlux;
import reactor.netty.http.client.HttpClient;
import reactor.netty.resources.ConnectionProvider;

/**
 * Capacity of live balance streams on one replica: opens many SSE streams from this one JVM, drives
 * deposits at a fixed rate (open loop), and measures change-to-watcher latency (receive time minus the
 * event's createdAt, both on this machine's clock), delivery completeness and ordering, and the
 * server's heap after a full GC and its RSS.
 *
 * <p>Every phase is bounded in count and in time. Usually started by run.sh, which starts PostgreSQL
 * and the application first and stops them afterwards.
 */
public final class StreamBench {

    /** Seconds pgbench goes on writing after the measured window. */
    static final int PGBENCH_TAIL_SECONDS = 2;

    private static final Pattern ID = Pattern.compile("\"id\"\\s*:\\s*\"([0-9a-fA-F-]{36})\"");
    private static final Pattern VERSION = Pattern.compile("\"version\"\\s*:\\s*(\\d+)");
    private static final Pattern CREATED = Pattern.compile("\"createdAt\"\\s*:\\s*(\"([^\"]*)\"|null|[0-9.]+)");

    // ---- options -----------------------------------------------------------------------------------
    private final Map<String, String> opts;
    private final String baseUrl;
    private final String adminKey;
    private final int accounts;
    private final int perAccount;
    private final int openRate;
    private final int changeRate;
    private final int warmupSeconds;
    private final int measureSeconds;
    private final int drainSeconds;
    private final int maxInFlight;
    /** Transfers per request (POST /v1/transfer-batches, 2 balance changes each); 0: one deposit per request. */
    private final int batch;
    private final long serverPid;
    private final long postgresPid;
    /**
     * Who commits the balance changes: "api" (this replica's own HTTP API, transfer batches or
     * deposits) or "pgbench" (the application's transfer transaction in pgbench, announced after
     * commit as a replica announces it: the writes of other replicas; this one only serves streams).
     */
    private final String writer;
    private final boolean pgbenchWriter;
    /** Transfers per pgbench transaction: 1, or a transfer batch of that many. */
    private final int pgbenchBatch;

    // ---- state -------------------------------------------------------------------------------------
    private final List<String> accountIds = new ArrayList<>();
    private Stream[] streams;
    private volatile long[] baseline; // per account: the version before the first change of the run

    private final LongAdder streamsConnected = new LongAdder();
    private final LongAdder streamsWithFirstEvent = new LongAdder();
    private final LongAdder streamsEnded = new LongAdder();
    private final LongAdder streamsFailed = new LongAdder();
    private final Map<Integer, LongAdder> streamStatus = new ConcurrentHashMap<>();
    private final ConcurrentLinkedQueue<String> streamProblems = new ConcurrentLinkedQueue<>();
    private final LongAdder events = new LongAdder();
    private final LongAdder heartbeats = new LongAdder();
    private final LongAdder duplicatesOrReordered = new LongAdder();
    private final LongAdder gaps = new LongAdder();
    private final LongAdder negativeLatency = new LongAdder();

    private final ConcurrentHistogram latencyAll = new ConcurrentHistogram(3);
    private final ConcurrentHistogram latencyMeasured = new ConcurrentHistogram(3);
    private final Recorder latencyInterval = new Recorder(3);
    private volatile long measureFromMicros = Long.MAX_VALUE;
    private volatile long measureToMicros = Long.MAX_VALUE;
    private final LongAdder eventsMeasured = new LongAdder();

    private final AtomicInteger inFlight = new AtomicInteger();
    private final LongAdder depositsSent = new LongAdder();
    private final LongAdder depositsSkipped = new LongAdder();
    private final LongAdder depositsOk = new LongAdder();
    private final LongAdder depositsFailed = new LongAdder();
    private final Map<Integer, LongAdder> depositStatus = new ConcurrentHashMap<>();
    private final ConcurrentLinkedQueue<String> depositProblems = new ConcurrentLinkedQueue<>();
    private final ConcurrentHistogram depositLatency = new ConcurrentHistogram(3);

    private final List<String> log = Collections.synchronizedList(new ArrayList<>());

    // ---- the pgbench writer ----------------------------------------------------------------------------
    private volatile PgbenchWriter pgbench;
    private final PgbenchWriter.Summary pgbenchSummary = new PgbenchWriter.Summary();
    private int pgbenchMajor;
    /** Balance rows of the bench's accounts with created_at inside the measured window (from the database). */
    private long committedInWindow = -1;

    StreamBench(Map<String, String> opts) {
        this.opts = opts;
        this.baseUrl = required("base-url");
        this.adminKey = required("admin-key");
        this.accounts = intOpt("accounts", 1000);
        this.perAccount = intOpt("streams-per-account", 10);
        this.openRate = intOpt("open-rate", 500);
        this.changeRate = intOpt("rate", 1000);
        this.warmupSeconds = intOpt("warmup", 5);
        this.measureSeconds = intOpt("duration", 20);
        this.drainSeconds = intOpt("drain", 15);
        this.maxInFlight = intOpt("max-in-flight", 256);
        this.batch = intOpt("batch", 50);
        if (batch < 0 || batch > 100 || batch * 2 > intOpt("accounts", 1000)) {
            throw new IllegalArgumentException("--batch is 0 to 100 transfers, touching at most --accounts accounts");
        }
        this.serverPid = Long.parseLong(opts.getOrDefault("server-pid", "0"));
        this.postgresPid = Long.parseLong(opts.getOrDefault("postgres-pid", "0"));
        this.writer = opts.getOrDefault("writer", "api");
        if (!writer.equals("api") && !writer.equals("pgbench")) {
            throw new IllegalArgumentException("--writer is api or pgbench");
        }
        this.pgbenchWriter = writer.equals("pgbench");
        this.pgbenchBatch = intOpt("pgbench-batch", 1);
        if (pgbenchBatch < 1 || pgbenchBatch > 100) {
            throw new IllegalArgumentException("--pgbench-batch is 1 to 100 transfers");
        }
        if (pgbenchWriter) {
            required("pgbench");
            required("pgbench-script");
            required("pg-port");
        }
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> opts = new HashMap<>();
        for (int i = 0; i < args.length; i++) {
            if (!args[i].startsWith("--")) {
                throw new IllegalArgumentException("unexpected argument " + args[i]);
            }
            String key = args[i].substring(2);
            String value = i + 1 < args.length && !args[i + 1].startsWith("--") ? args[++i] : "true";
            opts.put(key, value);
        }
        StreamBench bench = new StreamBench(opts);
        // A stopped load generator must not leave its pgbench writing.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            PgbenchWriter w = bench.pgbench;
            if (w != null) {
                w.destroy();
            }
        }, "pgbench-stop"));
        int rc = bench.run();
        System.exit(rc);
    }

    private String required(String key) {
        String v = opts.get(key);
        if (v == null || v.isEmpty()) {
            throw new IllegalArgumentException("--" + key + " is required");
        }
        return v;
    }

    private int intOpt(String key, int def) {
        return Integer.parseInt(opts.getOrDefault(key, Integer.toString(def)));
    }

    private void say(String fmt, Object... args) {
        String line = String.format(Locale.ROOT, fmt, args);
        System.out.println("[stream-bench " + DateTimeFormatter.ISO_LOCAL_TIME.format(java.time.LocalTime.now()).substring(0, 8) + "] " + line);
        log.add(line);
    }

    // =================================================================================================

    int run() throws Exception {
        Instant started = Instant.now();
        String loadBefore = opts.getOrDefault("load-before", loadAverage());
        int totalStreams = accounts * perAccount;

        ConnectionProvider apiPool = ConnectionProvider.builder("api").maxConnections(Math.max(64, maxInFlight))
                .pendingAcquireMaxCount(-1).pendingAcquireTimeout(Duration.ofSeconds(30)).build();
        HttpClient api = HttpClient.create(apiPool).baseUrl(baseUrl)
                .responseTimeout(Duration.ofSeconds(30))
                .headers(h -> h.set(HttpHeaderNames.AUTHORIZATION, "Bearer " + adminKey)
                        .set(HttpHeaderNames.CONTENT_TYPE, "application/json")
                        .set(HttpHeaderNames.ACCEPT, "application/json"));
        ConnectionProvider streamPool = ConnectionProvider.builder("streams").maxConnections(totalStreams + 100)
                .pendingAcquireMaxCount(-1).pendingAcquireTimeout(Duration.ofSeconds(120)).build();
        HttpClient sse = HttpClient.create(streamPool).baseUrl(baseUrl)
                .headers(h -> h.set(HttpHeaderNames.AUTHORIZATION, "Bearer " + adminKey)
                        .set(HttpHeaderNames.ACCEPT, "text/event-stream"));

        Thread progress = null;
        try {
            // 1. accounts ----------------------------------------------------------------------------
            say("creating %d accounts", accounts);
            List<String> created = Flux.range(0, accounts)
                    .flatMap(i -> api.post().uri("/v1/accounts")
                            .send(ByteBufFlux.fromString(Mono.just("{\"currency\":\"EUR\",\"name\":\"stream-bench-" + i + "\"}")))
                            .responseSingle((resp, body) -> body.asString().defaultIfEmpty("").map(text -> {
                                Matcher m = ID.matcher(text);
                                if (resp.status().code() != 201 || !m.find()) {
                                    throw new IllegalStateException("POST /v1/accounts: " + resp.status() + " " + text);
                                }
                                return m.group(1);
                            })), 16)
                    .collectList().block(Duration.ofSeconds(180));
            accountIds.addAll(created);
            say("created %d accounts", accountIds.size());
            if (batch > 0 || pgbenchWriter) {
                // Transfers need funds: one deposit per account, before anything is watched or measured.
                say("funding %d accounts", accounts);
                String fundRun = Long.toString(System.currentTimeMillis(), 36);
                Long funded = Flux.fromIterable(accountIds)
                        .flatMap(id -> api.headers(h -> h.set("Idempotency-Key", "stream-bench-fund-" + fundRun + "-" + id))
                                .post().uri("/v1/accounts/" + id + "/deposits")
                                .send(ByteBufFlux.fromString(Mono.just("{\"amount\":100000000,\"currency\":\"EUR\"}")))
                                .responseSingle((resp, body) -> body.asString().defaultIfEmpty("").map(text -> {
                                    if (resp.status().code() != 201) {
                                        throw new IllegalStateException("deposit: " + resp.status() + " " + text);
                                    }
                                    return 1;
                                })), 16)
                        .count().block(Duration.ofSeconds(180));
                say("funded %d accounts", funded);
            }
            if (pgbenchWriter) {
                fillBenchAccounts();
            }

            // 2. streams -----------------------------------------------------------------------------
            streams = new Stream[totalStreams];
            for (int i = 0; i < totalStreams; i++) {
                streams[i] = new Stream(i, i % accounts);
            }
            progress = startProgress();
            say("opening %d streams (%d per account) at %d/s", totalStreams, perAccount, openRate);
            long openStart = System.nanoTime();
            long openDeadline = openStart + TimeUnit.SECONDS.toNanos(intOpt("open-timeout", 120));
            for (int i = 0; i < totalStreams; i++) {
                long due = openStart + (long) (i * 1e9 / openRate);
                if (!sleepUntil(due, openDeadline)) {
                    say("open phase deadline reached after %d streams", i);
                    break;
                }
                open(sse, streams[i]);
            }
            long firstDeadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (streamsWithFirstEvent.sum() + streamsEnded.sum() < totalStreams && System.nanoTime() < firstDeadline) {
                Thread.sleep(200);
            }
            double openSeconds = (System.nanoTime() - openStart) / 1e9;
            long open = streamsWithFirstEvent.sum() - endedAfterFirst();
            say("streams with a first event: %d of %d after %.1f s (ended/failed: %d/%d)", streamsWithFirstEvent.sum(),
                    totalStreams, openSeconds, streamsEnded.sum(), streamsFailed.sum());

            // 3. server memory with every stream open --------------------------------------------------
            Thread.sleep(2000);
            Memory idle = serverMemory();
            say("server with %d streams open: heap used after full GC %.1f MB (committed %.1f MB), RSS %.1f MB, fds %d, threads %d",
                    open, idle.heapUsedAfterGcMb, idle.heapCommittedMb, idle.rssMb, idle.fds, idle.threads);

            // 4. baseline versions -------------------------------------------------------------------
            baseline = versions();

            // 5. changes -----------------------------------------------------------------------------
            Drive drive = pgbenchWriter ? drivePgbench() : driveApi(api);
            CpuSample cpuStart = drive.cpuStart;
            CpuSample cpuEnd = drive.cpuEnd;
            String loadAtMeasureStart = drive.loadAtMeasureStart;
            String loadAtMeasureEnd = drive.loadAtMeasureEnd;
            double measuredSeconds = drive.measuredSeconds;
            long sentAtMeasureStart = drive.sentAtMeasureStart;
            long sentAtMeasureEnd = drive.sentAtMeasureEnd;

            // 6. drain: every watcher must reach its account's last version ---------------------------
            long[] finalVersions = versions();
            long drainStart = System.nanoTime();
            long drainDeadline = drainStart + TimeUnit.SECONDS.toNanos(drainSeconds);
            long behind;
            do {
                behind = 0;
                for (Stream s : streams) {
                    if (!s.ended && s.lastVersion < finalVersions[s.account]) {
                        behind++;
                    }
                }
                if (behind == 0) {
                    break;
                }
                Thread.sleep(100);
            } while (System.nanoTime() < drainDeadline);
            say("drain: %d streams behind their account's last version after %.1f s", behind,
                    (System.nanoTime() - drainStart) / 1e9);

            long expected = 0;
            long delivered = 0;
            long missing = 0;
            long extra = 0;
            long changes = 0;
            for (int a = 0; a < accounts; a++) {
                changes += finalVersions[a] - baseline[a];
            }
            long lostWithEndedStreams = 0;
            long endedStreams = 0;
            for (Stream s : streams) {
                // A stream that opened after the changes began starts at the head of that moment: it is
                // owed the versions from its first event on, not those committed before it opened.
                long from = Math.max(baseline[s.account], s.firstVersion - 1);
                long exp = Math.max(0, finalVersions[s.account] - from);
                long got = s.counted;
                if (s.ended) {
                    // A stream the server ended or that failed: what it did not get is counted apart.
                    endedStreams++;
                    lostWithEndedStreams += Math.max(0, exp - got);
                    delivered += got;
                    continue;
                }
                expected += exp;
                delivered += got;
                missing += Math.max(0, exp - got);
                extra += Math.max(0, got - exp);
            }
            Memory after = serverMemory();
            say("server after the run: heap used after full GC %.1f MB, RSS %.1f MB", after.heapUsedAfterGcMb, after.rssMb);

            // 7. report ------------------------------------------------------------------------------
            Report r = new Report();
            r.started = started;
            r.loadBefore = loadBefore;
            r.loadMeasureStart = loadAtMeasureStart;
            r.loadMeasureEnd = loadAtMeasureEnd;
            r.loadAfter = loadAverage();
            r.totalStreams = totalStreams;
            r.openStreams = open;
            r.openSeconds = openSeconds;
            r.idle = idle;
            r.after = after;
            r.changes = changes;
            r.measuredSeconds = measuredSeconds;
            r.sentMeasured = sentAtMeasureEnd - sentAtMeasureStart;
            r.expected = expected;
            r.delivered = delivered;
            r.missing = missing;
            r.extra = extra;
            r.behind = behind;
            r.endedStreams = endedStreams;
            r.lostWithEndedStreams = lostWithEndedStreams;
            r.cpuStart = cpuStart;
            r.cpuEnd = cpuEnd;
            int rc = writeReport(r);
            return rc;
        } finally {
            if (pgbench != null) {
                pgbench.destroy();
            }
            if (progress != null) {
                progress.interrupt();
            }
            streamPool.disposeLater().block(Duration.ofSeconds(20));
            apiPool.disposeLater().block(Duration.ofSeconds(20));
        }
    }

    /** What a drive phase leaves for the report: the measured window's bounds, CPU and load. */
    static final class Drive {
        CpuSample cpuStart;
        CpuSample cpuEnd;
        String loadAtMeasureStart;
        String loadAtMeasureEnd;
        double measuredSeconds;
        long sentAtMeasureStart;
        long sentAtMeasureEnd = -1;
    }

    /** The changes through this replica's own API, open loop: transfer batches (or deposits) on a schedule. */
    private Drive driveApi(HttpClient api) throws InterruptedException {
        int changesPerRequest = batch > 0 ? 2 * batch : 1;
        double requestRate = (double) changeRate / changesPerRequest;
        int total = (int) Math.round(requestRate * (warmupSeconds + measureSeconds));
        say("driving %d balance changes/s for %d s warm-up + %d s measured: %s (open loop, at most %d in flight)",
                changeRate, warmupSeconds, measureSeconds, batch > 0
                        ? String.format(Locale.ROOT, "%.1f batches/s of %d transfers", requestRate, batch)
                        : changeRate + " deposits/s", maxInFlight);
        int[] order = new int[accounts];
        for (int i = 0; i < accounts; i++) {
            order[i] = i;
        }
        Random random = new Random(42);
        for (int i = accounts - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        String runId = Long.toString(System.currentTimeMillis(), 36);
        long driveStart = System.nanoTime();
        long driveDeadline = driveStart + TimeUnit.SECONDS.toNanos(warmupSeconds + measureSeconds + 10);
        long measureStartNanos = driveStart + TimeUnit.SECONDS.toNanos(warmupSeconds);
        Drive d = new Drive();
        for (int i = 0; i < total; i++) {
            long due = driveStart + (long) (i * 1e9 / requestRate);
            if (d.cpuStart == null && due >= measureStartNanos) {
                sleepUntil(measureStartNanos, driveDeadline);
                long nowMicros = nowMicros();
                measureFromMicros = nowMicros;
                latencyMeasured.reset();
                d.cpuStart = cpuSample();
                d.sentAtMeasureStart = depositsSent.sum();
                d.loadAtMeasureStart = loadAverage();
                say("measuring from now");
            }
            if (!sleepUntil(due, driveDeadline)) {
                say("drive deadline reached after %d deposits", i);
                break;
            }
            if (inFlight.get() >= maxInFlight) {
                depositsSkipped.add(changesPerRequest);
                continue;
            }
            if (batch > 0) {
                transferBatch(api, order, i, runId + "-" + i);
            } else {
                deposit(api, accountIds.get(order[i % accounts]), runId + "-" + i);
            }
        }
        long measureEndNanos = System.nanoTime();
        measureToMicros = nowMicros();
        d.cpuEnd = cpuSample();
        d.sentAtMeasureEnd = depositsSent.sum();
        d.loadAtMeasureEnd = loadAverage();
        d.measuredSeconds = (measureEndNanos - measureStartNanos) / 1e9;
        say("drive done: %d sent, %d skipped (in-flight bound), waiting for in-flight deposits", depositsSent.sum(),
                depositsSkipped.sum());
        long inflightDeadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(35);
        while (inFlight.get() > 0 && System.nanoTime() < inflightDeadline) {
            Thread.sleep(50);
        }
        return d;
    }

    /**
     * The changes committed by pgbench instead, open loop ({@code -R}): the application's transfer
     * transaction, each followed by the announcement a replica makes after commit. This replica writes
     * nothing; it hears of the changes only through its LISTEN connection, as it hears of other
     * replicas' writes. The window is pgbench's schedule: {@code -T} warm-up + measured seconds.
     */
    private Drive drivePgbench() throws Exception {
        int clients = intOpt("pgbench-clients", 8);
        int threads = Math.min(clients, intOpt("pgbench-threads", 2));
        double transfersPerSecond = changeRate / 2.0;
        double transactionsPerSecond = transfersPerSecond / pgbenchBatch;
        int seconds = warmupSeconds + measureSeconds;
        // pgbench writes on for TAIL_SECONDS after the measured window: the window closes (and its CPU is
        // read) while pgbench and its backends are still at work, not while they shut down.
        int pgbenchSeconds = seconds + PGBENCH_TAIL_SECONDS;
        pgbenchMajor = PgbenchWriter.majorVersion(required("pgbench"));
        if (pgbenchMajor == 0) {
            throw new IllegalStateException("pgbench cannot be run: " + required("pgbench"));
        }
        PgbenchWriter w = new PgbenchWriter(required("pgbench"), opts.getOrDefault("pg-host", "127.0.0.1"),
                intOpt("pg-port", 5432), opts.getOrDefault("jdbc-user", "postgres"), opts.getOrDefault("pg-database", "postgres"),
                Path.of(required("pgbench-script")), Path.of(opts.getOrDefault("pgbench-dir", "pgbench")), clients, threads,
                transactionsPerSecond, pgbenchSeconds, pgbenchMajor);
        say("driving %d balance changes/s for %d s warm-up + %d s measured: pgbench, %.1f transfers/s in transactions of %d (%.1f/s, open loop, -R), %d clients, %d threads",
                changeRate, warmupSeconds, measureSeconds, transfersPerSecond, pgbenchBatch, transactionsPerSecond, clients, threads);
        say("pgbench: %s", String.join(" ", w.command));
        Drive d = new Drive();
        long driveStart = System.nanoTime();
        w.start();
        pgbench = w;
        String pidFile = opts.get("pgbench-pid-file");
        if (pidFile != null) {
            Files.writeString(Path.of(pidFile), Long.toString(w.pid()));
        }
        long measureStartNanos = driveStart + TimeUnit.SECONDS.toNanos(warmupSeconds);
        long measureEndNanos = driveStart + TimeUnit.SECONDS.toNanos(seconds);
        // Polls, so that a pgbench that ends early (it failed) ends the wait too.
        while (w.alive() && System.nanoTime() < measureStartNanos) {
            LockSupport.parkNanos(Math.min(TimeUnit.MILLISECONDS.toNanos(200), Math.max(1, measureStartNanos - System.nanoTime())));
        }
        long from = System.nanoTime();
        measureFromMicros = nowMicros();
        latencyMeasured.reset();
        d.cpuStart = cpuSample();
        d.loadAtMeasureStart = loadAverage();
        say("measuring from now%s", w.alive() ? "" : " (pgbench has already ended)");
        while (w.alive() && System.nanoTime() < measureEndNanos) {
            LockSupport.parkNanos(Math.min(TimeUnit.MILLISECONDS.toNanos(200), Math.max(1, measureEndNanos - System.nanoTime())));
        }
        long to = System.nanoTime();
        long toMicros = nowMicros();
        measureToMicros = toMicros;
        d.cpuEnd = cpuSample();
        d.loadAtMeasureEnd = loadAverage();
        d.measuredSeconds = (to - from) / 1e9;
        if (!w.alive()) {
            say("pgbench ended before the end of the measured window");
        }
        w.awaitExit(PGBENCH_TAIL_SECONDS + 60, pgbenchSummary);
        w.read(pgbenchSummary, measureFromMicros, toMicros);
        committedInWindow = committedBetween(measureFromMicros, toMicros);
        say("pgbench exited with %d%s: %.1f tx/s, %d processed, %d failed, latency average %.3f ms, schedule lag avg %.3f ms (max %.3f ms); "
                        + "%d balance changes committed in the measured window (%.1f/s)",
                pgbenchSummary.exitCode, pgbenchSummary.killed ? " (killed: it overran -T by 60 s)" : "", pgbenchSummary.tps,
                pgbenchSummary.processed, pgbenchSummary.failed, pgbenchSummary.latencyAverageMs, pgbenchSummary.lagAverageMs,
                pgbenchSummary.lagMaxMs, committedInWindow, committedInWindow / d.measuredSeconds);
        return d;
    }

    /**
     * {@code bench.accounts(n, id, client, owner)}, the table the main benchmark's transfer script picks
     * accounts from (same shape as its Seeder makes), filled with this run's accounts: n = 1..N in the
     * order they were created, client 0 (one API caller created them all), owner = the account's owner
     * in the ledger, which is the caller that opened it and so the idempotency scope the application
     * uses for that caller's transfers.
     */
    private void fillBenchAccounts() throws Exception {
        try (Connection c = DriverManager.getConnection(required("jdbc-url"), opts.getOrDefault("jdbc-user", "postgres"),
                opts.getOrDefault("jdbc-password", ""));
             java.sql.Statement st = c.createStatement()) {
            st.setQueryTimeout(60);
            st.execute("CREATE SCHEMA IF NOT EXISTS bench");
            st.execute("CREATE TABLE IF NOT EXISTS bench.accounts (n int PRIMARY KEY, id uuid NOT NULL UNIQUE, "
                    + "client int NOT NULL, owner uuid)");
            st.execute("TRUNCATE bench.accounts");
            int inserted;
            try (PreparedStatement ps = c.prepareStatement("""
                    INSERT INTO bench.accounts (n, id, client, owner)
                    SELECT o.n, a.id, 0, a.owner_id
                      FROM unnest(?::uuid[]) WITH ORDINALITY AS o(id, n)
                      JOIN accounts a ON a.id = o.id""")) {
                ps.setArray(1, c.createArrayOf("uuid", accountIds.toArray()));
                ps.setQueryTimeout(60);
                inserted = ps.executeUpdate();
            }
            if (inserted != accounts) {
                throw new IllegalStateException("bench.accounts: " + inserted + " rows for " + accounts + " accounts");
            }
            st.execute("ANALYZE bench.accounts");
            try (ResultSet rs = st.executeQuery("SELECT count(DISTINCT owner), count(*) FILTER (WHERE owner IS NULL) FROM bench.accounts")) {
                rs.next();
                say("bench.accounts: %d accounts for pgbench, %d distinct owner(s), %d without an owner", inserted,
                        rs.getLong(1), rs.getLong(2));
            }
        }
    }

    /** Balance changes of this run's accounts whose created_at lies in [from, to) (microseconds since the epoch). */
    private long committedBetween(long fromMicros, long toMicros) throws Exception {
        try (Connection c = DriverManager.getConnection(required("jdbc-url"), opts.getOrDefault("jdbc-user", "postgres"),
                opts.getOrDefault("jdbc-password", ""));
             PreparedStatement ps = c.prepareStatement("""
                     SELECT count(*) FROM balances
                      WHERE account_id = ANY (?::uuid[])
                        AND created_at >= timestamptz 'epoch' + ? * interval '1 microsecond'
                        AND created_at < timestamptz 'epoch' + ? * interval '1 microsecond'""")) {
            ps.setArray(1, c.createArrayOf("text", accountIds.toArray()));
            ps.setLong(2, fromMicros);
            ps.setLong(3, toMicros);
            ps.setQueryTimeout(60);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getLong(1);
            }
        }
    }

    private long endedAfterFirst() {
        long n = 0;
        for (Stream s : streams) {
            if (s.ended && s.firstAt != 0) {
                n++;
            }
        }
        return n;
    }

    private static boolean sleepUntil(long due, long deadline) {
        while (true) {
            long now = System.nanoTime();
            if (now >= deadline) {
                return false;
            }
            long wait = Math.min(due, deadline) - now;
            if (wait <= 0) {
                return true;
            }
            LockSupport.parkNanos(wait);
        }
    }

    private static long nowMicros() {
        Instant now = Instant.now();
        return now.getEpochSecond() * 1_000_000L + now.getNano() / 1_000;
    }

    // ---- deposits -----------------------------------------------------------------------------------

    /**
     * Request {@code i} of the drive: {@code batch} transfers of 1 cent between consecutive pairs of the
     * shuffled accounts, a different window of them each time, so every account in it changes once.
     */
    private void transferBatch(HttpClient api, int[] order, int i, String key) {
        StringBuilder body = new StringBuilder("{\"transfers\":[");
        int first = (int) ((long) i * 2 * batch % accounts);
        for (int t = 0; t < batch; t++) {
            String from = accountIds.get(order[(first + 2 * t) % accounts]);
            String to = accountIds.get(order[(first + 2 * t + 1) % accounts]);
            body.append(t == 0 ? "" : ",").append("{\"fromAccountId\":\"").append(from).append("\",\"toAccountId\":\"")
                    .append(to).append("\",\"amount\":1,\"currency\":\"EUR\"}");
        }
        movement(api, "/v1/transfer-batches", body.append("]}").toString(), key, 2 * batch);
    }

    private void deposit(HttpClient api, String accountId, String key) {
        movement(api, "/v1/accounts/" + accountId + "/deposits", "{\"amount\":1,\"currency\":\"EUR\"}", key, 1);
    }

    /** One money movement request; {@code changes} balance changes are counted as sent. */
    private void movement(HttpClient api, String path, String json, String key, int changes) {
        inFlight.incrementAndGet();
        depositsSent.add(changes);
        long start = System.nanoTime();
        api.headers(h -> h.set("Idempotency-Key", "stream-bench-" + key))
                .post().uri(path)
                .send(ByteBufFlux.fromString(Mono.just(json)))
                .responseSingle((resp, body) -> body.asString().defaultIfEmpty("").map(text -> {
                    int code = resp.status().code();
                    if (code != 201 && depositProblems.size() < 10) {
                        depositProblems.add(code + " " + text.substring(0, Math.min(300, text.length())));
                    }
                    return code;
                }))
                .subscribe(code -> {
                    depositLatency.recordValue(Math.max(0, (System.nanoTime() - start) / 1000));
                    depositStatus.computeIfAbsent(code, c -> new LongAdder()).increment();
                    if (code == 201) {
                        depositsOk.add(changes);
                    } else {
                        depositsFailed.add(changes);
                    }
                    inFlight.decrementAndGet();
                }, error -> {
                    depositsFailed.add(changes);
                    depositStatus.computeIfAbsent(-1, c -> new LongAdder()).increment();
                    if (depositProblems.size() < 10) {
                        depositProblems.add("error " + error);
                    }
                    inFlight.decrementAndGet();
                });
    }

    // ---- streams ------------------------------------------------------------------------------------

    private void open(HttpClient sse, Stream s) {
        sse.get().uri("/v1/accounts/" + accountIds.get(s.account) + "/balance/stream")
                .response((resp, body) -> {
                    int code = resp.status().code();
                    streamStatus.computeIfAbsent(code, c -> new LongAdder()).increment();
                    if (code != 200) {
                        return body.aggregate().asString().defaultIfEmpty("").doOnNext(text -> {
                            if (streamProblems.size() < 10) {
                                streamProblems.add("stream " + s.index + ": " + code + " " + text.substring(0, Math.min(300, text.length())));
                            }
                        }).then();
                    }
                    streamsConnected.increment();
                    return body.asString(StandardCharsets.UTF_8).doOnNext(s::onChunk).then();
                })
                .subscribe(ignored -> {
                }, error -> {
                    s.ended = true;
                    streamsEnded.increment();
                    streamsFailed.increment();
                    if (streamProblems.size() < 10) {
                        streamProblems.add("stream " + s.index + ": " + error);
                    }
                }, () -> {
                    s.ended = true;
                    streamsEnded.increment();
                    if (streamProblems.size() < 10) {
                        streamProblems.add("stream " + s.index + " ended by the server after " + s.events + " events");
                    }
                });
    }

    /** One SSE stream; its callbacks run on one event-loop thread at a time. */
    final class Stream {
        final int index;
        final int account;
        private final StringBuilder buffer = new StringBuilder();
        volatile long lastVersion = -1;
        /** The version of the stream's first event: versions before it were never its to receive. */
        volatile long firstVersion = -1;
        volatile long counted; // events after the account's baseline version
        volatile long firstAt;
        volatile boolean ended;
        long events;

        Stream(int index, int account) {
            this.index = index;
            this.account = account;
        }

        void onChunk(String chunk) {
            long receivedMicros = nowMicros();
            buffer.append(chunk);
            int end;
            while ((end = eventEnd()) >= 0) {
                String block = buffer.substring(0, end);
                buffer.delete(0, end + (buffer.charAt(end) == '\r' ? 4 : 2));
                onEvent(block, receivedMicros);
            }
            if (buffer.length() > 1_000_000) {
                throw new IllegalStateException("no event boundary in 1 MB");
            }
        }

        private int eventEnd() {
            int lf = buffer.indexOf("\n\n");
            int crlf = buffer.indexOf("\r\n\r\n");
            if (lf < 0) {
                return crlf;
            }
            return crlf < 0 ? lf : Math.min(lf, crlf);
        }

        private void onEvent(String block, long receivedMicros) {
            String data = null;
            boolean comment = false;
            for (String line : block.split("\r?\n")) {
                if (line.startsWith("data:")) {
                    data = data == null ? line.substring(5) : data + "\n" + line.substring(5);
                } else if (line.startsWith(":")) {
                    comment = true;
                }
            }
            if (data == null) {
                if (comment) {
                    heartbeats.increment();
                }
                return;
            }
            Matcher vm = VERSION.matcher(data);
            if (!vm.find()) {
                if (streamProblems.size() < 10) {
                    streamProblems.add("stream " + index + ": event without a version: " + data);
                }
                return;
            }
            long version = Long.parseLong(vm.group(1));
            events++;
            StreamBench.this.events.increment();
            if (firstAt == 0) {
                firstAt = receivedMicros;
                firstVersion = version;
                streamsWithFirstEvent.increment();
            }
            long last = lastVersion;
            if (last >= 0 && version <= last) {
                duplicatesOrReordered.increment();
                return;
            }
            if (last >= 0 && version > last + 1) {
                gaps.add(version - last - 1);
            }
            lastVersion = version;
            long[] base = baseline;
            if (base == null || version <= base[account]) {
                return;
            }
            counted++;
            Matcher cm = CREATED.matcher(data);
            if (!cm.find() || cm.group(2) == null) {
                return;
            }
            long createdMicros = parseMicros(cm.group(2));
            long latency = receivedMicros - createdMicros;
            if (latency < 0) {
                negativeLatency.increment();
                latency = 0;
            }
            latencyAll.recordValue(latency);
            latencyInterval.recordValue(latency);
            if (createdMicros >= measureFromMicros && createdMicros < measureToMicros) {
                latencyMeasured.recordValue(latency);
                eventsMeasured.increment();
            }
        }
    }

    private static long parseMicros(String text) {
        Instant t;
        try {
            t = Instant.parse(text);
        } catch (RuntimeException e) {
            t = OffsetDateTime.parse(text).toInstant();
        }
        return t.getEpochSecond() * 1_000_000L + t.getNano() / 1_000;
    }

    // ---- progress -------------------------------------------------------------------------------------

    private Thread startProgress() {
        Thread t = new Thread(() -> {
            long lastEvents = 0;
            long lastOk = 0;
            int ticks = 0;
            while (!Thread.currentThread().isInterrupted() && ticks++ < 3600) {
                try {
                    Thread.sleep(1000);
                } catch (InterruptedException e) {
                    return;
                }
                Histogram h = latencyInterval.getIntervalHistogram();
                long ev = events.sum();
                long ok = depositsOk.sum();
                String writes = pgbenchWriter
                        ? (pgbench == null ? "pgbench not started" : pgbench.alive() ? "pgbench writing" : "pgbench ended")
                        : String.format(Locale.ROOT, "deposits %d/s ok, %d failed, %d skipped, %d in flight", ok - lastOk,
                                depositsFailed.sum(), depositsSkipped.sum(), inFlight.get());
                System.out.printf(Locale.ROOT,
                        "  streams %d connected, %d with first event, %d ended | %s | events %d/s, interval p50 %.1f ms p99 %.1f ms max %.1f ms%n",
                        streamsConnected.sum(), streamsWithFirstEvent.sum(), streamsEnded.sum(), writes, ev - lastEvents,
                        h.getValueAtPercentile(50) / 1000.0, h.getValueAtPercentile(99) / 1000.0, h.getMaxValue() / 1000.0);
                lastEvents = ev;
                lastOk = ok;
            }
        }, "progress");
        t.setDaemon(true);
        t.start();
        return t;
    }

    // ---- database ------------------------------------------------------------------------------------

    /** Each account's latest balance version (0 before its first movement), read over JDBC. */
    private long[] versions() throws Exception {
        long[] result = new long[accounts];
        Map<String, Integer> index = new HashMap<>();
        for (int i = 0; i < accountIds.size(); i++) {
            index.put(accountIds.get(i), i);
        }
        try (Connection c = DriverManager.getConnection(required("jdbc-url"), opts.getOrDefault("jdbc-user", "postgres"),
                opts.getOrDefault("jdbc-password", ""));
             PreparedStatement ps = c.prepareStatement(
                     "SELECT account_id::text, max(version) FROM balances WHERE account_id = ANY (?::uuid[]) GROUP BY account_id")) {
            ps.setArray(1, c.createArrayOf("text", accountIds.toArray()));
            ps.setQueryTimeout(60);
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    Integer i = index.get(rs.getString(1));
                    if (i != null) {
                        result[i] = rs.getLong(2);
                    }
                }
            }
        }
        return result;
    }

    // ---- server process --------------------------------------------------------------------------------

    static final class Memory {
        double heapUsedAfterGcMb = Double.NaN;
        double heapCommittedMb = Double.NaN;
        double rssMb = Double.NaN;
        long fds = -1;
        long threads = -1;
        String heapInfo = "";
    }

    private Memory serverMemory() {
        Memory m = new Memory();
        if (serverPid <= 0) {
            return m;
        }
        // The server's own JDK's jcmd (run.sh sets it): the server may run on another Java than this client.
        String jcmd = System.getenv().getOrDefault("STREAMS_JCMD", "jcmd");
        exec(30, jcmd, Long.toString(serverPid), "GC.run");
        String info = exec(30, jcmd, Long.toString(serverPid), "GC.heap_info");
        m.heapInfo = info.strip();
        // G1 prints one line for its heap; the serial and parallel collectors one per generation: add them up.
        Matcher hm = Pattern.compile("total (?:reserved )?(\\d+)K, (?:committed (\\d+)K, )?used (\\d+)K").matcher(info);
        long committedK = 0;
        long usedK = 0;
        boolean found = false;
        while (hm.find()) {
            long total = Long.parseLong(hm.group(1));
            committedK += hm.group(2) != null ? Long.parseLong(hm.group(2)) : total;
            usedK += Long.parseLong(hm.group(3));
            found = true;
        }
        if (found) {
            m.heapCommittedMb = committedK / 1024.0;
            m.heapUsedAfterGcMb = usedK / 1024.0;
        }
        String status = read(Path.of("/proc/" + serverPid + "/status"));
        Matcher rss = Pattern.compile("VmRSS:\\s+(\\d+) kB").matcher(status);
        if (rss.find()) {
            m.rssMb = Long.parseLong(rss.group(1)) / 1024.0;
        }
        Matcher th = Pattern.compile("Threads:\\s+(\\d+)").matcher(status);
        if (th.find()) {
            m.threads = Long.parseLong(th.group(1));
        }
        try (var list = Files.list(Path.of("/proc/" + serverPid + "/fd"))) {
            m.fds = list.count();
        } catch (IOException e) {
            // not ours to see
        }
        return m;
    }

    private static String exec(int timeoutSeconds, String... command) {
        try {
            Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
            if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                return "";
            }
            return new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException | InterruptedException e) {
            return "";
        }
    }

    private static String read(Path path) {
        try {
            return Files.readString(path);
        } catch (IOException e) {
            return "";
        }
    }

    static String loadAverage() {
        String[] parts = read(Path.of("/proc/loadavg")).trim().split("\\s+");
        return parts.length >= 3 ? parts[0] + " " + parts[1] + " " + parts[2] : "?";
    }

    /** CPU ticks (user + system) of this JVM, the server and PostgreSQL (postmaster and its children). */
    static final class CpuSample {
        long nanos = System.nanoTime();
        long self;
        long server;
        long postgres;
        /** PostgreSQL's ticks per process (postmaster and children): backends come and go during a window. */
        final Map<Long, Long> postgresByPid = new HashMap<>();
        /** The pgbench writer's own process (its client threads), -1 when it is not running. */
        long pgbench = -1;
        long machineBusy;
        long machineTotal;
    }

    private CpuSample cpuSample() {
        CpuSample s = new CpuSample();
        s.self = ticks(ProcessHandle.current().pid());
        s.server = serverPid > 0 ? ticks(serverPid) : 0;
        PgbenchWriter w = pgbench;
        if (w != null && w.alive()) {
            long t = ticks(w.pid());
            s.pgbench = w.alive() ? t : -1;
        }
        if (postgresPid > 0) {
            s.postgres = ticks(postgresPid);
            s.postgresByPid.put(postgresPid, s.postgres);
            for (ProcessHandle child : ProcessHandle.of(postgresPid).map(p -> p.children().toList()).orElse(List.of())) {
                long t = ticks(child.pid());
                s.postgres += t;
                s.postgresByPid.put(child.pid(), t);
            }
        }
        String[] cpu = read(Path.of("/proc/stat")).lines().findFirst().orElse("cpu 0").trim().split("\\s+");
        long total = 0;
        for (int i = 1; i < cpu.length; i++) {
            total += Long.parseLong(cpu[i]);
        }
        long idle = cpu.length > 5 ? Long.parseLong(cpu[4]) + Long.parseLong(cpu[5]) : 0;
        s.machineTotal = total;
        s.machineBusy = total - idle;
        return s;
    }

    /**
     * PostgreSQL's ticks in a window, process by process: what each process alive at the end used since
     * the start (all of it if it started inside the window). A process that ended inside the window (a
     * closed connection's backend) is not counted: its ticks are gone with it, and subtracting the sum
     * at the start from the sum at the end would count them negatively.
     */
    private static long postgresTicks(CpuSample start, CpuSample end) {
        long sum = 0;
        for (Map.Entry<Long, Long> e : end.postgresByPid.entrySet()) {
            sum += Math.max(0, e.getValue() - start.postgresByPid.getOrDefault(e.getKey(), 0L));
        }
        return sum;
    }

    private static long ticks(long pid) {
        String stat = read(Path.of("/proc/" + pid + "/stat"));
        int close = stat.lastIndexOf(')');
        if (close < 0) {
            return 0;
        }
        String[] f = stat.substring(close + 2).split(" ");
        // after ")": state(0) ... utime is field 14 overall -> index 11 here, stime index 12
        return Long.parseLong(f[11]) + Long.parseLong(f[12]);
    }

    // ---- report ------------------------------------------------------------------------------------------

    static final class Report {
        Instant started;
        String loadBefore, loadMeasureStart, loadMeasureEnd, loadAfter;
        int totalStreams;
        long openStreams;
        double openSeconds;
        Memory idle, after;
        long changes;
        double measuredSeconds;
        long sentMeasured;
        long expected, delivered, missing, extra, behind, endedStreams, lostWithEndedStreams;
        CpuSample cpuStart, cpuEnd;
    }

    private int writeReport(Report r) throws IOException {
        double p99TargetMs = Double.parseDouble(opts.getOrDefault("p99-target-ms", "100"));
        Histogram h = latencyMeasured.copy();
        double p50 = h.getValueAtPercentile(50) / 1000.0;
        double p90 = h.getValueAtPercentile(90) / 1000.0;
        double p99 = h.getValueAtPercentile(99) / 1000.0;
        double p999 = h.getValueAtPercentile(99.9) / 1000.0;
        double max = h.getMaxValue() / 1000.0;
        Histogram all = latencyAll.copy();
        // The API writer: changes sent in the window. The pgbench writer: changes committed in the window,
        // counted in the database (balance rows of the run's accounts with created_at inside it).
        double rateAchieved = (pgbenchWriter ? committedInWindow : r.sentMeasured) / r.measuredSeconds;
        double tickHz = 100.0;
        double wall = r.cpuStart == null ? Double.NaN : (r.cpuEnd.nanos - r.cpuStart.nanos) / 1e9;
        double selfCores = r.cpuStart == null ? Double.NaN : (r.cpuEnd.self - r.cpuStart.self) / tickHz / wall;
        double serverCores = r.cpuStart == null ? Double.NaN : (r.cpuEnd.server - r.cpuStart.server) / tickHz / wall;
        double pgCores = r.cpuStart == null ? Double.NaN : postgresTicks(r.cpuStart, r.cpuEnd) / tickHz / wall;
        double pgbenchCores = r.cpuStart == null || r.cpuStart.pgbench < 0 || r.cpuEnd.pgbench < 0 ? Double.NaN
                : (r.cpuEnd.pgbench - r.cpuStart.pgbench) / tickHz / wall;
        int cores = Runtime.getRuntime().availableProcessors();
        double machineBusy = r.cpuStart == null ? Double.NaN
                : cores * (double) (r.cpuEnd.machineBusy - r.cpuStart.machineBusy) / Math.max(1, r.cpuEnd.machineTotal - r.cpuStart.machineTotal);

        boolean streamsOk = r.openStreams >= r.totalStreams && streamsEnded.sum() == 0;
        // The heap target is only shown when every planned stream was open when the heap was measured.
        boolean heapOk = streamsOk && !Double.isNaN(r.idle.heapUsedAfterGcMb) && r.idle.heapUsedAfterGcMb < 512;
        PgbenchWriter.Summary pg = pgbenchSummary;
        boolean rateOk = pgbenchWriter
                ? rateAchieved >= changeRate * 0.98 && pg.exitCode == 0 && !pg.killed && pg.failed == 0 && pg.abortedClients == 0
                : rateAchieved >= changeRate * 0.98 && depositsFailed.sum() == 0 && depositsSkipped.sum() == 0;
        boolean latencyOk = h.getTotalCount() > 0 && p99 <= p99TargetMs;
        boolean completeOk = r.missing == 0 && r.lostWithEndedStreams == 0 && r.extra == 0 && duplicatesOrReordered.sum() == 0 && gaps.sum() == 0;
        boolean allOk = streamsOk && heapOk && rateOk && latencyOk && completeOk;

        String memTotal = read(Path.of("/proc/meminfo")).lines().filter(l -> l.startsWith("MemTotal")).findFirst().orElse("?")
                .replaceAll("\\s+", " ");
        String cpuModel = read(Path.of("/proc/cpuinfo")).lines().filter(l -> l.startsWith("model name")).findFirst()
                .map(l -> l.substring(l.indexOf(':') + 1).trim()).orElse("?");

        StringBuilder o = new StringBuilder();
        o.append("# Balance streams on one replica: results\n\n");
        o.append("Figures from a **shared, noisy 2-core machine**: other benchmarks and test suites were running at the same time\n");
        o.append("(see the load averages), and the load generator, the application and PostgreSQL share the same cores.\n");
        o.append("Treat them as a lower bound of what the application can do on dedicated hardware, not as a capacity figure.\n\n");
        if (pgbenchWriter) {
            o.append("**Writer: pgbench** (`--writer pgbench`). The balance changes were committed by pgbench, **not** through\n");
            o.append("the API of the replica under test. This is the model of the writes of the *other* replicas of a deployment:\n");
            o.append("each replica writes only its share of the changes, but every replica's watchers hear about all of them.\n");
            o.append("pgbench runs the application's own transfer transaction (generated from the application's sources by the\n");
            o.append("main benchmark's generator, `java -jar bench/target/paystream-bench.jar pgbench-script`) and after each\n");
            o.append("COMMIT announces the two accounts it changed exactly as a replica does after a commit\n");
            o.append("(`pg_notify('paystream_balances', '<debit>,<credit>')`). The replica under test writes nothing: it only\n");
            o.append("serves the streams, and hears of every change through its LISTEN connection. Do not compare these figures\n");
            o.append("with a run of the API writer (`--writer api`), where the same replica also makes the writes.\n\n");
        } else {
            o.append("**Writer: api** (`--writer api`, the default). The balance changes were made through the HTTP API of the\n");
            o.append("replica under test (").append(batch > 0 ? "transfer batches" : "deposits")
                    .append("), so this one replica both writes them and serves the streams.\n\n");
        }
        o.append("## Verdict\n\n");
        o.append("| target | result | met |\n|---|---|---|\n");
        o.append(row("concurrent streams on one replica", ">= " + r.totalStreams, r.openStreams + " open with a first event, " + streamsEnded.sum() + " ended/failed", streamsOk));
        o.append(row("server heap", "within -Xmx512m", streamsOk
                ? fmt("%.1f MB used after a full GC (all streams open)", r.idle.heapUsedAfterGcMb)
                : fmt("not shown: %.1f MB used after a full GC with only %d of %d streams open", r.idle.heapUsedAfterGcMb, r.openStreams, r.totalStreams), heapOk));
        o.append(row("change rate", changeRate + "/s", pgbenchWriter
                ? fmt("%.1f/s committed by pgbench in the measured window (counted in the database); pgbench %.1f transfers/s over its run%s, %d failed, exit %d%s",
                        rateAchieved, pg.tps * pgbenchBatch, pgbenchBatch == 1 ? "" : " in batches of " + pgbenchBatch, pg.failed,
                        pg.exitCode, pg.killed ? " (killed)" : "")
                : fmt("%.1f/s sent in the measured window, %d failed, %d skipped", rateAchieved, depositsFailed.sum(), depositsSkipped.sum()), rateOk));
        o.append(row("change-to-watcher latency", "p99 <= " + (long) p99TargetMs + " ms", fmt("p99 %.1f ms", p99), latencyOk));
        o.append(row("every change reaches every watcher", "missing 0, no duplicate/reorder", fmt("missing %d on open streams (+%d on %d ended/failed streams), extra %d, duplicate/reordered %d, gaps %d", r.missing, r.lostWithEndedStreams, r.endedStreams, r.extra, duplicatesOrReordered.sum(), gaps.sum()), completeOk));
        o.append("\n**All targets met: ").append(allOk ? "yes" : "no").append("**\n\n");

        o.append("## Machine and run\n\n");
        o.append("| | |\n|---|---|\n");
        o.append("| date (UTC) | ").append(r.started.atOffset(ZoneOffset.UTC).format(DateTimeFormatter.ISO_LOCAL_DATE_TIME).substring(0, 19)).append(" |\n");
        o.append("| cores (nproc) | ").append(cores).append(" |\n");
        o.append("| memory | ").append(memTotal.replace("MemTotal: ", "")).append(" |\n");
        o.append("| CPU | ").append(cpuModel).append(" |\n");
        o.append("| Java | ").append(System.getProperty("java.vm.name")).append(' ').append(System.getProperty("java.version")).append(" |\n");
        o.append("| load average (1/5/15 min) before the run | ").append(r.loadBefore).append(" |\n");
        o.append("| load average at measure start / end | ").append(r.loadMeasureStart).append(" / ").append(r.loadMeasureEnd).append(" |\n");
        o.append("| load average after the run | ").append(r.loadAfter).append(" |\n");
        o.append("| command | `").append(opts.getOrDefault("command-line", "bench/streams/run.sh")).append("` |\n");
        o.append("| writer | ").append(pgbenchWriter ? "**pgbench** (writes of other replicas; the replica under test only serves streams)"
                : "**api** (the replica under test writes and serves)").append(" |\n");
        o.append("| application built from | ").append(opts.getOrDefault("app-desc", "?")).append(" |\n");
        o.append("| server | ").append(opts.getOrDefault("server-desc", "?")).append(" |\n");
        o.append("| PostgreSQL | ").append(opts.getOrDefault("postgres-desc", "?")).append(" |\n");
        o.append("| load generator | this one JVM: ").append(opts.getOrDefault("client-desc", "")).append(" |\n");
        o.append("| file-descriptor limit (client / server) | ").append(opts.getOrDefault("fd-limit", "?")).append(" |\n");
        if (pgbenchWriter) {
            o.append("| plan | ").append(accounts).append(" accounts x ").append(perAccount).append(" streams, opened at ").append(openRate)
                    .append("/s; pgbench transfers of 1 to 100 between two random accounts (2 balance changes each), ")
                    .append(pgbenchBatch == 1 ? "one per transaction, " : "in transfer batches of " + pgbenchBatch + " (the transaction of `POST /v1/transfer-batches`, "
                            + fmt("%.1f", changeRate / 2.0 / pgbenchBatch) + " batches/s), ")
                    .append(fmt("%.1f", changeRate / 2.0)).append(" transfers/s = ").append(changeRate)
                    .append(" balance changes/s (open loop, `-R`), ").append(warmupSeconds).append(" s warm-up + ").append(measureSeconds)
                    .append(" s measured + ").append(PGBENCH_TAIL_SECONDS).append(" s more writes (not measured), then up to ")
                    .append(drainSeconds).append(" s for the last events |\n\n");
        } else {
            o.append("| plan | ").append(accounts).append(" accounts x ").append(perAccount).append(" streams, opened at ").append(openRate)
                    .append("/s; ").append(batch > 0 ? "batches of " + batch + " transfers of 1 (" + 2 * batch + " balance changes each)" : "deposits of 1")
                    .append(", ").append(changeRate).append(" balance changes/s round-robin over the accounts (open loop, at most ")
                    .append(maxInFlight).append(" in flight), ").append(warmupSeconds).append(" s warm-up + ").append(measureSeconds)
                    .append(" s measured, then up to ").append(drainSeconds).append(" s for the last events |\n\n");
        }

        o.append("## Streams and memory\n\n");
        o.append("| | with all streams open, before the changes | after the run |\n|---|---|---|\n");
        o.append("| streams open (first event received) | ").append(r.openStreams).append(" of ").append(r.totalStreams)
                .append(fmt(" (opened in %.1f s)", r.openSeconds)).append(" | ").append(r.totalStreams - streamsEnded.sum()).append(" not ended |\n");
        o.append(fmt("| server heap used after a full GC | %.1f MB | %.1f MB |\n", r.idle.heapUsedAfterGcMb, r.after.heapUsedAfterGcMb));
        o.append(fmt("| server heap committed | %.1f MB | %.1f MB |\n", r.idle.heapCommittedMb, r.after.heapCommittedMb));
        o.append(fmt("| server RSS | %.1f MB | %.1f MB |\n", r.idle.rssMb, r.after.rssMb));
        o.append("| server open file descriptors | ").append(r.idle.fds).append(" | ").append(r.after.fds).append(" |\n");
        o.append("| server threads | ").append(r.idle.threads).append(" | ").append(r.after.threads).append(" |\n");
        o.append(fmt("| per stream (heap after GC / streams) | %.1f KB | |\n\n", r.idle.heapUsedAfterGcMb * 1024 / Math.max(1, r.openStreams)));
        o.append("Stream responses by status: ").append(statusText(streamStatus)).append("\n\n");

        o.append("## Changes and delivery\n\n");
        o.append("| | |\n|---|---|\n");
        o.append(fmt("| measured window | %.2f s |\n", r.measuredSeconds));
        if (pgbenchWriter) {
            o.append(fmt("| change rate achieved (balance changes committed in the window, counted in the database / window) | %.1f/s (target %d/s) |\n",
                    rateAchieved, changeRate));
            o.append(fmt("| balance changes committed in the window (from the database) | %d |\n", committedInWindow));
            o.append(fmt("| transfers pgbench completed in the window (its per-transaction log) | %d (= %d balance changes), %d failed |\n",
                    pg.windowCompleted, 2 * pg.windowCompleted, pg.windowFailed));
        } else {
            o.append(fmt("| change rate achieved (balance changes sent in the window / window) | %.1f/s (target %d/s) |\n", rateAchieved, changeRate));
            o.append("| balance changes sent in total (warm-up + measured) | ").append(depositsSent.sum()).append(", ").append(depositsOk.sum())
                    .append(" in requests answered 201, ").append(depositsFailed.sum()).append(" failed, ").append(depositsSkipped.sum()).append(" skipped (in-flight bound) |\n");
            o.append("| money movement requests (").append(batch > 0 ? "transfer batches" : "deposits").append(") by status | ").append(statusText(depositStatus)).append(" |\n");
            o.append(fmt("| request response time p50 / p99 / max | %.1f / %.1f / %.1f ms |\n", depositLatency.getValueAtPercentile(50) / 1000.0,
                    depositLatency.getValueAtPercentile(99) / 1000.0, depositLatency.getMaxValue() / 1000.0));
        }
        o.append("| committed balance changes on the accounts (from the database, warm-up + measured) | ").append(r.changes).append(" |\n");
        o.append("| events expected on the streams still open (each change x its account's open watchers) | ").append(r.expected).append(" |\n");
        o.append("| events delivered (all streams) | ").append(r.delivered).append(" |\n");
        o.append("| missing on streams still open | ").append(r.missing).append(" |\n");
        o.append("| streams that ended or failed (any time) / events they did not get | ").append(r.endedStreams).append(" / ").append(r.lostWithEndedStreams).append(" |\n");
        o.append("| extra | ").append(r.extra).append(" |\n");
        o.append("| duplicate or out-of-order versions | ").append(duplicatesOrReordered.sum()).append(" |\n");
        o.append("| version gaps inside a stream | ").append(gaps.sum()).append(" |\n");
        o.append("| open streams still behind after the drain | ").append(r.behind).append(" |\n");
        o.append("| heartbeats received | ").append(heartbeats.sum()).append(" |\n\n");

        o.append("## Change-to-watcher latency\n\n");
        o.append("Receive time in the client minus the event's `createdAt` (PostgreSQL `clock_timestamp()` inside the\n");
        o.append("writing transaction), both read from this machine's clock, so it includes the commit itself, the\n");
        o.append("NOTIFY, the watcher's read from the ledger, the HTTP write and the client's own scheduling delay.\n");
        if (pgbenchWriter) {
            o.append("With the pgbench writer, `createdAt` is set in the transfer's posting statement (`Ledger.CHECK_AND_POST`);\n");
            o.append("the idempotency record and the COMMIT follow, then pgbench's NOTIFY in its own statement. One transfer is one\n");
            o.append("transaction (no batches). A replica coalesces its commits for up to 10 ms (`BalanceChanges.FLUSH_MS`) before it\n");
            o.append("notifies; pgbench notifies at once, one NOTIFY per transfer, so a real replica's announcement would come up to\n");
            o.append("10 ms later, in fewer and larger notifications.\n");
        }
        o.append("\n");
        o.append("| changes committed in | events | p50 | p90 | p99 | p99.9 | max |\n|---|---|---|---|---|---|---|\n");
        o.append(fmt("| the measured window | %d | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.1f ms |\n", h.getTotalCount(), p50, p90, p99, p999, max));
        o.append(fmt("| warm-up + measured | %d | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.1f ms |\n\n", all.getTotalCount(),
                all.getValueAtPercentile(50) / 1000.0, all.getValueAtPercentile(90) / 1000.0, all.getValueAtPercentile(99) / 1000.0,
                all.getValueAtPercentile(99.9) / 1000.0, all.getMaxValue() / 1000.0));
        o.append(fmt("Events delivered per second in the measured window: %.0f (target %d).", eventsMeasuredRate(h, r), changeRate * perAccount));
        if (negativeLatency.sum() > 0) {
            o.append(" Negative latencies (clock resolution) recorded as 0: ").append(negativeLatency.sum()).append('.');
        }
        o.append("\n\n");

        o.append("## CPU during the measured window\n\n");
        o.append("In cores (1.0 = one core busy all the time) out of ").append(cores).append(". PostgreSQL: per process, what each\n");
        o.append("process alive at the window's end used in it (a backend that ended inside the window is not counted).\n\n");
        o.append("| process | cores |\n|---|---|\n");
        o.append(fmt("| load generator (this client JVM) | %.2f |\n", selfCores));
        o.append(fmt("| application server | %.2f |\n", serverCores));
        if (pgbenchWriter) {
            o.append(fmt("| PostgreSQL (all its processes, pgbench's %d backends included) | %.2f |\n", intOpt("pgbench-clients", 8), pgCores));
            o.append(fmt("| pgbench (its own client process) | %.2f |\n", pgbenchCores));
        } else {
            o.append(fmt("| PostgreSQL (all its processes) | %.2f |\n", pgCores));
        }
        o.append(fmt("| whole machine (includes other people's work) | %.2f |\n\n", machineBusy));

        if (pgbenchWriter) {
            writePgbenchSection(o);
        }

        List<String> problems = new ArrayList<>();
        streamProblems.forEach(p -> problems.add("stream: " + p));
        depositProblems.forEach(p -> problems.add("deposit: " + p));
        if (pgbenchWriter) {
            if (pg.exitCode != 0 || pg.killed || pg.abortedClients > 0 || pg.failed != 0) {
                problems.add(fmt("pgbench: exit %d%s, %d aborted clients, %d failed transactions (its output is above)", pg.exitCode,
                        pg.killed ? " (killed after overrunning -T by 60 s)" : "", pg.abortedClients, pg.failed));
            }
            if (Double.isNaN(pgbenchCores)) {
                problems.add("pgbench's own CPU could not be read for the whole window (it was not running at one end of it)");
            }
        }
        String appLog = opts.get("app-log");
        if (appLog != null) {
            List<String> lines = new ArrayList<>();
            try {
                lines = Files.readAllLines(Path.of(appLog));
            } catch (IOException e) {
                // none
            }
            long errors = lines.stream().filter(l -> l.contains(" ERROR ")).count();
            long warns = lines.stream().filter(l -> l.contains(" WARN ")).count();
            problems.add("application log: " + errors + " ERROR lines, " + warns + " WARN lines");
            lines.stream().filter(l -> l.contains(" ERROR ") || l.contains(" WARN ")).limit(8)
                    .forEach(l -> problems.add("  " + l.substring(0, Math.min(400, l.length()))));
        }
        o.append("## Problems seen\n\n");
        if (problems.isEmpty()) {
            o.append("None.\n");
        } else {
            problems.forEach(p -> o.append("- ").append(p.replace("|", "\\|")).append('\n'));
        }
        o.append("\n## Server heap after a full GC (jcmd GC.heap_info), when every stream had its first event or ended\n\n```\n").append(r.idle.heapInfo).append("\n```\n\n");
        o.append("## Run log\n\n```\n");
        synchronized (log) {
            log.forEach(l -> o.append(l).append('\n'));
        }
        o.append("```\n");
        if (pgbenchWriter) {
            o.append("\n## The script pgbench ran\n\n");
            o.append("Generated for this run from the application's sources (").append(opts.getOrDefault("pgbench-script-desc", "?"))
                    .append("):\n\n```sql\n").append(read(Path.of(required("pgbench-script"))).strip()).append("\n```\n");
        }

        Path out = Path.of(opts.getOrDefault("out", "RESULTS.md"));
        Files.writeString(out, o.toString());
        say("wrote %s; all targets met: %s", out, allOk ? "yes" : "no");
        say("streams %d/%d, heap after GC %.1f MB, RSS %.1f MB, rate %.1f/s, delivered %d/%d, missing %d, p50 %.1f p99 %.1f p99.9 %.1f max %.1f ms",
                r.openStreams, r.totalStreams, r.idle.heapUsedAfterGcMb, r.idle.rssMb, rateAchieved, r.delivered, r.expected,
                r.missing, p50, p99, p999, max);
        say("cpu cores: client %.2f, server %.2f, postgres %.2f%s, machine %.2f", selfCores, serverCores, pgCores,
                pgbenchWriter ? fmt(" (pgbench backends included), pgbench client %.2f", pgbenchCores) : "", machineBusy);
        return allOk ? 0 : 3;
    }

    /** The pgbench writer: how it ran, its own summary, its schedule lag, and its output. */
    private void writePgbenchSection(StringBuilder o) {
        PgbenchWriter.Summary pg = pgbenchSummary;
        PgbenchWriter w = pgbench;
        o.append("## Writer: pgbench\n\n");
        o.append("The writes of the other replicas, modelled: the application's transfer transaction (`pessimistic` mode, the\n");
        o.append("application's default, as the application under test ran), then `pg_notify` after COMMIT as a replica announces\n");
        o.append("a commit. Accounts come from `bench.accounts`, filled by this load generator with the run's accounts and their\n");
        o.append("owners (the idempotency scope). The HTTP, JSON and R2DBC work the other replicas would do for these writes is on\n");
        o.append("their machines in production and is not here; pgbench's backends are in the PostgreSQL CPU figure, its client\n");
        o.append("process on its own line. With `-R`, pgbench schedules its transactions as a Poisson process at that mean rate,\n");
        o.append("so the count in a window varies by about its square root around rate x window; a client that falls behind its\n");
        o.append("schedule shows as schedule lag.\n\n");
        o.append("| | |\n|---|---|\n");
        o.append("| pgbench | ").append(opts.getOrDefault("pgbench-desc", "?")).append(" |\n");
        o.append("| command | `").append(w == null ? "?" : String.join(" ", w.command)).append("` |\n");
        o.append("| exit status | ").append(pg.exitCode).append(pg.killed ? " (killed: it overran -T by 60 s)" : "").append(" |\n");
        if (pgbenchBatch == 1) {
            o.append(fmt("| transfers/s achieved over its run (pgbench's tps, without connection time) | %.1f (target %.1f) |\n", pg.tps, changeRate / 2.0));
        } else {
            o.append(fmt("| batches of %d transfers/s achieved over its run (pgbench's tps, without connection time) | %.1f (target %.1f), %.1f transfers/s |\n",
                    pgbenchBatch, pg.tps, changeRate / 2.0 / pgbenchBatch, pg.tps * pgbenchBatch));
        }
        o.append(fmt("| transactions processed / failed / retried | %d / %d / %d |\n", pg.processed, pg.failed, pg.retried));
        o.append("| clients aborted | ").append(pg.abortedClients).append(" |\n");
        o.append(fmt("| latency average / stddev (pgbench's summary; from each transaction's scheduled start, schedule lag included) | %.3f / %.3f ms |\n",
                pg.latencyAverageMs, pg.latencyStddevMs));
        o.append(fmt("| schedule lag average / max (pgbench's summary) | %.3f / %.3f ms |\n", pg.lagAverageMs, pg.lagMaxMs));
        o.append(fmt("| initial connection time | %.3f ms |\n", pg.connectMs));
        Histogram lat = pg.windowLatency;
        Histogram lag = pg.windowLag;
        o.append(fmt("| measured window, from its per-transaction log: transactions completed / failed | %d / %d |\n", pg.windowCompleted, pg.windowFailed));
        o.append(fmt("| measured window: transaction latency p50 / p99 / p99.9 / max | %.1f / %.1f / %.1f / %.1f ms |\n",
                lat.getValueAtPercentile(50) / 1000.0, lat.getValueAtPercentile(99) / 1000.0, lat.getValueAtPercentile(99.9) / 1000.0,
                lat.getMaxValue() / 1000.0));
        o.append(fmt("| measured window: schedule lag p50 / p99 / p99.9 / max | %.1f / %.1f / %.1f / %.1f ms |\n\n",
                lag.getValueAtPercentile(50) / 1000.0, lag.getValueAtPercentile(99) / 1000.0, lag.getValueAtPercentile(99.9) / 1000.0,
                lag.getMaxValue() / 1000.0));
        o.append("pgbench's output (`-P 5` progress, then its summary):\n\n```\n").append(pg.output.strip()).append("\n```\n\n");
    }

    private double eventsMeasuredRate(Histogram h, Report r) {
        return h.getTotalCount() / r.measuredSeconds;
    }

    private static String row(String what, String target, String result, boolean ok) {
        return "| " + what + " | " + target + " | " + result + " | " + (ok ? "yes" : "**no**") + " |\n";
    }

    private static String fmt(String f, Object... a) {
        return String.format(Locale.ROOT, f, a);
    }

    private static String statusText(Map<Integer, LongAdder> m) {
        if (m.isEmpty()) {
            return "none";
        }
        Map<Integer, Long> sorted = new LinkedHashMap<>();
        m.entrySet().stream().sorted(Map.Entry.comparingByKey()).forEach(e -> sorted.put(e.getKey(), e.getValue().sum()));
        StringBuilder b = new StringBuilder();
        sorted.forEach((k, v) -> b.append(b.length() == 0 ? "" : ", ").append(k == -1 ? "transport error" : k.toString()).append(": ").append(v));
        return b.toString();
    }
}
