package io.paystream.bench;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.UserPrincipal;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

/**
 * The load balancer of the load-balanced run: nginx from the distribution's package, with its own
 * configuration in the work directory, listening on 127.0.0.1 only, in the foreground as a child of
 * this process (master and workers; {@code daemon off}). A replica is taken out of rotation as an
 * orchestrator would, by rewriting the upstream with that server {@code down} and reloading (new
 * workers take the new configuration; old ones finish what they hold, at most
 * {@link #WORKER_SHUTDOWN}).
 */
final class Nginx {

    /** How long an old worker may keep its connections (open balance streams) after a reload. */
    static final Duration WORKER_SHUTDOWN = Duration.ofSeconds(15);
    private static final Duration COMMAND_TIMEOUT = Duration.ofSeconds(30);
    private static final Duration STOP_TIMEOUT = Duration.ofSeconds(30);

    final int port;
    private final String binary;
    private final Path dir;
    private final List<Integer> upstreamPorts;
    private Process process;
    private int reloads;

    Nginx(String binary, Path dir, List<Integer> upstreamPorts) {
        this.binary = binary;
        this.dir = dir;
        this.upstreamPorts = List.copyOf(upstreamPorts);
        this.port = Postgres.freePort();
    }

    Path accessLog() {
        return dir.resolve("access.log");
    }

    Path errorLog() {
        return dir.resolve("error.log");
    }

    Path configFile() {
        return dir.resolve("nginx.conf");
    }

    int reloads() {
        return reloads;
    }

    String version() {
        return Sh.run(List.of(binary, "-v"), dir, COMMAND_TIMEOUT).output().strip();
    }

    /**
     * The configuration, as production would have it, with the replicas in {@code down} marked out
     * of rotation. Every choice is explained in bench/README.md ("The load-balanced run").
     */
    String config(Set<Integer> down) {
        StringBuilder servers = new StringBuilder();
        for (int p : upstreamPorts) {
            // Passive health: 2 failed attempts (as proxy_next_upstream defines failure) within 5 s
            // take a server out for 5 s, then one request probes it again.
            servers.append("        server 127.0.0.1:").append(p).append(" max_fails=2 fail_timeout=5s")
                    .append(down.contains(p) ? " down" : "").append(";\n");
        }
        String user = Sh.isRoot() ? "user nobody nogroup;\n" : "";
        return """
                # Written by the Paystream load-balanced run (bench/run.sh lb).
                %sdaemon off;
                master_process on;
                # One worker: two cores are shared with three replicas and PostgreSQL.
                worker_processes 1;
                worker_shutdown_timeout %ds;
                pid %s;
                error_log %s warn;

                events {
                    worker_connections 4096;
                }

                http {
                    log_format lb '$msec $request_method $status "$upstream_addr" "$upstream_status" $request_time $uri';
                    access_log %s lb buffer=64k flush=1s;
                    client_body_temp_path %s/tmp/body;
                    proxy_temp_path %s/tmp/proxy;
                    fastcgi_temp_path %s/tmp/fastcgi;
                    uwsgi_temp_path %s/tmp/uwsgi;
                    scgi_temp_path %s/tmp/scgi;
                    client_max_body_size 256k;
                    keepalive_timeout 60s;
                    keepalive_requests 100000;

                    upstream paystream {
                %s        # Keep-alive connections to the replicas (HTTP/1.1, Connection header cleared below).
                        keepalive 32;
                        keepalive_timeout 30s;
                        keepalive_requests 10000;
                    }

                    server {
                        listen 127.0.0.1:%d;

                        proxy_http_version 1.1;
                        proxy_set_header Connection "";
                        proxy_set_header Host $host;
                        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                        proxy_set_header X-Forwarded-Proto $scheme;
                        proxy_connect_timeout 2s;
                        proxy_send_timeout 10s;
                        # Above the application's own request timeout (30 s), which answers 503 itself.
                        proxy_read_timeout 35s;
                        # To the next replica when this one cannot be reached or says it cannot serve.
                        # Not "non_idempotent": nginx may pass a POST on only while it has not sent it to
                        # a replica (a refused connection). A POST that reached a replica is retried by
                        # its client, with the same Idempotency-Key and body: only the client knows the
                        # request is safe to repeat.
                        proxy_next_upstream error timeout http_502 http_503;
                        proxy_next_upstream_tries 3;
                        proxy_next_upstream_timeout 10s;

                        location / {
                            proxy_pass http://paystream;
                        }

                        # Server-sent events: nothing buffered, and timeouts as long as a stream may live
                        # (PAYSTREAM_STREAM_MAX_LIFETIME, 1 h): the application ends streams itself.
                        location ~ ^/v1/accounts/[^/]+/balance/stream$ {
                            proxy_pass http://paystream;
                            proxy_buffering off;
                            proxy_cache off;
                            proxy_read_timeout 1h;
                            proxy_send_timeout 1h;
                        }
                    }
                }
                """.formatted(user, WORKER_SHUTDOWN.toSeconds(), dir.resolve("nginx.pid"), errorLog(), accessLog(),
                dir, dir, dir, dir, dir, servers, port);
    }

