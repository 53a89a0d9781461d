package io.paystream.bench;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
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
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.LongAdder;

import org.HdrHistogram.ConcurrentHistogram;
import org.HdrHistogram.Histogram;
import reactor.core.publisher.Mono;

/**
 * The load-balanced run ({@code bench/run.sh lb}): one PostgreSQL, several replicas of the packaged
 * application on their own loopback ports, nginx in front of them. Clients move money through nginx
 * (each transfer retried with the same Idempotency-Key and body on a transport error, a 5xx, a 429 or
 * 409 in progress) and watchers follow balance streams through nginx (reconnecting with
 * Last-Event-ID), while the replicas are restarted one by one as a rolling update would: out of
 * rotation, SIGTERM, wait for the exit, start, wait for /readyz, back in rotation, next. Afterwards:
 * every acknowledged transfer in the ledger exactly once, every committed version of every watched
 * account received exactly once by its watcher, and the full ledger audit.
 */
final class LoadBalanced {

    static final String USAGE = """
            Usage: bench/run.sh lb [options]

            Three replicas of the application behind nginx on 127.0.0.1, one PostgreSQL; transfers and
            balance streams through nginx while the replicas are restarted one by one (rolling update).
            The traffic lasts --warm, then per replica about --drain + --settle + its shutdown and start,
            then --tail. Writes bench/results/LOADBALANCED.md; exits non-zero if an invariant fails.

              --replicas N            application replicas (default 3; 2 to 5, so that N-1 always serve)
              --clients N             money clients, each with its own API key (default 16, at most 256)
              --watchers N            balance-stream watchers, one account each (default 24, at most 200)
              --accounts N            accounts to seed (default 1000; few, so watched accounts change often)
              --funds N               minor units deposited into every account (default 1000000)
              --mode M                concurrency mode of the replicas (default pessimistic)
              --warm S                traffic before the first restart, seconds (default 15)
              --drain S               pause between taking a replica out of rotation and SIGTERM (default 3)
              --settle S              pause after a replica is back in rotation, before the next (default 5)
              --tail S                traffic after the last restart, seconds (default 15)
              --max-traffic S         hard upper bound of the traffic window, seconds (default 600)
              --transfer-budget S     longest time one transfer is retried for (default 60)
              --max-transfers N       upper bound of transfers per client (default 200000)
              --ready-timeout S       longest wait for a started replica's /readyz 200; past it the
                                      rolling restart stops and the run fails (default 300)
              --app-jvm-opts "..."    JVM options for the replicas (default: a production pod's, as for the benchmark)
              --app-java PATH         the java executable of the replicas (default: as for the benchmark)
              --results DIR           where results go (default bench/results)
              --keep-workdir          keep the work directory (logs of every replica, nginx's logs)
            """;

    private static final Duration ATTEMPT_TIMEOUT = Duration.ofSeconds(10);
    private static final int MAX_ATTEMPTS = 300;
    /** App.stop() sends SIGKILL after this long: a shutdown that takes it was not graceful. */
    private static final double KILL_AFTER_SECONDS = 40;
    private static final int MAX_TIMELINE_SECONDS = 3_600;
    private static final Duration SSE_CATCH_UP = Duration.ofSeconds(75);
    private static final Set<String> RETRYABLE_5XX = Set.of("502 (nginx)", "503 (nginx)", "504 (nginx)",
            "503 retries_exhausted", "503 database_unavailable", "503 request_timeout");

    /** Every option of the run. */
    record Options(int replicas, int clients, int watchers, int accounts, long funds, String mode, int warmSeconds,
            int drainSeconds, int settleSeconds, int tailSeconds, int maxTrafficSeconds, int transferBudgetSeconds,
            long maxTransfersPerClient, int readySeconds, String appJvmOpts, Path appJava, Path projectDir, Path workDir, Path resultsDir, Path appJar,
            Path pgBinariesJar, String nginx, String commandLine, boolean keepWorkDir) {

        static Options parse(String[] argv) {
            Map<String, String> v = new HashMap<>();
            boolean keep = false;
            List<String> args = new ArrayList<>(Arrays.asList(argv));
            if (!args.isEmpty() && args.get(0).equals("lb")) {
                args.remove(0);
            }
            for (int i = 0; i < args.size(); i++) {
                String flag = args.get(i);
                if (flag.equals("--help") || flag.equals("-h")) {
                    System.out.println(USAGE);
                    System.exit(0);
                }
                if (flag.equals("--keep-workdir")) {
                    keep = true;
                    continue;
                }
                if (!flag.startsWith("--") || i + 1 >= args.size()) {
                    throw new IllegalArgumentException(flag + " needs a value\n\n" + USAGE);
                }
                v.put(flag.substring(2), args.get(++i));
            }
            Set<String> known = Set.of("replicas", "clients", "watchers", "accounts", "funds", "mode", "warm", "drain",
                    "settle", "tail", "max-traffic", "ready-timeout", "transfer-budget", "max-transfers", "app-jvm-opts", "app-java", "results",
                    "project-dir", "workdir", "app-jar", "pg-binaries-jar", "nginx", "command-line", "pgbench");
            for (String k : v.keySet()) {
                if (!known.contains(k)) {
                    throw new IllegalArgumentException("unknown option --" + k + "\n\n" + USAGE);
                }
            }
            Path project = Path.of(v.getOrDefault("project-dir", "")).toAbsolutePath().normalize();
            if (v.get("workdir") == null || v.get("pg-binaries-jar") == null || v.get("nginx") == null) {
                throw new IllegalArgumentException("--workdir, --pg-binaries-jar and --nginx are required (bench/run.sh passes them)");
            }
            String mode = v.getOrDefault("mode", "pessimistic");
            if (!List.of("pessimistic", "optimistic").contains(mode)) {
                throw new IllegalArgumentException("--mode: pessimistic or optimistic");
            }
            int clients = number(v, "clients", 16, 1, 256);
            int accounts = number(v, "accounts", 1000, 2, 1_000_000);
            if (accounts < clients) {
                throw new IllegalArgumentException("--accounts must be at least --clients (each client owns accounts)");
            }
            return new Options(number(v, "replicas", 3, 2, 5), clients, number(v, "watchers", 24, 1, 200), accounts,
                    number(v, "funds", 1_000_000, 1000, Integer.MAX_VALUE), mode, number(v, "warm", 15, 0, 600),
                    number(v, "drain", 3, 0, 60), number(v, "settle", 5, 0, 600), number(v, "tail", 15, 0, 600),
                    number(v, "max-traffic", 600, 10, 3_000), number(v, "transfer-budget", 60, 5, 600),
                    number(v, "max-transfers", 200_000, 1, 10_000_000), number(v, "ready-timeout", 300, 10, 1_800),
                    v.getOrDefault("app-jvm-opts", Config.POD_JVM_OPTS),
                    v.containsKey("app-java") ? Path.of(v.get("app-java")) : App.ownJava(), project,
                    Path.of(v.get("workdir")).toAbsolutePath(),
                    Path.of(v.getOrDefault("results", project.resolve("bench/results").toString())).toAbsolutePath(),
                    Path.of(v.getOrDefault("app-jar", project.resolve("target/paystream-0.1.0-SNAPSHOT.jar").toString())),
                    Path.of(v.get("pg-binaries-jar")), v.get("nginx"), v.getOrDefault("command-line", "bench/run.sh lb"), keep);
        }

        private static int number(Map<String, String> v, String name, int fallback, int min, int max) {
            String s = v.get(name);
            if (s == null) {
                return fallback;
            }
            try {
                int n = Integer.parseInt(s.strip());
                if (n < min || n > max) {
                    throw new IllegalArgumentException("--" + name + " must be between " + min + " and " + max);
                }
                return n;
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("--" + name + " needs a number, got '" + s + "'");
            }
        }
    }

