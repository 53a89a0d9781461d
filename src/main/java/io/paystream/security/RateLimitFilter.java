package io.paystream.security;

import java.time.Duration;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import io.github.bucket4j.Bandwidth;
import io.github.bucket4j.Bucket;
import io.github.bucket4j.ConsumptionProbe;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.paystream.system.ApiException;
import io.paystream.system.Problem;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.core.Ordered;
import org.springframework.http.HttpHeaders;
import org.springframework.stereotype.Component;
import org.springframework.web.server.ServerWebExchange;
import org.springframework.web.server.WebFilter;
import org.springframework.web.server.WebFilterChain;
import reactor.core.publisher.Mono;

/**
 * A token bucket per client: {@code requests-per-second} refilled continuously, up to {@code burst}
 * at once. Beyond it: 429 with Retry-After. Every answer carries the RateLimit headers. The buckets
 * live in this replica's memory, so with N replicas behind a load balancer a client gets up to N
 * times the limit. Runs after authentication; unauthenticated requests (health probes) are not
 * counted.
 */
@Component
class RateLimitFilter implements WebFilter, Ordered {

    /** Clients remembered per replica; an idle client's bucket is dropped after 10 minutes. */
    private static final long MAX_CLIENTS = 100_000;

    private final Cache<java.util.UUID, Bucket> buckets = Caffeine.newBuilder()
            .maximumSize(MAX_CLIENTS)
            .expireAfterAccess(Duration.ofMinutes(10))
            .build();
    private final long requestsPerSecond;
    private final long burst;
    /** Requests refused with 429; no client tag, so the number of series stays fixed. */
    private final Counter refusals;

    RateLimitFilter(@Value("${paystream.rate-limit.requests-per-second}") long requestsPerSecond,
            @Value("${paystream.rate-limit.burst}") long burst, MeterRegistry registry) {
        this.requestsPerSecond = requestsPerSecond;
        this.burst = burst;
        this.refusals = Counter.builder("paystream.rate.limit.refusals")
                .description("Requests refused with 429 because their client's token bucket was empty")
                .register(registry);
    }

    @Override
    public Mono<Void> filter(ServerWebExchange exchange, WebFilterChain chain) {
        if (requestsPerSecond <= 0) {
            return chain.filter(exchange);
        }
        return Caller.current()
                .map(caller -> java.util.Optional.of(
                        buckets.get(caller.clientId(), id -> newBucket()).tryConsumeAndReturnRemaining(1)))
                .defaultIfEmpty(java.util.Optional.empty())
                .flatMap(consumed -> {
                    if (consumed.isEmpty()) {
                        return chain.filter(exchange);
                    }
                    ConsumptionProbe probe = consumed.get();
                    HttpHeaders headers = exchange.getResponse().getHeaders();
                    headers.set("RateLimit-Limit", Long.toString(burst));
                    headers.set("RateLimit-Remaining", Long.toString(probe.getRemainingTokens()));
                    long resetSeconds = secondsUntil(probe);
                    headers.set("RateLimit-Reset", Long.toString(resetSeconds));
                    if (!probe.isConsumed()) {
                        refusals.increment();
                        headers.set(HttpHeaders.RETRY_AFTER, Long.toString(Math.max(1, resetSeconds)));
                        return Mono.<Void>error(new ApiException(Problem.RATE_LIMITED,
                                "This client sent more than " + requestsPerSecond + " requests per second; retry after "
                                        + Math.max(1, resetSeconds) + " s"));
                    }
                    return chain.filter(exchange);
                });
    }

    private static long secondsUntil(ConsumptionProbe probe) {
        return (probe.getNanosToWaitForRefill() + 999_999_999L) / 1_000_000_000L;
    }

    private Bucket newBucket() {
        return Bucket.builder()
                .addLimit(Bandwidth.builder().capacity(burst).refillGreedy(requestsPerSecond, Duration.ofSeconds(1)).build())
                .build();
    }

    @Override
    public int getOrder() {
        return 0; // after Spring Security's filter chain (-100), so the caller is known
    }
}
