package io.paystream.stream;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.paystream.audit.Burst;
import io.paystream.testsupport.PaystreamIntegrationTest;
import io.paystream.testsupport.TestAuthentication;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.test.context.TestPropertySource;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assumptions.assumeThat;

/**
 * A real browser: headless Chromium opens a page whose EventSource watches a balance. The server ends
 * each stream after 3 s, so the browser must reconnect (with Last-Event-ID) several times while money
 * moves; it must end up with every version exactly once, in order. The page reports each event, one
 * report after another, to a small server of its own origin, so the test reads what the browser saw.
 */
@PaystreamIntegrationTest
@TestPropertySource(properties = {"paystream.streams.max-lifetime=3s", "paystream.streams.retry-hint=300ms"})
class BrowserEventSourceIntegrationTests {

    private static final String CHROMIUM = "/usr/bin/chromium";
    private static final HttpServer PAGE = pageServer();
    private static final List<String> SEEN = new CopyOnWriteArrayList<>();
    private static final AtomicInteger OPENS = new AtomicInteger();
    private static volatile String streamUrl;

    @DynamicPropertySource
    static void allowThePageOrigin(DynamicPropertyRegistry registry) {
        registry.add("paystream.cors.allowed-origins", BrowserEventSourceIntegrationTests::pageOrigin);
    }

    @AfterAll
    static void stopPageServer() {
        PAGE.stop(0);
    }

    @LocalServerPort
    int port;

    @Test
    void aBrowserThatIsCutAndReconnectsSeesEveryVersionExactlyOnce() throws Exception {
        assumeThat(Files.isExecutable(Path.of(CHROMIUM))).as("Chromium is installed (Debian package chromium)").isTrue();
        Burst burst = new Burst(port);
        UUID account = burst.account("EUR");
        streamUrl = "http://127.0.0.1:" + port + "/v1/accounts/" + account + "/balance/stream?access_token="
                + TestAuthentication.ADMIN_KEY;
        Path profile = Files.createTempDirectory("paystream-chromium-");
        Process browser = new ProcessBuilder(CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--user-data-dir=" + profile, "--remote-debugging-port=0", pageOrigin() + "/page.html")
                .redirectErrorStream(true).redirectOutput(profile.resolve("chromium.log").toFile()).start();
        try {
            await(() -> SEEN.contains("0"), Duration.ofSeconds(60));
            int deposits = 12;
            for (int i = 0; i < deposits; i++) {
                burst.deposit(account, 1, "EUR");
                Thread.sleep(500); // spread over ~6 s: at least one server-side cut happens meanwhile
            }
            await(() -> SEEN.contains(Integer.toString(deposits)), Duration.ofSeconds(60));

            List<String> expected = new ArrayList<>();
            for (int v = 0; v <= deposits; v++) {
                expected.add(Integer.toString(v));
            }
            assertThat(SEEN).as("every version exactly once, in order").containsExactlyElementsOf(expected);
            assertThat(OPENS.get()).as("the browser reconnected").isGreaterThanOrEqualTo(2);
        } finally {
            browser.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        }
    }

    private static void await(java.util.function.BooleanSupplier condition, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!condition.getAsBoolean() && System.nanoTime() < deadline) {
            Thread.sleep(50);
        }
    }

    private static String pageOrigin() {
        return "http://127.0.0.1:" + PAGE.getAddress().getPort();
    }

    private static HttpServer pageServer() {
        try {
            HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
            server.createContext("/page.html", exchange -> respond(exchange, "text/html", """
                    <!doctype html><meta charset="utf-8"><title>balance</title>
                    <script>
                      // One report at a time, in the order the events came: separate fetches may
                      // arrive out of order (one connection each). A report that fails is lost, which
                      // the test sees; the ones after it are still sent.
                      let reported = Promise.resolve();
                      const report = (what) => {
                        reported = reported.catch(() => {}).then(() => fetch(what, {method: 'POST'}));
                      };
                      const source = new EventSource('%s');
                      source.onopen = () => report('/open');
                      source.addEventListener('balance', (e) => report('/event?id=' + e.lastEventId));
                    </script>""".formatted(streamUrl)));
            server.createContext("/open", exchange -> {
                OPENS.incrementAndGet();
                respond(exchange, "text/plain", "ok");
            });
            server.createContext("/event", exchange -> {
                String query = exchange.getRequestURI().getQuery();
                SEEN.add(query.substring(query.indexOf('=') + 1));
                respond(exchange, "text/plain", "ok");
            });
            server.start();
            return server;
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    private static void respond(HttpExchange exchange, String type, String text) throws IOException {
        byte[] body = text.getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("Content-Type", type);
        exchange.sendResponseHeaders(200, body.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(body);
        }
    }
}