    /** One replica's rolling restart, as measured. */
    record Restart(int replica, int port, long oldPid, long newPid, double outAtSeconds, double sigtermToExitSeconds,
            boolean killed, double startToReadySeconds, double outOfRotationSeconds, boolean ready) {
    }

    /** One transfer and everything its client learnt about it. */
    static final class Key {
        final String body;
        final String apiKey;
        final Set<UUID> acknowledgedIds = ConcurrentHashMap.newKeySet();
        volatile String finalLabel;
        volatile boolean finalReplayed;
        volatile boolean reconciled;
        final List<String> earlier = Collections.synchronizedList(new ArrayList<>());

        Key(String body, String apiKey) {
            this.body = body;
            this.apiKey = apiKey;
        }
    }

    private final Options o;
    private final String runId = Long.toString(System.currentTimeMillis(), 36);
    private final Map<String, Key> keys = new ConcurrentHashMap<>();
    private final Map<String, LongAdder> responses = new ConcurrentHashMap<>();
    private final Map<String, String> sampleBodies = new ConcurrentHashMap<>();
    private final AtomicLong requests = new AtomicLong();
    private final Histogram transferMicros = new ConcurrentHistogram(Phase.HIGHEST_MICROS, 3);
    private final AtomicLongArray acksPerSecond = new AtomicLongArray(MAX_TIMELINE_SECONDS);
    private final AtomicLongArray errorsPerSecond = new AtomicLongArray(MAX_TIMELINE_SECONDS);
    private final AtomicLongArray servingPerSecond = new AtomicLongArray(MAX_TIMELINE_SECONDS);
    private final List<String> events = Collections.synchronizedList(new ArrayList<>());
    private final List<String> notes = Collections.synchronizedList(new ArrayList<>());
    private final List<Restart> restarts = new ArrayList<>();
    private final List<String> failures = new ArrayList<>();
    private final Set<Integer> outOfRotation = ConcurrentHashMap.newKeySet();
    private final HttpClient probe = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
    private volatile boolean trafficRunning = true;
    private volatile int minServing = Integer.MAX_VALUE;
    private long trafficStartNanos;
    private double trafficSeconds;
    private Instant started;
    private final List<App> replicas = new ArrayList<>();
    private final List<Double> firstStartSeconds = new ArrayList<>();
    private final List<Double> finalStopSeconds = new ArrayList<>();
    private Postgres db;
    private Nginx nginx;
    private Clients clients;
    private final List<SseWatcher> watchers = new ArrayList<>();

    private LoadBalanced(Options o) {
        this.o = o;
    }

    /** Entry point for {@code lb}; called by Main. Exits the JVM with 0 only if every invariant held. */
    static void main(String[] args) {
        Options o;
        try {
            o = Options.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println(e.getMessage());
            System.exit(2);
            return;
        }
        LoadBalanced run = new LoadBalanced(o);
        Thread cleanup = new Thread(run::stopEverything, "lb-cleanup");
        Runtime.getRuntime().addShutdownHook(cleanup);
        watchdog(o);
        int status;
        try {
            status = run.run() ? 0 : 1;
        } catch (Exception e) {
            Log.warn("the run failed: %s", e);
            e.printStackTrace(System.out);
            status = 1;
        } finally {
            run.stopEverything();
        }
        System.exit(status);
    }

    /** A hard upper bound on the whole run: past it, the process exits and its shutdown hook cleans up. */
    private static void watchdog(Options o) {
        long budget = 900L + o.maxTrafficSeconds() + o.transferBudgetSeconds() + (long) o.replicas() * o.readySeconds() * 2;
        Thread t = new Thread(() -> {
            Sh.sleep(Duration.ofSeconds(budget).toMillis());
            Log.warn("the run exceeded its time budget of %d s; stopping everything", budget);
            System.exit(3);
        }, "lb-watchdog");
        t.setDaemon(true);
        t.start();
    }

    private synchronized void stopEverything() {
        for (SseWatcher w : watchers) {
            w.stop();
        }
        if (nginx != null) {
            nginx.stop();
        }
        for (App app : replicas) {
            app.kill9();
        }
        if (db != null) {
            db.stop();
        }
    }

