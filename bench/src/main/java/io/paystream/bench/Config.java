package io.paystream.bench;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/** Every knob of a run, from the command line. {@code bench/run.sh --help} prints them. */
final class Config {

    static final String USAGE = """
            Usage: bench/run.sh [bench|chaos|history] [options]

              bench (default)   SQL-only limit (pgbench), API closed and open loop, both concurrency modes,
                                an audit after every run; writes bench/results/RESULTS.md and two PNG charts
              chaos             transfers retried with the same Idempotency-Key while the app is killed with
                                kill -9, PostgreSQL is restarted and connections are terminated; writes
                                bench/results/CHAOS.md
              lb                three replicas behind nginx, rolling restarts under transfers and balance
                                streams; writes bench/results/LOADBALANCED.md (bench/run.sh lb --help)
              history           balance read and transfer latency of an account with a 1,000,000-row history
                                against one with 1,000 rows (target: at most 1.2x on p50 and p99), EXPLAIN of
                                the statements, audits; writes bench/results/HISTORY.md

            Common options:
              --accounts N            accounts to seed (default 10000)
              --seed sql|api          seed with SQL that respects the ledger's rules (fast, default) or through the API
              --funds N               minor units deposited into every seeded account (default 1000000)
              --results DIR           where results go (default bench/results)
              --db-url URL            use an existing PostgreSQL on 127.0.0.1 (jdbc:postgresql://127.0.0.1:PORT/DB)
                                      instead of starting one; needs --db-user and --db-password
              --app-jar PATH          the application jar (default target/paystream-0.1.0-SNAPSHOT.jar)
              --app-jvm-opts "..."    JVM options for the application (default "-Xmx540m -XX:+UseSerialGC",
                                      the JVM of a production pod; "" for the JVM's defaults on this machine)
              --app-java PATH         the java executable that runs the application (default: bench/run.sh
                                      looks for the Java major the image ships, BP_JVM_VERSION in pom.xml,
                                      on the PATH and under /usr/lib/jvm, else the harness's own java)
              --rate-limit N          the application's per-client rate limit, requests/s (default: the
                                      application's own default; 0 turns it off). Every load client has its
                                      own API key, so only the drain workload (one owner) can reach it
              --keep-workdir          keep the work directory (data, logs) under /tmp

            bench options:
              --warmup S              warm-up seconds before each measured phase (default 5)
              --app-warmup S          after each start of the application, uniform transfers for S seconds
                                      (at most 5000 requests a second) before anything is measured, so that
                                      the JIT has compiled the request path (default 90: on 2 cores the JIT
                                      was still compiling after 10,000 requests)
              --duration S            measured seconds per phase (default 20)
              --clients N             closed-loop clients and pgbench clients (default 64)
              --modes LIST            concurrency modes (default pessimistic,optimistic)
              --workloads LIST        closed-loop workloads (default uniform,hot,drain)
              --open-workloads LIST   open-loop workloads (default uniform,hot; "none" to skip)
              --open-rates LIST       open-loop rates, percent of that workload's closed-loop peak (default 25,50,75)
              --max-in-flight N       open loop: requests in flight at most; beyond it a request is dropped (default 2000)
              --max-requests N        upper bound of requests per phase (default 5000000)
              --hot-share P           hot workload: percent of transfers paid to the one merchant account (default 90)
              --drain-withdrawals N   drain workload: withdrawals the drained account can pay for (default: 30% of
                                      what the slowest closed-loop run of the mode so far would do in the
                                      measured window, so it runs dry mid-window; funded by an admin deposit
                                      just before the run)
              --skip-pgbench          no SQL-only phase

            chaos options:
              --duration S            chaos window in seconds (default 120)
              --clients N             parallel clients (default 16)
              --mode M                concurrency mode (default pessimistic)
              --kill-every MIN-MAX    seconds between two kill -9 of the app (default 3-8)
              --terminate-every MIN-MAX  seconds between two pg_terminate_backend (default 1-3)
              --pg-restarts N         PostgreSQL restarts (pg_ctl restart -m fast) in the window (default 1)
              --transfer-budget S     longest time one transfer is retried for (default 90)

            history options:
              --small-rows N          rows in the short history (default 1000)
              --large-rows N          rows in the long history (default 1000000; above 50000 seeded with the
                                      ledger's triggers off as the superuser, then verified by the audit)
              --warmup-requests N     requests before anything is measured, so that the JIT has compiled the
                                      request path (default 20000)
              --rounds N              rounds per measurement; each measures both accounts in turn, the one
                                      going first alternating (default 10)
              --round-requests N      requests per account per round (default 300)
              --clients N             clients of the concurrent measurements (default 4; 1 is always measured)
              --mode M                concurrency mode (default pessimistic)
              --rate-limit N          default 0 (off): each account's one owner sends hundreds of requests/s
            """;

