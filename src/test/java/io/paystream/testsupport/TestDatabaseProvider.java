package io.paystream.testsupport;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermissions;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

import org.flywaydb.core.Flyway;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.testcontainers.DockerClientFactory;
import org.testcontainers.postgresql.PostgreSQLContainer;

/**
 * The one PostgreSQL server of a test JVM, and the databases the test contexts get on it.
 *
 * <p>The server is, in this order of preference: the one at {@value #EXTERNAL_URL_ENV} (a JDBC URL whose user
 * may CREATE DATABASE); a Testcontainers {@value #CONTAINER_IMAGE} container when a Docker engine answers; or an
 * {@link EmbeddedPostgres} in a temporary directory, stopped and deleted when the JVM exits.
 *
 * <p>Flyway migrates a template database once per JVM; every {@link #createDatabase()} is then a cheap
 * {@code CREATE DATABASE ... TEMPLATE} copy of it.
 */
public final class TestDatabaseProvider {

    /** Where the server comes from. */
    public enum Source { EXTERNAL, DOCKER, EMBEDDED }

    public static final String EXTERNAL_URL_ENV = "PAYSTREAM_TEST_DATABASE_URL";

    static final String CONTAINER_IMAGE = "postgres:18-alpine";

    static final String TEMPLATE_DATABASE = "paystream_template";

    private static final Logger log = LoggerFactory.getLogger(TestDatabaseProvider.class);

    /** Embedded test servers live in {@code java.io.tmpdir} under this prefix. */
    private static final String EMBEDDED_DIR_PREFIX = "paystream-test-pg-";

    /** Records which JVM owns an embedded test server, so a later JVM can reap it if that JVM was killed. */
    private static final String OWNER_PID_FILE = "owner.pid";

    /** PostgreSQL's SQLSTATE when the template is still in use by another session. */
    private static final String OBJECT_IN_USE = "55006";

    private static final long TEMPLATE_BUSY_RETRY_MS = 10_000;

    private static TestDatabaseProvider instance;

    private static RuntimeException startFailure;

    /**
     * Set when the JVM exits and the server is about to go away: contexts still cached then are closed by their
     * own shutdown hooks at the same time, and dropping their databases would only produce noise.
     */
    private static volatile boolean serverGoingAway;

    private final Source source;

    private final DatabaseServer server;

    private final String templateDatabase;

    private final String databasePrefix;

    private final AtomicInteger databaseCounter = new AtomicInteger();

    private TestDatabaseProvider(Source source, DatabaseServer server, String templateDatabase, String databasePrefix) {
        this.source = source;
        this.server = server;
        this.templateDatabase = templateDatabase;
        this.databasePrefix = databasePrefix;
    }

    /**
     * The provider of this JVM: starts the server and migrates the template on first use. A failure is
     * remembered, so later test classes fail fast with the same cause instead of trying again.
     */
    public static synchronized TestDatabaseProvider instance() {
        if (instance != null) {
            return instance;
        }
        if (startFailure != null) {
            throw new IllegalStateException("The test database server could not be set up earlier in this JVM", startFailure);
        }
        try {
            TestDatabaseProvider provider = startServer();
            provider.migrateTemplate();
            instance = provider;
            return provider;
        }
        catch (RuntimeException ex) {
            startFailure = ex;
            throw ex;
        }
    }

    public Source source() {
        return source;
    }

    public String templateDatabase() {
        return templateDatabase;
    }

    public String username() {
        return server.username();
    }

    public String password() {
        return server.password();
    }

    public String jdbcUrl(String database) {
        return server.jdbcUrl(database);
    }

    public String r2dbcUrl(String database) {
        return server.r2dbcUrl(database);
    }

    /**
     * Creates a new, empty-of-test-data copy of the migrated template. Serialized: PostgreSQL refuses to copy a
     * template while another session is connected to it.
     */
    public synchronized TestDatabase createDatabase() {
        String name = databasePrefix + databaseCounter.incrementAndGet();
        long deadline = System.currentTimeMillis() + TEMPLATE_BUSY_RETRY_MS;
        while (true) {
            try {
                execute("CREATE DATABASE " + name + " TEMPLATE " + templateDatabase);
                return new TestDatabase(name, jdbcUrl(name), r2dbcUrl(name), username(), password());
            }
            catch (SQLException ex) {
                if (!OBJECT_IN_USE.equals(ex.getSQLState()) || System.currentTimeMillis() > deadline) {
                    throw new IllegalStateException("Could not create test database " + name + " from " + templateDatabase
                            + " on " + server + ": " + ex.getMessage(), ex);
                }
                sleepMs(200);
            }
        }
    }

