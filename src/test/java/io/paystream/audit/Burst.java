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

    public Burst(int port) {
        this.client = WebClient.builder().baseUrl("http://127.0.0.1:" + port).build();
    }

    public record Call(String path, Object body) {
    }

    /** Sends n POSTs with up to {@code concurrency} in flight; returns the responses in request order. */
    public List<HttpResult> post(int n, int concurrency, IntFunction<Call> call, Duration timeout) {
        return Flux.range(0, n)
                .flatMapSequential(i -> send(call.apply(i)), concurrency)
                .collectList()
                .block(timeout);
    }

    public Mono<HttpResult> send(Call call) {
        return client.post().uri(call.path())
                .contentType(MediaType.APPLICATION_JSON)
                .bodyValue(call.body())
                .exchangeToMono(response -> response.bodyToMono(JSON)
                        .map(body -> new HttpResult(response.statusCode().value(), body))
                        .defaultIfEmpty(new HttpResult(response.statusCode().value(), Map.of())));
    }
}
