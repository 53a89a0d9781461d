package io.paystream.bench;

import java.net.ConnectException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.TimeoutException;

import io.netty.channel.ChannelOption;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.timeout.ReadTimeoutException;
import reactor.core.publisher.Mono;
import reactor.netty.http.client.HttpClient;
import reactor.netty.http.client.PrematureCloseException;
import reactor.netty.resources.ConnectionProvider;
import reactor.netty.resources.LoopResources;

/**
 * A non-blocking HTTP/1.1 client for 127.0.0.1 only. Every request carries an API key as a Bearer
 * token (its client's, or the admin key); every money-moving request its Idempotency-Key. A request never fails: transport problems come back as a
 * response with status -1 and a short error name.
 */
final class Http implements AutoCloseable {

    record Response(int status, String body, String error, boolean replayed) {

        Response(int status, String body, String error) {
            this(status, body, error, false);
        }

        boolean is2xx() {
            return status >= 200 && status < 300;
        }

        /** The status, with the problem code for errors: "201", "422 insufficient_funds", "timeout". */
        String label() {
            if (status < 0) {
                return error;
            }
            if (status >= 400) {
                String code = Json.field(body, "code");
                return code == null ? Integer.toString(status) : status + " " + code;
            }
            return Integer.toString(status);
        }
    }

    private final ConnectionProvider provider;
    private final LoopResources loops;
    private final HttpClient client;
    private final Duration overallTimeout;
    private final String defaultKey;

    Http(int port, String apiKey, int maxConnections, Duration responseTimeout, String name) {
        this.provider = ConnectionProvider.builder(name)
                .maxConnections(maxConnections)
                .pendingAcquireMaxCount(-1)
                .pendingAcquireTimeout(Duration.ofSeconds(60))
                .maxIdleTime(Duration.ofSeconds(50))
                .build();
        this.loops = LoopResources.create(name, 2, true);
        this.client = HttpClient.create(provider)
                .runOn(loops)
                .host("127.0.0.1")
                .port(port)
                .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, 5000)
                .responseTimeout(responseTimeout)
                .headers(h -> h.set(HttpHeaderNames.ACCEPT, "application/json"));
        this.defaultKey = apiKey;
        this.overallTimeout = responseTimeout.plusSeconds(65);
    }

    /** A POST as the client whose API key is {@code apiKey} (null: the default key). */
    Mono<Response> post(String path, String json, String idempotencyKey, String apiKey) {
        byte[] body = json.getBytes(StandardCharsets.UTF_8);
        String bearer = "Bearer " + (apiKey == null ? defaultKey : apiKey);
        return exchange(client.request(HttpMethod.POST).uri(path).send((request, out) -> {
            request.header(HttpHeaderNames.AUTHORIZATION, bearer);
            request.header(HttpHeaderNames.CONTENT_TYPE, "application/json");
            request.header(HttpHeaderNames.CONTENT_LENGTH, Integer.toString(body.length));
            if (idempotencyKey != null) {
                request.header("Idempotency-Key", idempotencyKey);
            }
            return out.sendByteArray(Mono.just(body));
        }));
    }

    Mono<Response> get(String path, String apiKey) {
        String bearer = "Bearer " + (apiKey == null ? defaultKey : apiKey);
        return exchange(client.headers(h -> h.set(HttpHeaderNames.AUTHORIZATION, bearer)).get().uri(path));
    }

    private Mono<Response> exchange(HttpClient.ResponseReceiver<?> receiver) {
        return receiver
                .responseSingle((response, content) -> content.asString(StandardCharsets.UTF_8).defaultIfEmpty("")
                        .map(text -> new Response(response.status().code(), text, null,
                                "true".equalsIgnoreCase(response.responseHeaders().get("Idempotent-Replayed")))))
                .timeout(overallTimeout)
                .onErrorResume(e -> Mono.just(new Response(-1, null, classify(e))));
    }

    static String classify(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof TimeoutException || t instanceof ReadTimeoutException) {
                return "timeout";
            }
            if (t instanceof PrematureCloseException) {
                return "connection closed";
            }
            if (t instanceof ConnectException) {
                return "connection refused";
            }
        }
        return "io error (" + e.getClass().getSimpleName() + ")";
    }

    @Override
    public void close() {
        provider.disposeLater().block(Duration.ofSeconds(10));
        loops.disposeLater(Duration.ZERO, Duration.ofSeconds(5)).block(Duration.ofSeconds(10));
    }
}