    /** Drops {@code database}, disconnecting whoever is still connected. Best effort: failures are only logged. */
    public void dropDatabase(String database) {
        if (serverGoingAway) {
            return;
        }
        try {
            execute("DROP DATABASE IF EXISTS " + database + " WITH (FORCE)");
        }
        catch (SQLException | RuntimeException ex) {
            log.warn("Could not drop test database {}: {}", database, ex.getMessage());
        }
    }

    @Override
    public String toString() {
        return "TestDatabaseProvider[" + source + ", " + server + ", template " + templateDatabase + "]";
    }

    // ---------------------------------------------------------------------------------------------------------

    private static TestDatabaseProvider startServer() {
        String externalUrl = System.getenv(EXTERNAL_URL_ENV);
        if (externalUrl != null && !externalUrl.isBlank()) {
            DatabaseServer server = DatabaseServer.fromJdbcUrl(externalUrl.strip());
            // A shared server may serve several test JVMs at once (parallel CI jobs): keep their names apart.
            String runId = UUID.randomUUID().toString().replace("-", "").substring(0, 8);
            TestDatabaseProvider provider = new TestDatabaseProvider(Source.EXTERNAL, server,
                    TEMPLATE_DATABASE + "_" + runId, "test_" + runId + "_");
            Runtime.getRuntime().addShutdownHook(new Thread(provider::dropTemplateQuietly, "paystream-test-template-drop"));
            log.info("Test databases on the external server {}", server);
            return provider;
        }
        if (dockerAvailable()) {
            return startContainer();
        }
        return startEmbedded();
    }

    /**
     * Asks Testcontainers only when some Docker endpoint is configured at all: without one, its discovery runs
     * through every strategy and logs several errors before giving up.
     */
    static boolean dockerAvailable() {
        if (!dockerEndpointConfigured()) {
            return false;
        }
        try {
            return DockerClientFactory.instance().isDockerAvailable();
        }
        catch (Throwable ex) {
            log.debug("No usable Docker engine: {}", ex.toString());
            return false;
        }
    }

    private static boolean dockerEndpointConfigured() {
        String dockerHost = System.getenv("DOCKER_HOST");
        if (dockerHost != null && !dockerHost.isBlank()) {
            return true;
        }
        String home = System.getProperty("user.home");
        String runtimeDir = System.getenv("XDG_RUNTIME_DIR");
        Stream<Path> candidates = Stream.of(
                Path.of("/var/run/docker.sock"),
                Path.of(home, ".testcontainers.properties"),
                Path.of(home, ".docker", "run", "docker.sock"),
                Path.of(home, ".docker", "desktop", "docker.sock"),
                Path.of(home, ".colima", "default", "docker.sock"),
                Path.of(home, ".rd", "docker.sock"),
                runtimeDir == null ? Path.of("/nonexistent") : Path.of(runtimeDir, "docker.sock"));
        return candidates.anyMatch(Files::exists);
    }

