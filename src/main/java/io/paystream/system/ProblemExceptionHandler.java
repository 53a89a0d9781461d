package io.paystream.system;

import java.util.LinkedHashMap;
import java.util.Map;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.core.annotation.Order;
import org.springframework.core.io.buffer.DataBuffer;
import org.springframework.http.HttpHeaders;
import org.springframework.http.MediaType;
import org.springframework.http.server.reactive.ServerHttpResponse;
import org.springframework.stereotype.Component;
import org.springframework.web.server.MethodNotAllowedException;
import org.springframework.web.server.ServerWebExchange;
import org.springframework.web.server.WebExceptionHandler;
import reactor.core.publisher.Mono;
import tools.jackson.databind.json.JsonMapper;

/**
 * The one place errors become responses: RFC 9457 {@code application/problem+json} with a stable
 * {@code type} URI and {@code code}. It runs before Spring Boot's default error handler (order -2 vs
 * -1), so every failure, from a controller, a filter or the router, gets the same shape.
 */
@Component
@Order(-2)
public class ProblemExceptionHandler implements WebExceptionHandler {

    private static final Logger log = LoggerFactory.getLogger(ProblemExceptionHandler.class);

    /** Seconds a client should wait before retrying a 503: long enough for a busy ledger to drain. */
    static final String RETRY_AFTER_SECONDS = "1";

    private final JsonMapper jsonMapper;

    ProblemExceptionHandler(JsonMapper jsonMapper) {
        this.jsonMapper = jsonMapper;
    }

    @Override
    public Mono<Void> handle(ServerWebExchange exchange, Throwable failure) {
        ServerHttpResponse response = exchange.getResponse();
        if (response.isCommitted()) {
            return Mono.error(failure);
        }
        ApiException problem = Problems.classify(failure);
        Runnable logged = () -> {
            if (problem.problem() == Problem.INTERNAL_ERROR) {
                log.error("Unexpected failure on {} {}", exchange.getRequest().getMethod(),
                        exchange.getRequest().getPath().value(), failure);
            } else if (problem.problem().status().is5xxServerError()) {
                log.warn("{} on {} {}: {}", problem.problem().code(), exchange.getRequest().getMethod(),
                        exchange.getRequest().getPath().value(), failure.toString());
            } else if (log.isDebugEnabled()) {
                // A client's mistake: not worth a line in production, but findable by request id in debugging.
                log.debug("{} on {} {}", problem.problem().code(), exchange.getRequest().getMethod(),
                        exchange.getRequest().getPath().value());
            }
        };
        response.setStatusCode(problem.problem().status());
        HttpHeaders headers = response.getHeaders();
        headers.setContentType(MediaType.APPLICATION_PROBLEM_JSON);
        if (problem.problem().status().value() == 503) {
            headers.set(HttpHeaders.RETRY_AFTER, RETRY_AFTER_SECONDS);
        }
        if (failure instanceof MethodNotAllowedException notAllowed) {
            headers.setAllow(notAllowed.getSupportedMethods());
        }
        byte[] body = jsonMapper.writeValueAsBytes(body(problem, exchange.getRequest().getPath().value()));
        DataBuffer buffer = response.bufferFactory().wrap(body);
        return RequestIds.logging(logged, response.writeWith(Mono.just(buffer)));
    }

    /** The problem a failure is answered with: what its client sees (and what metrics count it as). */
    public static Problem problemOf(Throwable failure) {
        return Problems.classify(failure).problem();
    }

    /** The problem+json body of a refusal; also what an idempotency key stores for a refused request. */
    public static Map<String, Object> body(ApiException problem, String instancePath) {
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("type", problem.problem().type().toString());
        body.put("title", problem.problem().title());
        body.put("status", problem.problem().status().value());
        body.put("detail", problem.getMessage());
        body.put("instance", instancePath);
        body.put("code", problem.problem().code());
        if (problem.item() != null) {
            body.put("item", problem.item());
        }
        if (!problem.errors().isEmpty()) {
            body.put("errors", problem.errors());
        }
        return body;
    }
}
