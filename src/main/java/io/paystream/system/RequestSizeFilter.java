package io.paystream.system;

import org.springframework.beans.factory.annotation.Value;
import org.springframework.core.Ordered;
import org.springframework.stereotype.Component;
import org.springframework.web.server.ServerWebExchange;
import org.springframework.web.server.WebFilter;
import org.springframework.web.server.WebFilterChain;
import reactor.core.publisher.Mono;

/**
 * Refuses a body that announces itself as too large before a byte of it is read. Bodies without a
 * Content-Length (chunked) are bounded by the codecs' {@code spring.http.codecs.max-in-memory-size}, set to
 * the same limit; both become 413.
 */
@Component
class RequestSizeFilter implements WebFilter, Ordered {

    private final long maxBodyBytes;

    RequestSizeFilter(@Value("${spring.http.codecs.max-in-memory-size}") org.springframework.util.unit.DataSize maxBody) {
        this.maxBodyBytes = maxBody.toBytes();
    }

    @Override
    public Mono<Void> filter(ServerWebExchange exchange, WebFilterChain chain) {
        long contentLength = exchange.getRequest().getHeaders().getContentLength();
        if (contentLength > maxBodyBytes) {
            return Mono.error(new ApiException(Problem.PAYLOAD_TOO_LARGE,
                    "The request body exceeds the limit of " + maxBodyBytes + " bytes"));
        }
        return chain.filter(exchange);
    }

    @Override
    public int getOrder() {
        return Ordered.HIGHEST_PRECEDENCE + 10;
    }
}
