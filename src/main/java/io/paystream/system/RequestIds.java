package io.paystream.system;

import java.util.UUID;
import java.util.regex.Pattern;

import io.micrometer.context.ContextRegistry;
import io.micrometer.context.ContextSnapshot;
import io.micrometer.context.ContextSnapshotFactory;
import org.slf4j.MDC;
import org.springframework.http.server.reactive.HttpHandler;
import org.springframework.http.server.reactive.HttpHandlerDecoratorFactory;
import org.springframework.stereotype.Component;
import reactor.core.publisher.Mono;
import reactor.util.context.Context;

/**
 * Every request has an id: the caller's {@code X-Request-Id} if it is sane, else a fresh UUID. It is
 * sent back in the {@code X-Request-Id} response header of every answer (errors, 401, 403 and 429
 * included) and is in the log context ({@code requestId}) of every line logged while the request is
 * handled, so one id finds a request's log lines across replicas and a load balancer's logs.
 *
 * <p>It wraps the whole HTTP handler, outside the web filters, the security firewall and the error
 * handlers, so nothing answers without it. The id travels in the Reactor context. Where a request
 * logs, {@link #logging} puts that context (the request id, and the trace when there is one) into the
 * logging MDC for the log call, on whatever thread it runs: cheaper than restoring it around every
 * operator of every request ({@code spring.reactor.context-propagation=auto}).
 */
@Component
class RequestIds implements HttpHandlerDecoratorFactory {

    static final String HEADER = "X-Request-Id";

    /** The key in the log context (MDC) and in the Reactor context. */
    static final String LOG_KEY = "requestId";

    /**
     * What a caller's id may look like: 1 to 128 letters, digits and {@code . _ : -}. Enough for
     * UUIDs, ULIDs and the ids load balancers and gateways generate; nothing that could forge a log
     * line (no spaces, quotes or line breaks) or bloat every line of a request.
     */
    static final int MAX_CHARS = 128;
    private static final Pattern SANE = Pattern.compile("[A-Za-z0-9._:-]{1," + MAX_CHARS + "}");

    RequestIds() {
        // Re-registering under the same key replaces the accessor: safe when several contexts start.
        ContextRegistry.getInstance().registerThreadLocalAccessor(LOG_KEY, () -> MDC.get(LOG_KEY),
                id -> MDC.put(LOG_KEY, id), () -> MDC.remove(LOG_KEY));
    }

    @Override
    public HttpHandler apply(HttpHandler handler) {
        return (request, response) -> {
            String id = requestId(request.getHeaders().getFirst(HEADER));
            response.getHeaders().set(HEADER, id);
            return handler.handle(request, response).contextWrite(Context.of(LOG_KEY, id));
        };
    }

    private static final ContextSnapshotFactory SNAPSHOTS = ContextSnapshotFactory.builder().build();

    /**
     * Runs {@code log} with the request's context (request id, trace) in the logging MDC, then
     * continues with {@code then}: for the few places a request logs.
     */
    public static <T> Mono<T> logging(Runnable log, Mono<T> then) {
        return Mono.deferContextual(context -> {
            try (ContextSnapshot.Scope scope = SNAPSHOTS.setThreadLocalsFrom(context)) {
                log.run();
            }
            return then;
        });
    }

    /** The caller's id if it is sane; otherwise (absent, too long, odd characters) a new one. */
    static String requestId(String offered) {
        if (offered != null && offered.length() <= MAX_CHARS && SANE.matcher(offered).matches()) {
            return offered;
        }
        return UUID.randomUUID().toString();
    }
}
