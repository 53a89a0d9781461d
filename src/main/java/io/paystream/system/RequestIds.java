package io.paystream.system;

import java.util.UUID;
import java.util.regex.Pattern;

import io.micrometer.context.ContextRegistry;
import org.slf4j.MDC;
import org.springframework.http.server.reactive.HttpHandler;
import org.springframework.http.server.reactive.HttpHandlerDecoratorFactory;
import org.springframework.stereotype.Component;
import reactor.util.context.Context;

/**
 * Every request has an id: the caller's {@code X-Request-Id} if it is sane, else a fresh UUID. It is
 * sent back in the {@code X-Request-Id} response header of every answer (errors, 401, 403 and 429
 * included) and is in the log context ({@code requestId}) of every line logged while the request is
 * handled, so one id finds a request's log lines across replicas and a load balancer's logs.
 *
 * <p>It wraps the whole HTTP handler, outside the web filters, the security firewall and the error
 * handlers, so nothing answers without it. The id travels in the Reactor context; with automatic
 * context propagation ({@code spring.reactor.context-propagation=auto}) Reactor restores it into the
 * logging MDC on whichever thread runs the request's next step.
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

    /** The caller's id if it is sane; otherwise (absent, too long, odd characters) a new one. */
    static String requestId(String offered) {
        if (offered != null && offered.length() <= MAX_CHARS && SANE.matcher(offered).matches()) {
            return offered;
        }
        return UUID.randomUUID().toString();
    }
}
