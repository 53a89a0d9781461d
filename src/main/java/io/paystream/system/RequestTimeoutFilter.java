package io.paystream.system;

import java.time.Duration;

import org.springframework.beans.factory.annotation.Value;
import org.springframework.core.Ordered;
import org.springframework.http.HttpHeaders;
import org.springframework.http.MediaType;
import org.springframework.stereotype.Component;
import org.springframework.web.server.ServerWebExchange;
import org.springframework.web.server.WebFilter;
import org.springframework.web.server.WebFilterChain;
import reactor.core.publisher.Mono;

/**
 * No request runs longer than {@code paystream.request-timeout}: past it, the work is cancelled (a
 * money movement in flight is rolled back) and the client gets 503 with Retry-After, never a hang.
 */
@Component
class RequestTimeoutFilter implements WebFilter, Ordered {

    private final Duration timeout;

    RequestTimeoutFilter(@Value("${paystream.request-timeout}") Duration timeout) {
        this.timeout = timeout;
    }

    @Override
    public Mono<Void> filter(ServerWebExchange exchange, WebFilterChain chain) {
        // The raw header, not getAccept(): an unparsable Accept must reach content negotiation (and its
        // 4xx), not fail here.
        String accept = exchange.getRequest().getHeaders().getFirst(HttpHeaders.ACCEPT);
        if ((accept != null && accept.contains(MediaType.TEXT_EVENT_STREAM_VALUE))
                || exchange.getRequest().getPath().value().endsWith("/stream")) {
            return chain.filter(exchange); // streams are long on purpose, bounded by their own lifetime
        }
        return chain.filter(exchange).timeout(timeout, Mono.error(() -> new ApiException(Problem.REQUEST_TIMEOUT,
                "The request took longer than " + timeout.toSeconds() + " s and was cancelled; nothing was applied."
                        + " Retry with the same Idempotency-Key")));
    }

    @Override
    public int getOrder() {
        return Ordered.HIGHEST_PRECEDENCE + 20;
    }
}
