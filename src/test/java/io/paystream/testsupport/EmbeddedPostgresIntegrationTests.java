package io.paystream.testsupport;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The launcher across restarts and crashes, on one base dir (binaries extracted once for the class). Each test
 * starts from an empty data directory.
 */
class EmbeddedPostgresIntegrationTests {

    private static final long TEST_TIMEOUT_MS = 30_000;

    private static Path baseDir;

    private final List<EmbeddedPostgres> started = new ArrayList<>();

    @BeforeAll
    static void createBaseDir() throws IOException {
        baseDir = Files.createTempDirectory("paystream-launcher-test-");
        // As root the server runs as an unprivileged user, who must be able to enter the directory.
        Files.setPosixFilePermissions(baseDir, PosixFilePermissions.fromString("rwxr-xr-x"));
    }

    @AfterEach
    void stopServers() throws IOException {
        started.forEach(EmbeddedPostgres::stop);
        PostgresBinaries.deleteTree(baseDir.resolve("data"));
    }

    @AfterAll
    static void deleteBaseDir() throws IOException {
        PostgresBinaries.deleteTree(baseDir);
    }

    @Test
    void keepsDataAcrossRestartsAndTakesOverAServerLeftRunning() throws Exception {
        EmbeddedPostgres first = start(0);
        first.createDatabaseIfMissing("ledger");
        execute(first, "CREATE TABLE entries (amount_cents bigint)", "INSERT INTO entries VALUES (1250)");

        // As if the previous JVM had been killed with kill -9: its server is still running on the same port.
        EmbeddedPostgres second = start(first.port());
        assertThat(second.reusedRunningServer()).isTrue();
        assertThat(sumOfEntries(second)).isEqualTo(1250);

        second.stop();
        assertThat(Files.exists(second.dataDir().resolve("postmaster.pid"))).isFalse();
        EmbeddedPostgres third = start(0);
        assertThat(third.reusedRunningServer()).isFalse();
        assertThat(sumOfEntries(third)).isEqualTo(1250);

        // A server left running on another port than now wanted is stopped and replaced.
        int otherPort = third.port() + 1 == 65536 ? third.port() - 1 : third.port() + 1;
        EmbeddedPostgres fourth = start(otherPort);
        assertThat(fourth.reusedRunningServer()).isFalse();
        assertThat(fourth.port()).isEqualTo(otherPort);
        assertThat(sumOfEntries(fourth)).isEqualTo(1250);
        assertThat(portAnswers(third.port())).isFalse();
    }

    @Test
    void startsDespiteAStaleLockFileOfAKilledServer() throws Exception {
        EmbeddedPostgres crashed = start(0);
        Path pidFile = crashed.dataDir().resolve("postmaster.pid");
        long postmasterPid = Long.parseLong(Files.readAllLines(pidFile).get(0).strip());
        ProcessHandle postmaster = ProcessHandle.of(postmasterPid).orElseThrow();
        postmaster.destroyForcibly();
        postmaster.onExit().get(TEST_TIMEOUT_MS, TimeUnit.MILLISECONDS);
        assertThat(pidFile).exists();

        EmbeddedPostgres restarted = start(crashed.port());
        assertThat(restarted.reusedRunningServer()).isFalse();
        assertThat(portAnswers(restarted.port())).isTrue();
        restarted.stop();

        // A lock file naming a live process that is not PostgreSQL (the pid was reused): this very JVM.
        Files.writeString(pidFile, ProcessHandle.current().pid() + "\n" + crashed.dataDir() + "\n0\n" + crashed.port() + "\n");
        EmbeddedPostgres afterPidReuse = start(crashed.port());
        assertThat(afterPidReuse.reusedRunningServer()).isFalse();
        assertThat(portAnswers(afterPidReuse.port())).isTrue();
    }

    @Test
    void reportsTheServerLogWhenStartFails() throws Exception {
        EmbeddedPostgres healthy = start(0);
        healthy.stop();
        // An invalid setting makes postgres exit right away with a message in its log.
        Files.writeString(healthy.dataDir().resolve("postgresql.auto.conf"), "shared_buffers = 'lots'\n");
        try {
            start(0);
            throw new AssertionError("start should have failed");
        }
        catch (IllegalStateException expected) {
            assertThat(expected.getMessage()).contains("last lines of").contains("shared_buffers");
        }
    }

    private EmbeddedPostgres start(int port) {
        EmbeddedPostgres.Options defaults = EmbeddedPostgres.Options.forTests();
        EmbeddedPostgres postgres = EmbeddedPostgres.start(baseDir, port, new EmbeddedPostgres.Options(false,
                defaults.unprivilegedOsUser(), TEST_TIMEOUT_MS, TEST_TIMEOUT_MS, false));
        started.add(postgres);
        return postgres;
    }

    private static void execute(EmbeddedPostgres postgres, String... statements) throws SQLException {
        try (Connection connection = postgres.connect("ledger"); Statement statement = connection.createStatement()) {
            for (String sql : statements) {
                statement.execute(sql);
            }
        }
    }

    private static long sumOfEntries(EmbeddedPostgres postgres) throws SQLException {
        try (Connection connection = postgres.connect("ledger");
                Statement statement = connection.createStatement();
                ResultSet rs = statement.executeQuery("SELECT sum(amount_cents) FROM entries")) {
            rs.next();
            return rs.getLong(1);
        }
    }

    private static boolean portAnswers(int port) {
        try (Connection ignored = Jdbc.connect("jdbc:postgresql://127.0.0.1:" + port + "/postgres", "postgres", "postgres")) {
            return true;
        }
        catch (SQLException ex) {
            return false;
        }
    }
}
