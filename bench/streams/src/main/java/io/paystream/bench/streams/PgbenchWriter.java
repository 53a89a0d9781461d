package io.paystream.bench.streams;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import org.HdrHistogram.Histogram;

/**
 * The writes of the other replicas: pgbench commits the application's own transfer transaction (the
 * script the main benchmark generates from the application's sources, with the announcement a replica
 * makes after each commit) open loop at a fixed rate, while the replica under test only serves the
 * streams. One pgbench process, started once, bounded by its own {@code -T} and by a kill after a
 * grace period.
 */
final class PgbenchWriter {

    private static final long HIGHEST_MICROS = TimeUnit.SECONDS.toMicros(120);

    final List<String> command;
    final Path dir;
    private final Path output;
    private Process process;
    private long startedNanos;

    /** pgbench's own end-of-run summary, and the per-transaction log of the measured window. */
    static final class Summary {
        int exitCode = -1;
        boolean killed;
        String output = "";
        double tps = Double.NaN;
        long processed = -1;
        long failed = -1;
        long retried = -1;
        double latencyAverageMs = Double.NaN;
        double latencyStddevMs = Double.NaN;
        double lagAverageMs = Double.NaN;
        double lagMaxMs = Double.NaN;
        double connectMs = Double.NaN;
        long abortedClients;
        // From the per-transaction log, transactions that ended inside the measured window:
        long windowCompleted;
        long windowFailed;
        final Histogram windowLatency = new Histogram(HIGHEST_MICROS, 3);
        final Histogram windowLag = new Histogram(HIGHEST_MICROS, 3);
        long logLines;
    }

    /**
     * @param transfersPerSecond {@code -R}: each transfer changes two balances
     * @param seconds            {@code -T}
     */
    PgbenchWriter(String pgbench, String host, int port, String user, String database, Path script, Path dir,
            int clients, int threads, double transfersPerSecond, int seconds, int majorVersion) {
        this.dir = dir;
        this.output = dir.resolve("pgbench.out");
        List<String> c = new ArrayList<>(List.of(pgbench, "-h", host, "-p", Integer.toString(port), "-U", user,
                "-n", "-M", "prepared", "-c", Integer.toString(clients), "-j", Integer.toString(threads),
                "-R", String.format(Locale.ROOT, "%.1f", transfersPerSecond), "-T", Integer.toString(seconds),
                // -r: each statement's average latency in the summary, to see where a transaction's time goes.
                "-P", "5", "-r", "-f", script.toString(), "-l", "--log-prefix=" + dir.resolve("tx")));
        if (majorVersion >= 15) {
            // As the main benchmark runs it: a transaction that lost a race is retried, as the application does.
            c.addAll(List.of("--max-tries=65", "--failures-detailed"));
        }
        c.add(database);
        this.command = List.copyOf(c);
    }

    void start() throws IOException {
        Files.createDirectories(dir);
        ProcessBuilder b = new ProcessBuilder(command).directory(dir.toFile()).redirectErrorStream(true)
                .redirectOutput(output.toFile()).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
        // PG* variables of the calling shell would silently change what pgbench does.
        b.environment().keySet().removeIf(k -> k.startsWith("PG"));
        b.environment().put("LC_MESSAGES", "C");
        startedNanos = System.nanoTime();
        process = b.start();
    }

    long pid() {
        return process == null ? -1 : process.pid();
    }

    boolean alive() {
        return process != null && process.isAlive();
    }

    long startedNanos() {
        return startedNanos;
    }

    /** Waits at most {@code seconds} for pgbench to end by itself, then kills it. */
    void awaitExit(int seconds, Summary s) throws InterruptedException {
        if (process == null) {
            return;
        }
        if (!process.waitFor(seconds, TimeUnit.SECONDS)) {
            s.killed = true;
            process.destroy();
            if (!process.waitFor(5, TimeUnit.SECONDS)) {
                process.destroyForcibly();
                process.waitFor(5, TimeUnit.SECONDS);
            }
        }
        s.exitCode = process.isAlive() ? -1 : process.exitValue();
    }

    void destroy() {
        if (process != null && process.isAlive()) {
            process.destroyForcibly();
        }
    }

    /** Reads pgbench's summary and the per-transaction log of the transactions that ended in [from, to). */
    void read(Summary s, long fromMicros, long toMicros) throws IOException {
        s.output = Files.exists(output) ? Files.readString(output, StandardCharsets.UTF_8) : "";
        String out = s.output;
        s.tps = number(out, "tps = ([\\d.]+) \\(without initial connection time\\)");
        s.processed = (long) number(out, "number of transactions actually processed: (\\d+)");
        s.failed = (long) number(out, "number of failed transactions: (\\d+)");
        s.retried = (long) number(out, "number of transactions retried: (\\d+)");
        s.latencyAverageMs = number(out, "latency average = ([\\d.]+) ms");
        s.latencyStddevMs = number(out, "latency stddev = ([\\d.]+) ms");
        Matcher lag = Pattern.compile("rate limit schedule lag: avg ([\\d.]+) \\(max ([\\d.]+)\\) ms").matcher(out);
        if (lag.find()) {
            s.lagAverageMs = Double.parseDouble(lag.group(1));
            s.lagMaxMs = Double.parseDouble(lag.group(2));
        }
        s.connectMs = number(out, "initial connection time = ([\\d.]+) ms");
        s.abortedClients = out.lines().filter(l -> l.matches(".*client \\d+ aborted.*")).count();
        // Per transaction: client_id transaction_no time script_no time_epoch time_us schedule_lag [retries];
        // time is "failed" (or the failure's kind) for a failed one; time_epoch.time_us is when it ended.
        List<Path> logs;
        try (Stream<Path> files = Files.list(dir)) {
            logs = files.filter(p -> p.getFileName().toString().startsWith("tx.")).sorted().toList();
        }
        for (Path f : logs) {
            try (Stream<String> lines = Files.lines(f)) {
                lines.forEach(line -> {
                    String[] p = line.trim().split("\\s+");
                    if (p.length < 7) {
                        return;
                    }
                    s.logLines++;
                    long end;
                    try {
                        end = Long.parseLong(p[4]) * 1_000_000L + Long.parseLong(p[5]);
                    } catch (NumberFormatException e) {
                        return;
                    }
                    if (end < fromMicros || end >= toMicros) {
                        return;
                    }
                    if (!p[2].chars().allMatch(Character::isDigit)) {
                        s.windowFailed++;
                        return;
                    }
                    s.windowCompleted++;
                    s.windowLatency.recordValue(Math.max(0, Math.min(HIGHEST_MICROS, Long.parseLong(p[2]))));
                    if (p[6].chars().allMatch(Character::isDigit)) {
                        s.windowLag.recordValue(Math.max(0, Math.min(HIGHEST_MICROS, Long.parseLong(p[6]))));
                    }
                });
            }
        }
    }

    private static double number(String text, String regex) {
        Matcher m = Pattern.compile(regex).matcher(text);
        return m.find() ? Double.parseDouble(m.group(1)) : Double.NaN;
    }

    /** pgbench's major version, or 0 if it cannot be run. */
    static int majorVersion(String pgbench) {
        try {
            Process p = new ProcessBuilder(pgbench, "--version").redirectErrorStream(true).start();
            if (!p.waitFor(10, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                return 0;
            }
            Matcher m = Pattern.compile("(\\d+)").matcher(new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8));
            return m.find() ? Integer.parseInt(m.group(1)) : 0;
        } catch (IOException e) {
            return 0;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return 0;
        }
    }
}
