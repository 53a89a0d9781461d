package io.paystream.bench;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;

/**
 * Entry point of the harness: {@code bench} (the default), {@code chaos}, {@code history} or {@code lb} (LoadBalanced). Started by bench/run.sh,
 * which installs what is missing, builds the jars and cleans up after a crash. Everything this
 * process starts (PostgreSQL, the application) it also stops, on success, failure or Ctrl-C.
 * {@code pgbench-script} ({@link PgbenchScript}) only writes the transfer script for another benchmark.
 */
public final class Main {

    private Main() {
    }

    /** Held strongly: java.util.logging forgets loggers nobody references, and their levels with them. */
    private static final java.util.logging.Logger NETTY_LOG = java.util.logging.Logger.getLogger("reactor.netty");
    private static final java.util.logging.Logger NETTY_IO_LOG = java.util.logging.Logger.getLogger("io.netty");

    public static void main(String[] args) {
        System.setProperty("java.awt.headless", "true");
        // Cut connections are the point of the chaos test: the client library's warnings about them are noise.
        reactor.util.Loggers.useJdkLoggers();
        NETTY_LOG.setLevel(java.util.logging.Level.SEVERE);
        NETTY_IO_LOG.setLevel(java.util.logging.Level.SEVERE);
        if (args.length > 0 && args[0].equals("pgbench-script")) {
            PgbenchScript.main(args); // writes a file and exits; starts nothing
            return;
        }
        if (args.length > 0 && args[0].equals("lb")) {
            LoadBalanced.main(args); // its own options, processes and clean-up
            return;
        }
        Config c;
        try {
            c = Config.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println(e.getMessage());
            System.exit(2);
            return;
        }
        int status = 0;
        Postgres db = null;
        App app = null;
        try {
            Files.createDirectories(c.workDir);
            if (!Files.exists(c.appJar)) {
                throw new IllegalStateException("no application jar at " + c.appJar + " (bench/run.sh builds it)");
            }
            // A private copy: rebuilding target/ during the run cannot change the application under test.
            Path jar = c.workDir.resolve("app.jar");
            Files.copy(c.appJar, jar, StandardCopyOption.REPLACE_EXISTING);
            db = c.dbUrl != null ? Postgres.external(c) : Postgres.embedded(c.workDir);
            app = new App(jar, c.appJava, c.workDir, db, c.appJvmOpts, c.rateLimit);
            Postgres finalDb = db;
            App finalApp = app;
            Thread cleanup = new Thread(() -> {
                finalApp.kill9();
                finalDb.stop();
            }, "bench-cleanup");
            Runtime.getRuntime().addShutdownHook(cleanup);
            watchdog(c);
            db.create(c.pgBinariesJar);
            if (c.command.equals("chaos")) {
                new Chaos(c, db, app).run();
            } else if (c.command.equals("history")) {
                if (!new History(c, db, app).run()) {
                    status = 1;
                }
            } else {
                new Bench(c, db, app).run();
            }
        } catch (Exception e) {
            Log.warn("the run failed: %s", e);
            e.printStackTrace(System.out);
            status = 1;
        } finally {
            if (app != null) {
                app.stop();
            }
            if (db != null) {
                db.stop();
            }
        }
        System.exit(status);
    }

    /** A hard upper bound on the whole run: past it, the process exits and its shutdown hook cleans up. */
    private static void watchdog(Config c) {
        long perPhase = c.warmupSeconds + c.durationSeconds + 40L;
        long phases = c.command.equals("chaos") ? 0
                : (long) c.modes.size() * (2 + c.workloads.size() + (long) c.openWorkloads.size() * c.openRates.size());
        long budget = c.command.equals("chaos") ? c.durationSeconds * 2L + c.transferBudgetSeconds + 900
                : c.command.equals("history")
                        // Seeding (about 1 s per 10,000 rows here, with the audits), then every request at 20/s or faster.
                        ? 1800 + c.largeRows / 1000L + (c.warmupRequests + 8L * c.rounds * c.roundRequests) / 20
                : phases * perPhase * 2 + 900;
        Thread t = new Thread(() -> {
            Sh.sleep(Duration.ofSeconds(budget).toMillis());
            Log.warn("the run exceeded its time budget of %d s; stopping everything", budget);
            System.exit(3);
        }, "bench-watchdog");
        t.setDaemon(true);
        t.start();
    }
}
