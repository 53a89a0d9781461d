package io.paystream.audit;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.function.IntFunction;

import org.springframework.core.ParameterizedTypeReference;
import org.springframework.http.MediaType;
import org.springframework.web.reactive.function.client.WebClient;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * Fires many HTTP requests at the running application at once, over real connections, and collects
 * every response. Bounded in count (the caller's n) and time (the timeout).
 */
public final class Burst {

    private static final ParameterizedTypeReference<Map<String, Object>> JSON = new ParameterizedTypeReference<>() {
    };

    private final WebClient client;

    /** A client that sends the test admin key. */
    public Burst(int port) {
        this(port, io.paystream.testsupport.TestAuthentication.ADMIN_KEY);
    }

    /** A client that sends the given API key. */
    public Burst(int port, String apiKey) {
        this.client = WebClient.builder().baseUrl("http://127.0.0.1:" + port)
                .defaultHeader("Authorization", "Bearer " + apiKey).build();
    }

    /** One POST. Every money-moving POST needs an Idempotency-Key: a fresh one unless given. */
    public record Call(String path, Object body, String idempotencyKey) {

        public Call(String path, Object body) {
            this(path, body, java.util.UUID.randomUUID().toString());
        }
    }

    /** Sends n POSTs with up to {@code concurrency} in flight; returns the responses in request order. */
    public List<HttpResult> post(int n, int concurrency, IntFunction<Call> call, Duration timeout) {
        return Flux.range(0, n)
                .flatMapSequential(i -> send(call.apply(i)), concurrency)
                .collectList()
                .block(timeout);
    }

    /** Opens an account and answers its id. */
    public java.util.UUID account(String currency) {
        HttpResult created = send(new Call("/v1/accounts", Map.of("currency", currency, "name", "test"), null))
                .block(Duration.ofSeconds(30));
        if (created.status() != 201) {
            throw new AssertionError("account not created: " + created);
        }
        return java.util.UUID.fromString((String) created.body().get("id"));
    }

    /** Deposits and fails unless it was applied. */
    public void deposit(java.util.UUID account, long amount, String currency) {
        HttpResult result = send(new Call("/v1/accounts/" + account + "/deposits",
                Map.of("amount", amount, "currency", currency))).block(Duration.ofSeconds(30));
        if (result.status() != 201) {
            throw new AssertionError("deposit not applied: " + result);
        }
    }

    /** GETs a JSON object; fails unless 200. */
    public Map<String, Object> get(String path) {
        return client.get().uri(path).retrieve().bodyToMono(JSON).block(Duration.ofSeconds(30));
    }

    public Mono<HttpResult> send(Call call) {
        return client.post().uri(call.path())
                .contentType(MediaType.APPLICATION_JSON)
                .headers(h -> {
                    if (call.idempotencyKey() != null) {
                        h.set("Idempotency-Key", call.idempotencyKey());
                    }
                })
                .bodyValue(call.body())
                .exchangeToMono(response -> response.bodyToMono(JSON)
                        .map(body -> new HttpResult(response.statusCode().value(), body,
                                response.headers().asHttpHeaders().getFirst("Idempotent-Replayed") != null))
                        .defaultIfEmpty(new HttpResult(response.statusCode().value(), Map.of(), false)));
    }
}