    String command = "bench";
    Path projectDir;
    Path workDir;
    Path resultsDir;
    Path appJar;
    Path pgBinariesJar;
    String pgbench = "pgbench";
    String dbUrl;
    String dbUser;
    String dbPassword;
    /**
     * The JVM of a production pod (k8s/base/deployment.yaml: 2 CPUs, 1 GiB): the buildpack's memory
     * calculator leaves the heap about 540 MB of the limit, and with less than 1,792 MB the JVM picks
     * the serial collector. On this machine's 24 GB it would pick G1 and a 6 GB heap instead; G1 served
     * about 22% fewer transfers per second than the serial collector at the pod's heap (bench/README.md).
     */
    static final String POD_JVM_OPTS = "-Xmx540m -XX:+UseSerialGC";
    String appJvmOpts = POD_JVM_OPTS;
    /** The java executable that runs the application (bench/run.sh passes the image's Java when found). */
    Path appJava = App.ownJava();
    /** PAYSTREAM_RATE_LIMIT_PER_SECOND for the application; null: its default. */
    String rateLimit;
    String commandLine = "";
    boolean keepWorkDir;
    int accounts = 10_000;
    String seed = "sql";
    long funds = 1_000_000;

    // bench
    int warmupSeconds = 5;
    int appWarmupSeconds = 90;
    int durationSeconds = 20;
    boolean durationGiven;
    int clients = 64;
    boolean clientsGiven;
    List<String> modes = List.of("pessimistic", "optimistic");
    List<String> workloads = List.of("uniform", "hot", "drain");
    List<String> openWorkloads = List.of("uniform", "hot");
    List<Integer> openRates = List.of(25, 50, 75);
    int maxInFlight = 2000;
    long maxRequests = 5_000_000;
    int hotShare = 90;
    /** 0: sized from the uniform closed-loop peak of the same mode, so the account runs dry mid-window. */
    int drainWithdrawals = 0;
    long drainAmount = 1000;
    boolean skipPgbench;

    // chaos
    String chaosMode = "pessimistic";
    int killMinSeconds = 3;
    int killMaxSeconds = 8;
    int terminateMinSeconds = 1;
    int terminateMaxSeconds = 3;
    int pgRestarts = 1;
    int transferBudgetSeconds = 90;

    // history
    int smallRows = 1_000;
    int largeRows = 1_000_000;
    int warmupRequests = 20_000;
    int rounds = 10;
    int roundRequests = 300;