    void start() throws IOException {
        Files.createDirectories(dir.resolve("tmp"));
        for (String t : List.of("body", "proxy", "fastcgi", "uwsgi", "scgi")) {
            Path p = Files.createDirectories(dir.resolve("tmp").resolve(t));
            if (Sh.isRoot()) {
                UserPrincipal nobody = p.getFileSystem().getUserPrincipalLookupService().lookupPrincipalByName("nobody");
                Files.setOwner(p, nobody);
            }
        }
        writeAndTest(Set.of());
        ProcessBuilder builder = new ProcessBuilder(binary, "-p", dir.toString(), "-c", configFile().toString())
                .directory(dir.toFile()).redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(dir.resolve("nginx.out").toFile()))
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
        process = builder.start();
        long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
        while (System.nanoTime() < deadline) {
            if (!process.isAlive()) {
                throw new IllegalStateException("nginx exited at start: " + Files.readString(dir.resolve("nginx.out")));
            }
            try (java.net.Socket s = new java.net.Socket("127.0.0.1", port)) {
                Log.info("nginx listening on 127.0.0.1:%d (pid %d), upstreams %s", port, process.pid(), upstreamPorts);
                return;
            } catch (IOException e) {
                Sh.sleep(100);
            }
        }
        throw new IllegalStateException("nginx does not listen on 127.0.0.1:" + port);
    }

    /** Rewrites the configuration with {@code down} out of rotation and reloads it (SIGHUP to the master). */
    synchronized void setDown(Set<Integer> down) throws IOException {
        writeAndTest(down);
        Sh.check(List.of("kill", "-HUP", Long.toString(process.pid())), dir, COMMAND_TIMEOUT);
        reloads++;
    }

    private void writeAndTest(Set<Integer> down) throws IOException {
        Files.writeString(configFile(), config(down), StandardCharsets.UTF_8);
        Sh.check(List.of(binary, "-t", "-q", "-p", dir.toString(), "-c", configFile().toString()), dir, COMMAND_TIMEOUT);
    }

    /** Graceful stop (SIGQUIT: finish what is in flight), then SIGKILL. Safe to call more than once. */
    synchronized void stop() {
        if (process == null) {
            return;
        }
        if (process.isAlive()) {
            Sh.run(List.of("kill", "-QUIT", Long.toString(process.pid())), dir, COMMAND_TIMEOUT);
            try {
                if (!process.waitFor(STOP_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)) {
                    process.descendants().forEach(ProcessHandle::destroyForcibly);
                    process.destroyForcibly();
                    process.waitFor(5, TimeUnit.SECONDS);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                process.destroyForcibly();
            }
        }
        process = null;
    }

    /** What the access log says: requests by upstream, and how many nginx passed on to another replica. */
    record Traffic(long requests, Map<String, Long> byUpstream, long passedOn, Map<String, Long> passedOnBy,
            Map<String, Long> statusByMethod) {
    }

    Traffic traffic() throws IOException {
        long requests = 0;
        long passedOn = 0;
        Map<String, Long> byUpstream = new TreeMap<>();
        Map<String, Long> passedOnBy = new TreeMap<>();
        Map<String, Long> statusByMethod = new TreeMap<>();
        if (!Files.exists(accessLog())) {
            return new Traffic(0, byUpstream, 0, passedOnBy, statusByMethod);
        }
        try (var lines = Files.lines(accessLog(), StandardCharsets.UTF_8)) {
            for (String line : (Iterable<String>) lines::iterator) {
                // $msec $request_method $status "$upstream_addr" "$upstream_status" $request_time $uri
                List<String> f = fields(line);
                if (f.size() < 7) {
                    continue;
                }
                requests++;
                String method = f.get(1);
                String kind = f.get(6).endsWith("/balance/stream") ? "GET stream" : method + " " + f.get(6)
                        .replaceAll("/[0-9a-f-]{36}", "/{id}");
                statusByMethod.merge(kind + " -> " + f.get(2), 1L, Long::sum);
                String[] addrs = f.get(3).split(", ");
                String[] statuses = f.get(4).split(", ");
                byUpstream.merge(addrs[addrs.length - 1], 1L, Long::sum);
                if (addrs.length > 1) {
                    passedOn++;
                    passedOnBy.merge(method + " " + String.join(" then ", statuses), 1L, Long::sum);
                }
            }
        }
        return new Traffic(requests, byUpstream, passedOn, passedOnBy, statusByMethod);
    }

    private static List<String> fields(String line) {
        List<String> out = new ArrayList<>();
        int i = 0;
        while (i < line.length()) {
            if (line.charAt(i) == ' ') {
                i++;
                continue;
            }
            if (line.charAt(i) == '"') {
                int end = line.indexOf('"', i + 1);
                end = end < 0 ? line.length() : end;
                out.add(line.substring(i + 1, end));
                i = end + 1;
            } else {
                int end = line.indexOf(' ', i);
                end = end < 0 ? line.length() : end;
                out.add(line.substring(i, end));
                i = end;
            }
        }
        return out;
    }

    /** Error log lines by their message, without time and connection numbers (at most 20 kinds). */
    Map<String, Long> errorSummary() throws IOException {
        Map<String, Long> m = new LinkedHashMap<>();
        if (!Files.exists(errorLog())) {
            return m;
        }
        for (String line : Files.readAllLines(errorLog(), StandardCharsets.UTF_8)) {
            String msg = line.replaceFirst("^\\S+ \\S+ \\[(\\w+)\\] \\d+#\\d+: (\\*\\d+ )?", "[$1] ")
                    .replaceAll(", client: .*", "").replaceAll("127\\.0\\.0\\.1:\\d+", "127.0.0.1:PORT");
            if (m.size() < 20 || m.containsKey(msg)) {
                m.merge(msg, 1L, Long::sum);
            }
        }
        return m;
    }
}
