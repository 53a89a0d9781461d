package io.paystream.system;

import org.springframework.security.web.server.firewall.ServerExchangeRejectedException;
import org.springframework.security.web.server.firewall.ServerExchangeRejectedHandler;
import org.springframework.stereotype.Component;
import org.springframework.web.server.ServerWebExchange;
import reactor.core.publisher.Mono;

/**
 * Requests the security firewall refuses (encoded slashes, NUL, path traversal, odd methods or header
 * bytes) get the same problem+json as every other client mistake, not an empty 400.
 */
@Component
class FirewallRejections implements ServerExchangeRejectedHandler {

    private final ProblemExceptionHandler problems;

    FirewallRejections(ProblemExceptionHandler problems) {
        this.problems = problems;
    }

    @Override
    public Mono<Void> handle(ServerWebExchange exchange, ServerExchangeRejectedException rejected) {
        return problems.handle(exchange, new ApiException(Problem.BAD_REQUEST,
                "The request was rejected: its path, method or headers are not allowed"));
    }
}
