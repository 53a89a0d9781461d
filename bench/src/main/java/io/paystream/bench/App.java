package io.paystream.bench;

import java.io.File;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * The application under test: the production jar, started with {@code java -jar} and configured only
 * through environment variables, as in production. Every start appends to one log file in the work
 * directory; the pid of the running process is kept in {@code app.pid} for the wrapper script's
 * clean-up.
 */
final class App {

    private static final String ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

    final int port;
    final String apiKey;
    private final Path jar;
    private final Path java;
    private final Path workDir;
    private final Postgres db;
    private final List<String> jvmOpts;
    private final HttpClient health = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
    private Process process;
    private String mode;
    private int starts;

    private final String rateLimit;

    App(Path jar, Path java, Path workDir, Postgres db, String jvmOpts, String rateLimit) {
        this.rateLimit = rateLimit;
        this.jar = jar;
        this.java = java;
        this.workDir = workDir;
        this.db = db;
        this.jvmOpts = jvmOpts == null || jvmOpts.isBlank() ? List.of() : Arrays.asList(jvmOpts.trim().split("\\s+"));
        this.port = Postgres.freePort();
        this.apiKey = adminKey();
    }

    /** This JVM's own java executable: the application's when no other is given. */
    static Path ownJava() {
        return Path.of(System.getProperty("java.home"), "bin", "java");
    }

    /** What a java executable says of its version, e.g. "openjdk 25.0.1 2025-10-21 LTS". */
    static String describeJava(Path java) {
        String version = Sh.firstLine(List.of(java.toString(), "--version"));
        return version.isEmpty() ? java.toString() : version + " (" + java + ")";
    }

    /** An admin API key in the format the application expects: psk_admin_ and 40 random characters. */
    static String adminKey() {
        SecureRandom random = new SecureRandom();
        StringBuilder key = new StringBuilder("psk_admin_");
        for (int i = 0; i < 40; i++) {
            key.append(ALPHABET.charAt(random.nextInt(ALPHABET.length())));
        }
        return key.toString();
    }

    Path logFile() {
        return workDir.resolve("app.log");
    }

    String mode() {
        return mode;
    }

    int starts() {
        return starts;
    }

    synchronized void start(String concurrencyMode) throws IOException {
        if (process != null && process.isAlive()) {
            throw new IllegalStateException("the application is already running (pid " + process.pid() + ")");
        }
        this.mode = concurrencyMode;
        List<String> command = new ArrayList<>();
        command.add(java.toString());
        command.addAll(jvmOpts);
        command.addAll(List.of("-jar", jar.toString()));
        ProcessBuilder builder = new ProcessBuilder(command).directory(workDir.toFile()).redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(logFile().toFile()))
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
        Map<String, String> env = builder.environment();
        // Only what this run sets: nothing from the calling shell may change the configuration.
        env.keySet().removeIf(k -> k.startsWith("SPRING_") || k.startsWith("PAYSTREAM_") || k.startsWith("SERVER_")
                || k.startsWith("PG") || k.equals("JAVA_TOOL_OPTIONS") || k.equals("JDK_JAVA_OPTIONS"));
        env.put("SERVER_PORT", Integer.toString(port));
        env.put("SERVER_ADDRESS", "127.0.0.1");
        env.put("SPRING_R2DBC_URL", db.r2dbcUrl());
        env.put("SPRING_R2DBC_USERNAME", db.appUser);
        env.put("SPRING_R2DBC_PASSWORD", db.appPassword);
        env.put("SPRING_FLYWAY_URL", db.jdbcUrl());
        env.put("PAYSTREAM_CONCURRENCY_MODE", concurrencyMode);
        env.put("PAYSTREAM_ADMIN_API_KEY", apiKey);
        if (rateLimit != null) {
            env.put("PAYSTREAM_RATE_LIMIT_PER_SECOND", rateLimit);
            env.put("PAYSTREAM_RATE_LIMIT_BURST", Long.toString(Math.max(1, 2 * Long.parseLong(rateLimit))));
        }
        Files.writeString(logFile(), "\n===== paystream bench: starting the application (" + concurrencyMode
                + "), start #" + (starts + 1) + " =====\n", StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                StandardOpenOption.APPEND);
        process = builder.start();
        starts++;
        Files.writeString(workDir.resolve("app.pid"), Long.toString(process.pid()), StandardCharsets.UTF_8);
    }

    synchronized boolean alive() {
        return process != null && process.isAlive();
    }

    synchronized long pid() {
        return process == null ? -1 : process.pid();
    }

    /** Waits until /actuator/health answers UP; false if the process dies or the time runs out. */
    boolean awaitReady(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            if (!alive()) {
                return false;
            }
            if (isUp()) {
                return true;
            }
            Sh.sleep(100);
        }
        return false;
    }

    boolean isUp() {
        try {
            HttpRequest request = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/actuator/health"))
                    .header("Authorization", "Bearer " + apiKey).timeout(Duration.ofSeconds(2)).GET().build();
            HttpResponse<String> response = health.send(request, HttpResponse.BodyHandlers.ofString());
            return response.statusCode() == 200 && response.body().contains("\"UP\"");
        } catch (IOException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    void startAndAwaitReady(String concurrencyMode, Duration timeout) throws IOException {
        long t0 = System.nanoTime();
        start(concurrencyMode);
        if (!awaitReady(timeout)) {
            String tail = tail(40);
            stop();
            throw new IllegalStateException("the application did not become ready within " + timeout.toSeconds()
                    + " s; last lines of " + logFile() + ":\n" + tail);
        }
        Log.info("Application up on 127.0.0.1:%d (%s, pid %d) after %.1f s", port, concurrencyMode, pid(),
                (System.nanoTime() - t0) / 1e9);
    }

    /** Graceful stop (SIGTERM; the application drains in-flight requests), then SIGKILL after 40 s. */
    synchronized void stop() {
        if (process == null) {
            return;
        }
        if (process.isAlive()) {
            process.destroy();
            try {
                if (!process.waitFor(40, TimeUnit.SECONDS)) {
                    Log.warn("the application did not stop within 40 s of SIGTERM; killing it");
                    process.destroyForcibly();
                    process.waitFor(10, TimeUnit.SECONDS);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                process.destroyForcibly();
            }
        }
        process = null;
    }

    /** kill -9: no shutdown hook, no draining, connections to PostgreSQL cut mid-transaction. */
    synchronized void kill9() {
        if (process == null) {
            return;
        }
        process.destroyForcibly(); // SIGKILL on Linux
        try {
            process.waitFor(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        process = null;
    }

    String tail(int lines) {
        try {
            List<String> all = Files.readAllLines(logFile(), StandardCharsets.UTF_8);
            return String.join("\n", all.subList(Math.max(0, all.size() - lines), all.size()));
        } catch (IOException e) {
            return "(no log: " + e.getMessage() + ")";
        }
    }
}
