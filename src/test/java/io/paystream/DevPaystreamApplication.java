package io.paystream;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicReference;

import io.paystream.testsupport.EmbeddedPostgres;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.boot.SpringApplication;
import org.springframework.context.ConfigurableApplicationContext;

/**
 * Runs Paystream for development ({@code ./mvnw spring-boot:test-run}) on a local PostgreSQL that needs no
 * installation: an embedded server whose data persists between runs.
 *
 * <p>With {@code SPRING_R2DBC_URL} (environment) or {@code spring.r2dbc.url} (system property or argument) set,
 * no server is started and the application uses that database as configured.
 *
 * <p>Otherwise the data lives in {@code PAYSTREAM_DEV_DATA_DIR}, else {@code /var/lib/paystream-dev} when run as
 * root, else {@code ${XDG_DATA_HOME:-$HOME/.local/share}/paystream-dev}; the server listens on 127.0.0.1 at
 * {@code PAYSTREAM_DEV_DB_PORT} (default 54329).
 */
public final class DevPaystreamApplication {

    private static final Logger log = LoggerFactory.getLogger(DevPaystreamApplication.class);

    static final int DEFAULT_DB_PORT = 54329;

    static final String DATABASE = "paystream";

    private DevPaystreamApplication() {
    }

    public static void main(String[] args) {
        if (externalDatabaseConfigured(args)) {
            SpringApplication.from(PaystreamApplication::main).run(args);
            return;
        }
        Path dataDir = devDataDir();
        EmbeddedPostgres.Options durable = EmbeddedPostgres.Options.forDevelopment();
        // Stopped by the hook below instead of its own, so that it goes down only after the application has
        // finished its graceful shutdown (JVM shutdown hooks run in no particular order).
        EmbeddedPostgres postgres = EmbeddedPostgres.start(dataDir, devDbPort(), new EmbeddedPostgres.Options(durable.fsync(),
                durable.unprivilegedOsUser(), durable.startTimeoutMs(), durable.stopTimeoutMs(), false));
        AtomicReference<ConfigurableApplicationContext> application = new AtomicReference<>();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            ConfigurableApplicationContext context = application.get();
            if (context != null) {
                // Waits for Spring's own shutdown hook if that is closing the context already.
                context.close();
            }
            postgres.stop();
        }, "paystream-dev-shutdown"));

        postgres.createDatabaseIfMissing(DATABASE);
        log.info("Development database: {} on 127.0.0.1:{}, data in {} (stop the application and delete that directory to wipe it)",
                postgres.jdbcUrl(DATABASE), postgres.port(), dataDir);

        // System properties outrank application.properties and environment variables, but not command-line arguments.
        System.setProperty("spring.r2dbc.url", postgres.r2dbcUrl(DATABASE));
        System.setProperty("spring.r2dbc.username", postgres.username());
        System.setProperty("spring.r2dbc.password", postgres.password());
        System.setProperty("spring.flyway.url", postgres.jdbcUrl(DATABASE));
        System.setProperty("spring.flyway.user", postgres.username());
        System.setProperty("spring.flyway.password", postgres.password());
        String generatedAdminKey = adminKeyUnlessConfigured();
        application.set(SpringApplication.from(PaystreamApplication::main).run(args).getApplicationContext());
        if (generatedAdminKey != null) {
            // Printed once, to the console only, never to a log: it is the development admin's secret.
            System.out.println();
            System.out.println("  Development admin API key (this run only; set PAYSTREAM_ADMIN_API_KEY to choose one):");
            System.out.println("  " + generatedAdminKey);
            System.out.println("  curl -H 'Authorization: Bearer " + generatedAdminKey + "' localhost:"
                    + application.get().getEnvironment().getProperty("local.server.port") + "/v1/accounts");
            System.out.println();
        }
    }

    /** In the dev run a missing admin key is generated: the API is unusable without one. */
    private static String adminKeyUnlessConfigured() {
        if (isSet(System.getenv("PAYSTREAM_ADMIN_API_KEY")) || isSet(System.getProperty("paystream.security.admin-api-key"))) {
            return null;
        }
        byte[] secret = new byte[32];
        new java.security.SecureRandom().nextBytes(secret);
        String key = "psk_" + java.util.Base64.getUrlEncoder().withoutPadding().encodeToString(secret);
        System.setProperty("paystream.security.admin-api-key", key);
        return key;
    }

    private static boolean externalDatabaseConfigured(String[] args) {
        return isSet(System.getenv("SPRING_R2DBC_URL"))
                || isSet(System.getProperty("spring.r2dbc.url"))
                || Arrays.stream(args).anyMatch(arg -> arg.startsWith("--spring.r2dbc.url="));
    }

    static Path devDataDir() {
        String configured = System.getenv("PAYSTREAM_DEV_DATA_DIR");
        if (isSet(configured)) {
            return Path.of(configured).toAbsolutePath();
        }
        if (EmbeddedPostgres.runningAsRoot()) {
            // PostgreSQL then runs as an unprivileged user who cannot enter /root (mode 0700).
            return Path.of("/var/lib/paystream-dev");
        }
        String xdgDataHome = System.getenv("XDG_DATA_HOME");
        // $HOME first: the JVM's user.home comes from the password database and ignores it.
        String home = isSet(System.getenv("HOME")) ? System.getenv("HOME") : System.getProperty("user.home");
        Path dataHome = isSet(xdgDataHome) ? Path.of(xdgDataHome) : Path.of(home, ".local", "share");
        return dataHome.resolve("paystream-dev");
    }

    private static int devDbPort() {
        String configured = System.getenv("PAYSTREAM_DEV_DB_PORT");
        if (!isSet(configured)) {
            return DEFAULT_DB_PORT;
        }
        try {
            return Integer.parseInt(configured.strip());
        }
        catch (NumberFormatException ex) {
            throw new IllegalArgumentException("PAYSTREAM_DEV_DB_PORT is not a port number: " + configured, ex);
        }
    }

    private static boolean isSet(String value) {
        return value != null && !value.isBlank();
    }
}