    static Config parse(String[] argv) {
        Config c = new Config();
        List<String> args = new ArrayList<>(Arrays.asList(argv));
        if (!args.isEmpty() && !args.get(0).startsWith("-")) {
            c.command = args.remove(0);
        }
        if (!List.of("bench", "chaos", "history").contains(c.command)) {
            throw new IllegalArgumentException("unknown command '" + c.command + "'\n\n" + USAGE);
        }
        for (int i = 0; i < args.size(); i++) {
            String flag = args.get(i);
            if (flag.equals("--help") || flag.equals("-h")) {
                System.out.println(USAGE);
                System.exit(0);
            }
            if (flag.equals("--keep-workdir")) {
                c.keepWorkDir = true;
                continue;
            }
            if (flag.equals("--skip-pgbench")) {
                c.skipPgbench = true;
                continue;
            }
            if (i + 1 >= args.size()) {
                throw new IllegalArgumentException(flag + " needs a value\n\n" + USAGE);
            }
            String v = args.get(++i);
            switch (flag) {
                case "--project-dir" -> c.projectDir = Path.of(v).toAbsolutePath().normalize();
                case "--workdir" -> c.workDir = Path.of(v).toAbsolutePath().normalize();
                case "--results" -> c.resultsDir = Path.of(v).toAbsolutePath().normalize();
                case "--app-jar" -> c.appJar = Path.of(v).toAbsolutePath().normalize();
                case "--pg-binaries-jar" -> c.pgBinariesJar = Path.of(v).toAbsolutePath().normalize();
                case "--pgbench" -> c.pgbench = v;
                case "--db-url" -> c.dbUrl = v;
                case "--db-user" -> c.dbUser = v;
                case "--db-password" -> c.dbPassword = v;
                case "--app-jvm-opts" -> c.appJvmOpts = v;
                case "--app-java" -> c.appJava = Path.of(v);
                case "--rate-limit" -> c.rateLimit = Integer.toString(positive(flag, v, 0));
                case "--command-line" -> c.commandLine = v;
                case "--accounts" -> c.accounts = positive(flag, v, 2);
                case "--seed" -> c.seed = oneOf(flag, v, List.of("sql", "api"));
                case "--funds" -> c.funds = positive(flag, v, 1000);
                case "--warmup" -> c.warmupSeconds = positive(flag, v, 0);
                case "--app-warmup" -> c.appWarmupSeconds = positive(flag, v, 0);
                case "--duration" -> {
                    c.durationSeconds = positive(flag, v, 1);
                    c.durationGiven = true;
                }
                case "--clients" -> {
                    c.clients = positive(flag, v, 1);
                    c.clientsGiven = true;
                }
                case "--modes" -> c.modes = list(v).stream().map(m -> oneOf(flag, m, List.of("pessimistic", "optimistic"))).toList();
                case "--mode" -> c.chaosMode = oneOf(flag, v, List.of("pessimistic", "optimistic"));
                case "--workloads" -> c.workloads = list(v).stream().map(w -> oneOf(flag, w, List.of("uniform", "hot", "drain"))).toList();
                case "--open-workloads" -> c.openWorkloads = v.equals("none") ? List.of()
                        : list(v).stream().map(w -> oneOf(flag, w, List.of("uniform", "hot", "drain"))).toList();
                case "--open-rates" -> c.openRates = list(v).stream().map(r -> positive(flag, r, 1)).toList();
                case "--max-in-flight" -> c.maxInFlight = positive(flag, v, 1);
                case "--max-requests" -> c.maxRequests = positive(flag, v, 1);
                case "--hot-share" -> c.hotShare = Math.min(100, positive(flag, v, 0));
                case "--drain-withdrawals" -> c.drainWithdrawals = positive(flag, v, 1);
                case "--kill-every" -> {
                    int[] r = range(flag, v);
                    c.killMinSeconds = r[0];
                    c.killMaxSeconds = r[1];
                }
                case "--terminate-every" -> {
                    int[] r = range(flag, v);
                    c.terminateMinSeconds = r[0];
                    c.terminateMaxSeconds = r[1];
                }
                case "--pg-restarts" -> c.pgRestarts = positive(flag, v, 0);
                case "--transfer-budget" -> c.transferBudgetSeconds = positive(flag, v, 5);
                case "--small-rows" -> c.smallRows = positive(flag, v, 2);
                case "--large-rows" -> c.largeRows = positive(flag, v, 2);
                case "--warmup-requests" -> c.warmupRequests = positive(flag, v, 0);
                case "--rounds" -> c.rounds = positive(flag, v, 1);
                case "--round-requests" -> c.roundRequests = positive(flag, v, 10);
                default -> throw new IllegalArgumentException("unknown option " + flag + "\n\n" + USAGE);
            }
        }
        if (c.command.equals("chaos")) {
            if (!c.durationGiven) {
                c.durationSeconds = 120;
            }
            if (!c.clientsGiven) {
                c.clients = 16;
            }
        }
        if (c.command.equals("history")) {
            if (!c.clientsGiven) {
                c.clients = 4;
            }
            if (c.rateLimit == null) {
                c.rateLimit = "0";
            }
        }
        if (c.projectDir == null) {
            c.projectDir = Path.of("").toAbsolutePath();
        }
        if (c.resultsDir == null) {
            c.resultsDir = c.projectDir.resolve("bench/results");
        }
        if (c.appJar == null) {
            c.appJar = c.projectDir.resolve("target/paystream-0.1.0-SNAPSHOT.jar");
        }
        if (c.workDir == null) {
            throw new IllegalArgumentException("--workdir is required (bench/run.sh passes it)");
        }
        if (c.dbUrl != null) {
            if (!c.dbUrl.matches("jdbc:postgresql://(127\\.0\\.0\\.1|localhost)(:\\d+)?/[A-Za-z0-9_]+")) {
                throw new IllegalArgumentException("--db-url must be jdbc:postgresql://127.0.0.1:PORT/DATABASE: "
                        + "this harness sends traffic to this machine only");
            }
            if (c.dbUser == null || c.dbPassword == null) {
                throw new IllegalArgumentException("--db-url needs --db-user and --db-password");
            }
        } else if (c.pgBinariesJar == null) {
            throw new IllegalArgumentException("--pg-binaries-jar is required without --db-url (bench/run.sh passes it)");
        }
        return c;
    }

    private static int positive(String flag, String v, int min) {
        try {
            int n = Integer.parseInt(v.strip());
            if (n < min) {
                throw new IllegalArgumentException(flag + " must be at least " + min);
            }
            return n;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(flag + " needs a number, got '" + v + "'");
        }
    }

    private static String oneOf(String flag, String v, List<String> allowed) {
        String s = v.strip().toLowerCase(Locale.ROOT);
        if (!allowed.contains(s)) {
            throw new IllegalArgumentException(flag + ": '" + v + "' is not one of " + allowed);
        }
        return s;
    }

    private static List<String> list(String v) {
        return Arrays.stream(v.split(",")).map(String::strip).filter(s -> !s.isEmpty()).toList();
    }

    private static int[] range(String flag, String v) {
        String[] parts = v.split("-");
        int min = positive(flag, parts[0], 0);
        int max = parts.length > 1 ? positive(flag, parts[1], min) : min;
        return new int[] {min, max};
    }
}