    private boolean run() throws Exception {
        started = Instant.now();
        Files.createDirectories(o.workDir());
        if (!Files.exists(o.appJar())) {
            throw new IllegalStateException("no application jar at " + o.appJar() + " (bench/run.sh builds it)");
        }
        Path jar = o.workDir().resolve("app.jar");
        Files.copy(o.appJar(), jar, StandardCopyOption.REPLACE_EXISTING);
        db = Postgres.embedded(o.workDir());
        db.create(o.pgBinariesJar());
        for (int i = 1; i <= o.replicas(); i++) {
            Path dir = Files.createDirectories(o.workDir().resolve("replica-" + i));
            replicas.add(new App(jar, o.appJava(), dir, db, o.appJvmOpts(), null));
        }
        // The first replica migrates the schema (Flyway); the others start once it is done, all at once.
        startReplica(0);
        List<Thread> starting = new ArrayList<>();
        for (int i = 1; i < o.replicas(); i++) {
            int r = i;
            starting.add(daemon("start-replica-" + (r + 1), () -> startReplica(r)));
        }
        for (Thread t : starting) {
            t.join(o.readySeconds() * 1000L + 10_000);
        }
        for (int i = 0; i < o.replicas(); i++) {
            if (!ready(replicas.get(i))) {
                throw new IllegalStateException("replica " + (i + 1) + " is not ready; log tail:\n" + replicas.get(i).tail(40));
            }
        }
        // Client keys through the first replica (the admin key each replica is given works on that replica only:
        // it is kept in memory, hashed; client keys are in the database and work on every replica).
        clients = Clients.create(replicas.get(0), o.clients());
        Seeder.Accounts accounts;
        try (Connection conn = db.admin()) {
            accounts = Seeder.seedSql(conn, o.accounts(), o.funds(), Map.of(), clients);
        }
        List<Integer> ports = replicas.stream().map(a -> a.port).toList();
        nginx = new Nginx(o.nginx(), o.workDir().resolve("nginx"), ports);
        nginx.start();

        List<String> ids = accounts.numbered().stream().map(UUID::toString).toList();
        String[][] own = Workload.own(accounts, clients);
        long hardDeadline = System.nanoTime() + Duration.ofSeconds(o.maxTrafficSeconds()).toNanos();
        long watcherDeadline = hardDeadline + SSE_CATCH_UP.toNanos() + Duration.ofSeconds(o.transferBudgetSeconds() + 120).toNanos();
        List<Thread> watcherThreads = new ArrayList<>();
        for (int w = 0; w < Math.min(o.watchers(), accounts.numbered().size()); w++) {
            // Spread over the accounts, each watched by its owner's key.
            int n = (int) ((long) w * accounts.numbered().size() / o.watchers());
            String key = clients.load.get(accounts.client()[n] % clients.size()).key();
            SseWatcher watcher = new SseWatcher(accounts.numbered().get(n), key, nginx.port, watcherDeadline);
            watchers.add(watcher);
            watcherThreads.add(daemon("sse-watcher-" + w, watcher));
        }
        awaitWatchersOpen(Duration.ofSeconds(30));

        trafficStartNanos = System.nanoTime();
        event("traffic starts: " + o.clients() + " clients, " + watchers.size() + " watchers, through nginx");
        Thread monitor = daemon("lb-monitor", () -> monitorLoop(hardDeadline));
        try (Http http = new Http(nginx.port, null, o.clients() + 8, ATTEMPT_TIMEOUT, "lb")) {
            List<Thread> threads = new ArrayList<>();
            for (int i = 0; i < o.clients(); i++) {
                int client = i;
                threads.add(daemon("lb-client-" + i, () -> clientLoop(http, ids, own[client], client, hardDeadline)));
            }
            sleepUntil(Math.min(hardDeadline, trafficStartNanos + Duration.ofSeconds(o.warmSeconds()).toNanos()));
            rollingRestart(hardDeadline);
            sleepUntil(Math.min(hardDeadline, System.nanoTime() + Duration.ofSeconds(o.tailSeconds()).toNanos()));
            trafficRunning = false;
            event("traffic stops");
            long joinDeadline = System.nanoTime() + Duration.ofSeconds(o.transferBudgetSeconds() + 30).toNanos();
            for (Thread t : threads) {
                t.join(Math.max(1, (joinDeadline - System.nanoTime()) / 1_000_000));
                if (t.isAlive()) {
                    notes.add(t.getName() + " did not finish its last transfer in time");
                    t.interrupt();
                }
            }
            trafficSeconds = (System.nanoTime() - trafficStartNanos) / 1e9;
            reconcile(http);
        }
        monitor.join(5_000);
        Map<UUID, Long> heads;
        try (Connection conn = db.admin()) {
            heads = heads(conn);
        }
        awaitWatchersCaughtUp(heads);
        // The watchers stop reconnecting; stopping nginx ends their streams (at most Nginx.WORKER_SHUTDOWN later).
        for (SseWatcher w : watchers) {
            w.stop();
        }
        nginx.stop();
        long joinUntil = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        for (Thread t : watcherThreads) {
            t.join(Math.max(1, (joinUntil - System.nanoTime()) / 1_000_000));
        }
        for (int i = 0; i < replicas.size(); i++) {
            long t0 = System.nanoTime();
            replicas.get(i).stop();
            finalStopSeconds.add((System.nanoTime() - t0) / 1e9);
        }
        Map<String, Object> verdict;
        try (Connection conn = db.admin()) {
            verdict = check(conn);
        }
        Path report = writeReport(verdict);
        Log.info("Report: %s", report);
        if (failures.isEmpty()) {
            Log.info("VERDICT: PASS (every invariant held)");
        } else {
            Log.warn("VERDICT: FAIL");
            failures.forEach(f -> Log.warn("  %s", f));
        }
        return failures.isEmpty();
    }

    // Replicas ----------------------------------------------------------------------------------------------

    private void startReplica(int index) {
        App app = replicas.get(index);
        long t0 = System.nanoTime();
        try {
            app.start(o.mode());
        } catch (IOException e) {
            throw new IllegalStateException("starting replica " + (index + 1) + ": " + e.getMessage(), e);
        }
        if (awaitReady(app, Duration.ofSeconds(o.readySeconds()))) {
            double s = (System.nanoTime() - t0) / 1e9;
            synchronized (firstStartSeconds) {
                firstStartSeconds.add(s);
            }
            Log.info("Replica %d ready on 127.0.0.1:%d (pid %d) after %.1f s", index + 1, app.port, app.pid(), s);
        } else {
            Log.warn("replica %d not ready after %d s", index + 1, o.readySeconds());
        }
    }