    private static TestDatabaseProvider startContainer() {
        PostgreSQLContainer container = new PostgreSQLContainer(CONTAINER_IMAGE)
                .withCommand("postgres", "-c", "max_connections=300", "-c", "fsync=off");
        container.start();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            serverGoingAway = true;
            container.stop();
        }, "paystream-test-postgres-container-stop"));
        DatabaseServer server = new DatabaseServer(container.getHost() + ":" + container.getMappedPort(5432),
                container.getDatabaseName(), container.getUsername(), container.getPassword(), "");
        log.info("Test databases in a {} container at {}", CONTAINER_IMAGE, server.hostAndPort());
        return new TestDatabaseProvider(Source.DOCKER, server, TEMPLATE_DATABASE, "test_");
    }

    private static TestDatabaseProvider startEmbedded() {
        Path tempRoot = Path.of(System.getProperty("java.io.tmpdir")).toAbsolutePath();
        reapAbandonedEmbeddedServers(tempRoot);
        Path baseDir;
        try {
            baseDir = Files.createTempDirectory(tempRoot, EMBEDDED_DIR_PREFIX);
            // createTempDirectory makes it 0700; as root the server runs as another user who must get in.
            Files.setPosixFilePermissions(baseDir, PosixFilePermissions.fromString("rwxr-xr-x"));
            Files.writeString(baseDir.resolve(OWNER_PID_FILE), Long.toString(ProcessHandle.current().pid()));
        }
        catch (IOException ex) {
            throw new IllegalStateException("Could not create a directory for the embedded test server in " + tempRoot, ex);
        }
        EmbeddedPostgres.Options defaults = EmbeddedPostgres.Options.forTests();
        // This provider's own hook stops the server and then deletes its directory, in that order.
        EmbeddedPostgres.Options options = new EmbeddedPostgres.Options(defaults.fsync(), defaults.unprivilegedOsUser(),
                defaults.startTimeoutMs(), defaults.stopTimeoutMs(), false);
        EmbeddedPostgres postgres = EmbeddedPostgres.start(baseDir, 0, options);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            serverGoingAway = true;
            postgres.stop();
            deleteQuietly(baseDir);
        }, "paystream-test-postgres-stop"));
        DatabaseServer server = new DatabaseServer(postgres.host() + ":" + postgres.port(), "postgres",
                postgres.username(), postgres.password(), "");
        log.info("Test databases on an embedded PostgreSQL at {} (in {})", server.hostAndPort(), baseDir);
        return new TestDatabaseProvider(Source.EMBEDDED, server, TEMPLATE_DATABASE, "test_");
    }

    /**
     * A test JVM killed with kill -9 (a surefire timeout, a cancelled CI job) leaves its server running and its
     * directory behind; stop and delete those whose owning JVM is gone.
     */
    private static void reapAbandonedEmbeddedServers(Path tempRoot) {
        List<Path> candidates;
        try (Stream<Path> children = Files.list(tempRoot)) {
            candidates = children.filter(p -> p.getFileName().toString().startsWith(EMBEDDED_DIR_PREFIX)).toList();
        }
        catch (IOException ex) {
            return;
        }
        for (Path dir : candidates) {
            Optional<Long> ownerPid = readPid(dir.resolve(OWNER_PID_FILE));
            boolean ownerAlive = ownerPid.flatMap(ProcessHandle::of).map(ProcessHandle::isAlive).orElse(false);
            if (ownerAlive || (ownerPid.isEmpty() && isRecent(dir))) {
                continue;
            }
            readPid(dir.resolve("data").resolve("postmaster.pid")).flatMap(ProcessHandle::of)
                    // Never signal a process that merely inherited the pid number.
                    .filter(process -> process.info().command().map(command -> command.endsWith("/postgres")).orElse(false))
                    .ifPresent(postmaster -> {
                // SIGTERM: a smart shutdown, which is immediate here because the clients died with their JVM.
                postmaster.destroy();
                try {
                    postmaster.onExit().get(15, TimeUnit.SECONDS);
                }
                catch (Exception ex) {
                    postmaster.destroyForcibly();
                }
            });
            log.info("Deleting {} left behind by a test JVM that no longer runs", dir);
            deleteQuietly(dir);
        }
    }

    /** A directory without an owner file may be one another JVM is creating right now. */
    private static boolean isRecent(Path dir) {
        try {
            FileTime modified = Files.getLastModifiedTime(dir);
            return modified.toInstant().isAfter(Instant.now().minus(Duration.ofHours(1)));
        }
        catch (IOException ex) {
            return true;
        }
    }

    private static Optional<Long> readPid(Path file) {
        try {
            List<String> lines = Files.readAllLines(file);
            return lines.isEmpty() ? Optional.empty() : Optional.of(Long.parseLong(lines.get(0).strip()));
        }
        catch (IOException | NumberFormatException ex) {
            return Optional.empty();
        }
    }

    private void migrateTemplate() {
        try {
            execute("CREATE DATABASE " + templateDatabase);
            Flyway.configure()
                    .dataSource(jdbcUrl(templateDatabase), username(), password())
                    .locations("classpath:db/migration")
                    .load()
                    .migrate();
            // Nobody may connect to the template from now on (a lingering session would make every copy fail),
            // and it is marked as the template it is.
            execute("ALTER DATABASE " + templateDatabase + " WITH IS_TEMPLATE true ALLOW_CONNECTIONS false");
            execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + templateDatabase
                    + "' AND pid <> pg_backend_pid()");
        }
        catch (SQLException ex) {
            throw new IllegalStateException("Could not prepare the template database " + templateDatabase + " on " + server
                    + ": " + ex.getMessage(), ex);
        }
    }

    private void dropTemplateQuietly() {
        try {
            execute("ALTER DATABASE " + templateDatabase + " WITH IS_TEMPLATE false");
            execute("DROP DATABASE IF EXISTS " + templateDatabase + " WITH (FORCE)");
        }
        catch (SQLException | RuntimeException ex) {
            // Best effort at JVM exit; a leftover template only costs disk space.
        }
    }

    private void execute(String sql) throws SQLException {
        try (Connection connection = Jdbc.connect(jdbcUrl(server.adminDatabase()), username(), password());
                Statement statement = connection.createStatement()) {
            statement.execute(sql);
        }
    }

    private static void deleteQuietly(Path dir) {
        try {
            PostgresBinaries.deleteTree(dir);
        }
        catch (IOException ex) {
            // A leftover temp dir is reaped by the next test JVM.
        }
    }

    private static void sleepMs(long millis) {
        try {
            Thread.sleep(millis);
        }
        catch (InterruptedException ex) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("Interrupted", ex);
        }
    }
}