    /** GET /readyz answers 200 (unauthenticated, as a Kubernetes readiness probe). */
    private boolean ready(App app) {
        if (!app.alive()) {
            return false;
        }
        try {
            HttpRequest request = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + app.port + "/readyz"))
                    .timeout(Duration.ofSeconds(2)).GET().build();
            return probe.send(request, HttpResponse.BodyHandlers.discarding()).statusCode() == 200;
        } catch (IOException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    private boolean awaitReady(App app, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            if (!app.alive()) {
                return false;
            }
            if (ready(app)) {
                return true;
            }
            Sh.sleep(100);
        }
        return false;
    }

    /** One replica at a time: out of rotation, SIGTERM, exit, start, /readyz 200, back in rotation. */
    private void rollingRestart(long hardDeadline) throws IOException {
        for (int i = 0; i < replicas.size(); i++) {
            App app = replicas.get(i);
            // At least N-1 serving: every other replica must be in rotation and ready before this one goes.
            long waitUntil = Math.min(hardDeadline, System.nanoTime() + Duration.ofSeconds(60).toNanos());
            while (!othersServing(i) && System.nanoTime() < waitUntil) {
                Sh.sleep(200);
            }
            if (!othersServing(i)) {
                failures.add("replica " + (i + 1) + " not restarted: the others were not all serving");
                continue;
            }
            if (System.nanoTime() >= hardDeadline) {
                failures.add("the traffic window (--max-traffic) ended before replica " + (i + 1) + " was restarted");
                break;
            }
            long oldPid = app.pid();
            double outAt = sinceTraffic();
            outOfRotation.add(app.port);
            nginx.setDown(Set.of(app.port));
            long outNanos = System.nanoTime();
            event("replica " + (i + 1) + " (:" + app.port + ") out of rotation (nginx reload)");
            Sh.sleep(o.drainSeconds() * 1000L);
            event("replica " + (i + 1) + ": SIGTERM to pid " + oldPid);
            long t0 = System.nanoTime();
            app.stop();
            double stopSeconds = (System.nanoTime() - t0) / 1e9;
            boolean killed = stopSeconds >= KILL_AFTER_SECONDS;
            event(String.format(Locale.ROOT, "replica %d exited %.2f s after SIGTERM%s", i + 1, stopSeconds,
                    killed ? " (killed: no exit within 40 s)" : ""));
            long t1 = System.nanoTime();
            app.start(o.mode());
            boolean ready = awaitReady(app, Duration.ofSeconds(o.readySeconds()));
            double startSeconds = (System.nanoTime() - t1) / 1e9;
            if (!ready) {
                failures.add("replica " + (i + 1) + " not ready " + o.readySeconds() + " s after its restart");
                notes.add("Replica " + (i + 1) + " log tail:\n" + app.tail(30));
                event("replica " + (i + 1) + " NOT ready " + o.readySeconds() + " s after its restart");
                restarts.add(new Restart(i + 1, app.port, oldPid, app.pid(), outAt, stopSeconds, killed, startSeconds,
                        (System.nanoTime() - outNanos) / 1e9, false));
                // As an orchestrator halts a rollout whose new replica never gets ready: no other goes down.
                event("rolling restart halted");
                break;
            }
            event(String.format(Locale.ROOT, "replica %d ready again (pid %d) %.1f s after its start", i + 1, app.pid(),
                    startSeconds));
            nginx.setDown(Set.of());
            outOfRotation.remove(app.port);
            double outSeconds = (System.nanoTime() - outNanos) / 1e9;
            event("replica " + (i + 1) + " back in rotation (nginx reload)");
            restarts.add(new Restart(i + 1, app.port, oldPid, app.pid(), outAt, stopSeconds, killed, startSeconds,
                    outSeconds, true));
            Sh.sleep(o.settleSeconds() * 1000L);
        }
    }

    private boolean othersServing(int except) {
        for (int j = 0; j < replicas.size(); j++) {
            if (j != except && (outOfRotation.contains(replicas.get(j).port) || !ready(replicas.get(j)))) {
                return false;
            }
        }
        return true;
    }

    /** Once a second: replicas in rotation and ready (the least seen is reported). */
    private void monitorLoop(long hardDeadline) {
        while (trafficRunning && System.nanoTime() < hardDeadline) {
            int serving = 0;
            for (App app : replicas) {
                if (!outOfRotation.contains(app.port) && ready(app)) {
                    serving++;
                }
            }
            int second = (int) Math.min(MAX_TIMELINE_SECONDS - 1, (long) sinceTraffic());
            servingPerSecond.set(second, serving + 1); // 0 means "not sampled"
            if (serving < minServing) {
                minServing = serving;
            }
            Sh.sleep(1000);
        }
    }

    // Money traffic -------------------------------------------------------------------------------------------

    private void clientLoop(Http http, List<String> ids, String[] own, int client, long hardDeadline) {
        ThreadLocalRandom random = ThreadLocalRandom.current();
        String apiKey = clients.load.get(client).key();
        for (long seq = 1; seq <= o.maxTransfersPerClient() && trafficRunning && System.nanoTime() < hardDeadline
                && !Thread.currentThread().isInterrupted(); seq++) {
            String key = "lb-" + runId + "-" + client + "-" + seq;
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
            long t0 = System.nanoTime();
            send(http, key, k, t0 + Duration.ofSeconds(o.transferBudgetSeconds()).toNanos(), MAX_ATTEMPTS);
            if (k.finalLabel != null) {
                transferMicros.recordValue(Math.min(Phase.HIGHEST_MICROS, (System.nanoTime() - t0) / 1000));
            }
        }
    }

    /** Sends one transfer until a final answer (2xx or a 4xx but 409 in progress and 429), or its attempts or time run out. */
    private void send(Http http, String key, Key k, long until, int maxAttempts) {
        long backoffMs = 50;
        for (int attempt = 1; attempt <= maxAttempts && !Thread.currentThread().isInterrupted(); attempt++) {
            requests.incrementAndGet();
            Http.Response r = http.post("/v1/transfers", k.body, key, k.apiKey)
                    .timeout(ATTEMPT_TIMEOUT.plusSeconds(5), Mono.just(new Http.Response(-1, null, "timeout")))
                    .block();
            String label = label(r);
            responses.computeIfAbsent(label, x -> new LongAdder()).increment();
            if (r != null && r.is2xx()) {
                String id = Json.field(r.body(), "id");
                if (id != null) {
                    k.acknowledgedIds.add(UUID.fromString(id));
                }
                k.finalLabel = Integer.toString(r.status());
                k.finalReplayed = r.replayed();
                tick(acksPerSecond);
                return;
            }
            tick(errorsPerSecond);
            if (r != null && r.status() >= 400) {
                sampleBodies.putIfAbsent(label, r.body() == null ? "" : Phase.truncate(r.body(), 300));
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

    /** The status and problem code; an answer of nginx itself (an HTML page) is marked as such. */
    private static String label(Http.Response r) {
        if (r == null) {
            return "no response";
        }
        if (r.status() >= 400 && r.body() != null && r.body().stripLeading().startsWith("<")) {
            return r.status() + " (nginx)";
        }
        return r.label();
    }

    private void tick(AtomicLongArray perSecond) {
        perSecond.incrementAndGet((int) Math.min(MAX_TIMELINE_SECONDS - 1, (long) sinceTraffic()));
    }

    /** Transfers left without a final answer are asked once more, same key and body, after the restarts. */
    private void reconcile(Http http) {
        List<Map.Entry<String, Key>> open = keys.entrySet().stream().filter(e -> e.getValue().finalLabel == null).toList();
        if (open.isEmpty()) {
            return;
        }
        Log.info("Asking again for %d transfers that got no final answer", open.size());
        long until = System.nanoTime() + Duration.ofSeconds(120).toNanos();
        for (Map.Entry<String, Key> e : open) {
            e.getValue().reconciled = true;
            send(http, e.getKey(), e.getValue(), Math.min(until, System.nanoTime() + Duration.ofSeconds(30).toNanos()), 10);
        }
    }

    // Balance streams --------------------------------------------------------------------------------------------

    private void awaitWatchersOpen(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline && watchers.stream().anyMatch(w -> w.lastVersion() < 0)) {
            Sh.sleep(100);
        }
        long open = watchers.stream().filter(w -> w.lastVersion() >= 0).count();
        Log.info("%d of %d watchers have their first event", open, watchers.size());
    }

    /** The latest version of every watched account, from the ledger. */
    private Map<UUID, Long> heads(Connection conn) throws SQLException {
        Map<UUID, Long> heads = new HashMap<>();
        try (PreparedStatement p = conn.prepareStatement(
                "SELECT account_id, max(version) FROM balances WHERE account_id = ANY (?::uuid[]) GROUP BY account_id")) {
            p.setArray(1, conn.createArrayOf("uuid", watchers.stream().map(w -> w.account).distinct().toArray()));
            try (ResultSet rs = p.executeQuery()) {
                while (rs.next()) {
                    heads.put(rs.getObject(1, UUID.class), rs.getLong(2));
                }
            }
        }
        return heads;
    }

    /** Waits (bounded) until every watcher got the latest version of its account; they should within milliseconds. */
    private void awaitWatchersCaughtUp(Map<UUID, Long> heads) {
        long t0 = System.nanoTime();
        long deadline = t0 + SSE_CATCH_UP.toNanos();
        while (System.nanoTime() < deadline
                && watchers.stream().anyMatch(w -> w.lastVersion() < heads.getOrDefault(w.account, 0L))) {
            Sh.sleep(100);
        }
        long behind = watchers.stream().filter(w -> w.lastVersion() < heads.getOrDefault(w.account, 0L)).count();
        event(String.format(Locale.ROOT, "watchers caught up with the ledger after traffic: %d of %d, %.1f s after the last transfer",
                watchers.size() - behind, watchers.size(), (System.nanoTime() - t0) / 1e9));
    }

    // Checks ------------------------------------------------------------------------------------------------------

    private Map<String, Object> check(Connection conn) throws SQLException, IOException {
        Map<String, Object> v = new LinkedHashMap<>();
        List<UUID> acknowledged = new ArrayList<>();
        keys.values().forEach(k -> acknowledged.addAll(k.acknowledgedIds));
        Audit.Result audit = Audit.run(conn, acknowledged);
        v.put("audit", audit);

        Map<String, List<UUID>> ledger = new HashMap<>();
        try (PreparedStatement p = conn.prepareStatement(
                "SELECT metadata->>'benchKey', id FROM transactions WHERE type = 'transfer' AND metadata->>'benchRun' = ?")) {
            p.setString(1, runId);
            try (ResultSet rs = p.executeQuery()) {
                while (rs.next()) {
                    ledger.computeIfAbsent(rs.getString(1), x -> new ArrayList<>()).add(rs.getObject(2, UUID.class));
                }
            }
        }
        long acked = 0;
        long insufficient = 0;
        long unexpectedRefusals = 0;
        long unresolved = 0;
        long lost = 0;
        long duplicated = 0;
        long refusedButApplied = 0;
        long reconciled = 0;
        long replayedAfter5xxOnly = 0;
        long replayedAfterTransportError = 0;
        Map<String, Long> refusals = new TreeMap<>();
        List<String> examples = new ArrayList<>();
        for (Map.Entry<String, Key> e : keys.entrySet()) {
            Key k = e.getValue();
            List<UUID> inLedger = ledger.getOrDefault(e.getKey(), List.of());
            if (k.reconciled) {
                reconciled++;
            }
            if (inLedger.size() > 1 || k.acknowledgedIds.size() > 1) {
                duplicated++;
                examples.add("key " + e.getKey() + " moved money " + inLedger.size() + " times, acknowledged as " + k.acknowledgedIds);
            }
            if (!k.acknowledgedIds.isEmpty()) {
                acked++;
                for (UUID id : k.acknowledgedIds) {
                    if (!inLedger.contains(id)) {
                        lost++;
                        examples.add("key " + e.getKey() + " acknowledged as " + id + " but the ledger has " + inLedger);
                    }
                }
                if (k.finalReplayed) {
                    List<String> before = new ArrayList<>(k.earlier);
                    if (!before.isEmpty() && before.stream().allMatch(l -> l.startsWith("5"))) {
                        replayedAfter5xxOnly++;
                        if (examples.size() < 20) {
                            examples.add("key " + e.getKey() + " was answered " + before + ", then replayed as applied");
                        }
                    } else if (before.stream().anyMatch(l -> !Character.isDigit(l.charAt(0)))) {
                        replayedAfterTransportError++;
                    }
                }
            } else if (k.finalLabel != null) {
                refusals.merge(k.finalLabel, 1L, Long::sum);
                if (k.finalLabel.equals("422 insufficient_funds")) {
                    insufficient++;
                } else {
                    unexpectedRefusals++;
                }
                if (!inLedger.isEmpty()) {
                    refusedButApplied++;
                    examples.add("key " + e.getKey() + " was answered " + k.finalLabel + " but moved money");
                }
            } else {
                unresolved++;
            }
        }
        for (String key : ledger.keySet()) {
            if (!keys.containsKey(key)) {
                duplicated++;
                examples.add("the ledger has a transfer for key " + key + " that no client sent");
            }
        }
        long ledgerTransfers = ledger.values().stream().mapToLong(List::size).sum();
        Map<String, Long> unsafe5xx = new TreeMap<>();
        responses.forEach((label, n) -> {
            if (label.startsWith("5") && !RETRYABLE_5XX.contains(label)) {
                unsafe5xx.put(label, n.sum());
            }
        });
        long unsafe5xxCount = unsafe5xx.values().stream().mapToLong(Long::longValue).sum();
        v.put("transfers", (long) keys.size());
        v.put("requests", requests.get());
        v.put("acknowledged", acked);
        v.put("refusedInsufficientFunds", insufficient);
        v.put("refusals", refusals);
        v.put("unexpectedRefusals", unexpectedRefusals);
        v.put("unresolved", unresolved);
        v.put("unsafe5xx", unsafe5xx);
        v.put("unsafeFailures", unresolved + unsafe5xxCount + unexpectedRefusals);
        v.put("reconciled", reconciled);
        v.put("lost", lost);
        v.put("duplicated", duplicated);
        v.put("refusedButApplied", refusedButApplied);
        v.put("ledgerTransfers", ledgerTransfers);
        v.put("replayedAfter5xxOnly", replayedAfter5xxOnly);
        v.put("replayedAfterTransportError", replayedAfterTransportError);
        v.put("examples", examples.stream().limit(20).toList());

        Sse sse = checkStreams(conn);
        v.put("sse", sse);

        if (!audit.ok()) {
            failures.add("ledger audit: " + audit.summary());
        }
        if (unresolved > 0) {
            failures.add(unresolved + " transfers ended without a definite answer after their retries");
        }
        if (unsafe5xxCount > 0) {
            failures.add(unsafe5xxCount + " answers were a 5xx that is not safely retryable: " + unsafe5xx);
        }
        if (unexpectedRefusals > 0) {
            failures.add(unexpectedRefusals + " transfers were refused with a 4xx other than insufficient_funds: " + refusals);
        }
        if (lost > 0) {
            failures.add(lost + " acknowledged transfers are not in the ledger");
        }
        if (duplicated > 0) {
            failures.add(duplicated + " keys moved money twice or were acknowledged with different ids");
        }
        if (refusedButApplied > 0) {
            failures.add(refusedButApplied + " transfers answered with a 4xx moved money");
        }
        if (ledgerTransfers != acked) {
            failures.add("the ledger holds " + ledgerTransfers + " transfers of this run, " + acked + " were acknowledged");
        }
        if (sse.missed() > 0 || sse.duplicates() > 0 || sse.outOfOrder() > 0 || sse.wrongBalance() > 0) {
            failures.add("balance streams: " + sse.missed() + " versions missed, " + sse.duplicates() + " duplicated, "
                    + sse.outOfOrder() + " out of order, " + sse.wrongBalance() + " with a balance the ledger does not have");
        }
        if (sse.watchersWithoutEvents() > 0) {
            failures.add(sse.watchersWithoutEvents() + " watchers never received an event");
        }
        if (restarts.size() < replicas.size()) {
            failures.add("only " + restarts.size() + " of " + replicas.size() + " replicas were restarted");
        }
        for (Restart r : restarts) {
            if (r.killed()) {
                failures.add("replica " + r.replica() + " did not exit within 40 s of SIGTERM");
            }
        }
        if (minServing < replicas.size() - 1) {
            failures.add("at one point only " + minServing + " replicas were serving (in rotation and ready)");
        }
        return v;
    }

    /** What the watchers got, against what the ledger committed. */
    record Sse(int watchers, long streams, long reconnects, long endedCleanly, long cut, long readTimeouts,
            Map<String, Long> refused, long events, long expected, long missed, long duplicates, long outOfOrder,
            long wrongBalance, long watchersWithoutEvents, List<String> examples) {
    }

    private Sse checkStreams(Connection conn) throws SQLException {
        long streams = 0;
        long reconnects = 0;
        long endedCleanly = 0;
        long cut = 0;
        long readTimeouts = 0;
        long events = 0;
        long expected = 0;
        long missed = 0;
        long duplicates = 0;
        long outOfOrder = 0;
        long wrongBalance = 0;
        long without = 0;
        Map<String, Long> refused = new TreeMap<>();
        List<String> examples = new ArrayList<>();
        for (SseWatcher w : watchers) {
            streams += w.streams;
            reconnects += w.reconnects;
            endedCleanly += w.endedCleanly;
            cut += w.cut;
            readTimeouts += w.readTimeouts;
            w.refused.forEach((k, n) -> refused.merge(k, n, Long::sum));
            List<SseWatcher.Event> got = w.eventsCopy();
            events += got.size();
            if (got.isEmpty()) {
                without++;
                continue;
            }
            long first = got.get(0).version();
            Map<Long, Long> ledger = new HashMap<>();
            try (PreparedStatement p = conn.prepareStatement(
                    "SELECT version, balance FROM balances WHERE account_id = ? AND version >= ?")) {
                p.setObject(1, w.account);
                p.setLong(2, first);
                try (ResultSet rs = p.executeQuery()) {
                    while (rs.next()) {
                        ledger.put(rs.getLong(1), rs.getLong(2));
                    }
                }
            }
            expected += ledger.size();
            Set<Long> seen = new HashSet<>();
            long previous = -1;
            for (SseWatcher.Event e : got) {
                if (!seen.add(e.version())) {
                    duplicates++;
                    if (examples.size() < 10) {
                        examples.add("account " + w.account + ": version " + e.version() + " received twice");
                    }
                }
                if (e.version() <= previous) {
                    outOfOrder++;
                }
                previous = e.version();
                Long balance = ledger.get(e.version());
                if (balance == null || balance != e.balance() || e.id() != e.version()) {
                    wrongBalance++;
                    if (examples.size() < 10) {
                        examples.add("account " + w.account + ": event " + e + " but the ledger has balance " + balance);
                    }
                }
            }
            for (Long version : ledger.keySet()) {
                if (!seen.contains(version)) {
                    missed++;
                    if (examples.size() < 10) {
                        examples.add("account " + w.account + ": version " + version + " never received");
                    }
                }
            }
        }
        return new Sse(watchers.size(), streams, reconnects, endedCleanly, cut, readTimeouts, refused, events, expected,
                missed, duplicates, outOfOrder, wrongBalance, without, examples);
    }

    // Report ------------------------------------------------------------------------------------------------------

    @SuppressWarnings("unchecked")
    private Path writeReport(Map<String, Object> v) throws IOException {
        Audit.Result audit = (Audit.Result) v.get("audit");
        Sse sse = (Sse) v.get("sse");
        Nginx.Traffic traffic = nginx.traffic();
        StringBuilder md = new StringBuilder();
        md.append("# Paystream behind nginx: rolling restarts under load\n\n");
        md.append("`").append(o.commandLine()).append("`, ").append(started).append(", ")
                .append(String.format(Locale.ROOT, "%.0f s", (System.nanoTime() - trafficStartNanos) / 1e9 + 0))
                .append(" from the first transfer to this report.\n\n");
        md.append("**Verdict: ").append(failures.isEmpty() ? "PASS" : "FAIL").append("**");
        if (failures.isEmpty()) {
            md.append(": no acknowledged transfer lost or applied twice, no failure a client could not retry safely, "
                    + "every committed version of every watched account received exactly once, ledger audit clean.\n\n");
        } else {
            md.append("\n\n");
            failures.forEach(f -> md.append("- ").append(f).append('\n'));
            md.append('\n');
        }
        md.append("## Setup\n\n");
        md.append("- ").append(o.replicas()).append(" replicas of the packaged application (`java -jar`, production defaults, `")
                .append(o.mode()).append("` mode), each on its own 127.0.0.1 port, one PostgreSQL ")
                .append(db.version()).append(" (embedded binaries, fsync on)\n");
        md.append("- ").append(nginx.version()).append(" on 127.0.0.1 in front (configuration below): ")
                .append(nginx.reloads()).append(" reloads\n");
        md.append("- ").append(o.clients()).append(" money clients, each with its own API key, transfers of 1 to 1000 cents "
                + "between ").append(o.accounts()).append(" accounts, each with an Idempotency-Key, retried with the same key "
                + "and body on a transport error, a 5xx, 429 or 409 `idempotency_request_in_progress` (backoff 50 ms to 1 s, "
                + "at most ").append(MAX_ATTEMPTS).append(" attempts and ").append(o.transferBudgetSeconds())
                .append(" s per transfer; 10 s per attempt)\n");
        md.append("- ").append(sse.watchers()).append(" balance-stream watchers through nginx, one account each, with "
                + "its owner's key; reconnect after the server's `retry:` hint with `Last-Event-ID`\n");
        md.append("- rolling restart: ").append(o.warmSeconds()).append(" s of traffic, then for each replica: out of "
                + "rotation (nginx `down` + reload), ").append(o.drainSeconds()).append(" s, SIGTERM, wait for the exit, "
                + "start, wait for `/readyz` 200, back in rotation, ").append(o.settleSeconds())
                .append(" s; then ").append(o.tailSeconds()).append(" s more traffic\n");
        md.append(String.format(Locale.ROOT, "- first starts (start to `/readyz` 200): %s s%n%n",
                firstStartSeconds.stream().map(s -> String.format(Locale.ROOT, "%.1f", s)).toList()));

        md.append("## Money\n\n| figure | value |\n|---|---|\n");
        row(md, "traffic window", String.format(Locale.ROOT, "%.1f s", trafficSeconds));
        row(md, "transfers started", v.get("transfers"));
        row(md, "HTTP requests sent (retries included)", v.get("requests"));
        row(md, "acknowledged (2xx)", v.get("acknowledged"));
        row(md, "acknowledged per second", String.format(Locale.ROOT, "%.0f", (Long) v.get("acknowledged") / Math.max(1e-9, trafficSeconds)));
        row(md, "refused 422 insufficient_funds", v.get("refusedInsufficientFunds"));
        row(md, "**failures a client could not retry safely**", "**" + v.get("unsafeFailures") + "**");
        row(md, "&nbsp;&nbsp;no definite answer after the retries", v.get("unresolved"));
        row(md, "&nbsp;&nbsp;a 5xx that is not safely retryable", v.get("unsafe5xx"));
        row(md, "&nbsp;&nbsp;refused with another 4xx", v.get("unexpectedRefusals"));
        row(md, "asked again after the traffic (no final answer in time)", v.get("reconciled"));
        row(md, "acknowledged transfers missing from the ledger", v.get("lost"));
        row(md, "keys applied twice or acknowledged with two ids", v.get("duplicated"));
        row(md, "4xx answers that moved money", v.get("refusedButApplied"));
        row(md, "transfers of the run in the ledger", v.get("ledgerTransfers"));
        row(md, "acknowledged as a replay after only 5xx answers", v.get("replayedAfter5xxOnly"));
        row(md, "acknowledged as a replay after a timeout or cut connection", v.get("replayedAfterTransportError"));
        row(md, "time per transfer, retries included: p50 / p99 / p99.9 / max", String.format(Locale.ROOT,
                "%.1f / %.1f / %.1f / %.1f ms", transferMicros.getValueAtPercentile(50) / 1e3,
                transferMicros.getValueAtPercentile(99) / 1e3, transferMicros.getValueAtPercentile(99.9) / 1e3,
                transferMicros.getMaxValue() / 1e3));
        md.append("\nEvery answer the clients got (an attempt each):\n\n| answer | count |\n|---|---|\n");
        new TreeMap<>(responses).forEach((label, n) -> row(md, "`" + label + "`", n.sum()));
        if (!sampleBodies.isEmpty()) {
            md.append("\nA body of each error answer:\n\n");
            new TreeMap<>(sampleBodies).forEach((label, body) -> md.append("- `").append(label).append("`: `")
                    .append(body.replace('\n', ' ').replace('`', '\'')).append("`\n"));
        }
        md.append("\n**Safely retryable** means: a transport error or timeout, 409 `idempotency_request_in_progress`, 429, "
                + "a 502/503/504 page of nginx (no replica could answer), or a 503 `retries_exhausted`, "
                + "`database_unavailable` or `request_timeout` (the application says nothing was applied); the client "
                + "repeats the same request with the same key, which the application applies at most once. Any other 5xx "
                + "counts as a failure even if a later attempt succeeded.\n\n");

        md.append("## Rolling restart\n\n| replica | port | pid before → after | out of rotation at | SIGTERM → exit | "
                + "start → `/readyz` 200 | out of rotation for |\n|---|---|---|---|---|---|---|\n");
        for (Restart r : restarts) {
            md.append(String.format(Locale.ROOT, "| %d | %d | %d → %d | %.1f s | %.2f s%s | %.1f s%s | %.1f s |%n",
                    r.replica(), r.port(), r.oldPid(), r.newPid(), r.outAtSeconds(), r.sigtermToExitSeconds(),
                    r.killed() ? " (killed)" : "", r.startToReadySeconds(), r.ready() ? "" : " (not ready)",
                    r.outOfRotationSeconds()));
        }
        md.append(String.format(Locale.ROOT, "%nLeast replicas serving (in rotation and `/readyz` 200), sampled every second: %s. "
                + "Final stop of each replica after the run (SIGTERM → exit): %s s.%n%n",
                minServing == Integer.MAX_VALUE ? "not sampled" : Integer.toString(minServing),
                finalStopSeconds.stream().map(s -> String.format(Locale.ROOT, "%.2f", s)).toList()));
        md.append("Per 5 s of traffic (acknowledged transfers, error answers, least replicas serving):\n\n"
                + "| t (s) | acknowledged | errors | serving |\n|---|---|---|---|\n");
        int lastSecond = (int) Math.min(MAX_TIMELINE_SECONDS - 1, Math.ceil(trafficSeconds));
        for (int s = 0; s < lastSecond; s += 5) {
            long acks = 0;
            long errors = 0;
            long serving = Long.MAX_VALUE;
            for (int t = s; t < Math.min(s + 5, MAX_TIMELINE_SECONDS); t++) {
                acks += acksPerSecond.get(t);
                errors += errorsPerSecond.get(t);
                if (servingPerSecond.get(t) > 0) {
                    serving = Math.min(serving, servingPerSecond.get(t) - 1);
                }
            }
            md.append(String.format(Locale.ROOT, "| %d–%d | %d | %d | %s |%n", s, s + 5, acks, errors,
                    serving == Long.MAX_VALUE ? "" : Long.toString(serving)));
        }
        md.append("\nTimeline:\n\n```\n");
        synchronized (events) {
            events.forEach(e -> md.append(e).append('\n'));
        }
        md.append("```\n\n");

        md.append("## Balance streams\n\n| figure | value |\n|---|---|\n");
        row(md, "watchers", sse.watchers());
        row(md, "streams opened (200)", sse.streams());
        row(md, "reconnects", sse.reconnects());
        row(md, "streams ended by the server (cleanly)", sse.endedCleanly());
        row(md, "streams cut (connection error)", sse.cut());
        row(md, "streams ended by the 60 s read timeout", sse.readTimeouts());
        row(md, "attempts refused", sse.refused().isEmpty() ? "0" : sse.refused().toString());
        row(md, "events received", sse.events());
        row(md, "versions committed since each watcher's first event (the ledger)", sse.expected());
        row(md, "**missed**", "**" + sse.missed() + "**");
        row(md, "**duplicates**", "**" + sse.duplicates() + "**");
        row(md, "out of order", sse.outOfOrder());
        row(md, "balance or id not the ledger's", sse.wrongBalance());
        row(md, "watchers without any event", sse.watchersWithoutEvents());
        if (!sse.examples().isEmpty()) {
            md.append("\nExamples:\n\n");
            sse.examples().forEach(e -> md.append("- ").append(e).append('\n'));
        }
        md.append("\n## What nginx saw\n\n| figure | value |\n|---|---|\n");
        row(md, "requests in its access log", traffic.requests());
        traffic.byUpstream().forEach((u, n) -> row(md, "answered by " + u, n));
        row(md, "passed on to another replica (`proxy_next_upstream`)", traffic.passedOn());
        traffic.passedOnBy().forEach((k, n) -> row(md, "&nbsp;&nbsp;" + k, n));
        md.append("\nBy request and status:\n\n| request → status | count |\n|---|---|\n");
        traffic.statusByMethod().forEach((k, n) -> row(md, "`" + k + "`", n));
        Map<String, Long> errors = nginx.errorSummary();
        if (!errors.isEmpty()) {
            md.append("\nnginx's error log (warnings and errors, by message):\n\n| message | count |\n|---|---|\n");
            errors.forEach((msg, n) -> row(md, "`" + Phase.truncate(msg.replace('|', '/').replace('`', '\''), 220) + "`", n));
        }
        md.append("\n## Ledger audit\n\n");
        md.append(audit.ok() ? "Clean: " : "**FAILED**: ").append(audit.summary()).append("\n\n");
        audit.facts().forEach((k, val) -> md.append("- ").append(k).append(": ").append(val).append('\n'));
        List<String> examples = (List<String>) v.get("examples");
        if (!examples.isEmpty()) {
            md.append("\nExamples:\n\n");
            examples.forEach(e -> md.append("- ").append(e).append('\n'));
        }
        md.append("\n## Application logs\n\nWARN and ERROR lines of every replica, by message (first 30 kinds):\n\n");
        Map<String, Long> appLog = appLogSummary();
        if (appLog.isEmpty()) {
            md.append("none\n");
        } else {
            md.append("| message | count |\n|---|---|\n");
            appLog.forEach((msg, n) -> row(md, "`" + Phase.truncate(msg.replace('|', '/').replace('`', '\''), 220) + "`", n));
        }
        if (!notes.isEmpty()) {
            md.append("\n## Notes\n\n");
            notes.forEach(n -> md.append("```\n").append(n).append("\n```\n"));
        }
        md.append("\n## nginx configuration (replica 1 out of rotation, as during its restart)\n\n```nginx\n")
                .append(nginx.config(Set.of(replicas.get(0).port))).append("```\n");
        md.append("\n## Caveats\n\n- Everything (three JVMs, PostgreSQL, nginx, the clients) shares this machine's "
                + Runtime.getRuntime().availableProcessors() + " cores: throughput is this machine's, and each restart's "
                + "JIT warm-up takes CPU from the other replicas.\n- Each replica is given its own admin key (in memory "
                + "only); the run uses it only to create client keys on the first replica. Client keys are in the "
                + "database and work on every replica.\n");
        Files.createDirectories(o.resultsDir());
        Path out = o.resultsDir().resolve("LOADBALANCED.md");
        Files.writeString(out, md.toString(), StandardCharsets.UTF_8);
        return out;
    }

    /** WARN/ERROR lines of all replica logs, with timestamps and thread names stripped, counted. */
    private Map<String, Long> appLogSummary() {
        Map<String, Long> m = new LinkedHashMap<>();
        for (App app : replicas) {
            try {
                for (String line : Files.readAllLines(app.logFile(), StandardCharsets.UTF_8)) {
                    if (!line.contains(" WARN ") && !line.contains(" ERROR ")) {
                        continue;
                    }
                    String msg = line.replaceFirst("^\\S+\\s+", "").replaceAll("\\[[^\\]]*\\]", "[]")
                            .replaceAll("\\b[0-9a-f]{8}-[0-9a-f-]{27}\\b", "{id}").replaceAll("\\d+", "N");
                    if (m.size() < 30 || m.containsKey(msg)) {
                        m.merge(msg, 1L, Long::sum);
                    }
                }
            } catch (IOException e) {
                m.merge("(could not read " + app.logFile() + ")", 1L, Long::sum);
            }
        }
        return m;
    }

    private static void row(StringBuilder md, String name, Object value) {
        md.append("| ").append(name).append(" | ").append(value).append(" |\n");
    }

    // Helpers --------------------------------------------------------------------------------------------------------

    private double sinceTraffic() {
        return trafficStartNanos == 0 ? 0 : (System.nanoTime() - trafficStartNanos) / 1e9;
    }

    private void event(String what) {
        String line = String.format(Locale.ROOT, "%6.1f s  %s", sinceTraffic(), what);
        events.add(line);
        Log.info("lb: %s", line.strip());
    }

    private static void sleepUntil(long nanos) {
        while (System.nanoTime() < nanos) {
            Sh.sleep(Math.max(1, Math.min(200, (nanos - System.nanoTime()) / 1_000_000)));
        }
    }

    private static Thread daemon(String name, Runnable body) {
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
}
