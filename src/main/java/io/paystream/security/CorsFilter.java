package io.paystream.security;

import io.paystream.system.ApiException;
import io.paystream.system.Problem;
import org.springframework.core.Ordered;
import org.springframework.web.cors.CorsConfiguration;
import org.springframework.web.cors.reactive.CorsProcessor;
import org.springframework.web.cors.reactive.CorsUtils;
import org.springframework.web.cors.reactive.DefaultCorsProcessor;
import org.springframework.web.cors.reactive.UrlBasedCorsConfigurationSource;
import org.springframework.web.server.ServerWebExchange;
import org.springframework.web.server.WebFilter;
import org.springframework.web.server.WebFilterChain;
import reactor.core.publisher.Mono;

/**
 * Cross-origin requests, before authentication (a preflight carries no key). Spring's processor
 * decides; a refused origin, method or header gets 403 problem+json instead of an empty body.
 */
class CorsFilter implements WebFilter, Ordered {

    private final UrlBasedCorsConfigurationSource configurations;
    private final CorsProcessor processor = new DefaultCorsProcessor();

    CorsFilter(UrlBasedCorsConfigurationSource configurations) {
        this.configurations = configurations;
    }

    @Override
    public Mono<Void> filter(ServerWebExchange exchange, WebFilterChain chain) {
        boolean allowed;
        boolean preflight;
        try {
            if (!CorsUtils.isCorsRequest(exchange.getRequest())) {
                return chain.filter(exchange);
            }
            CorsConfiguration configuration = configurations.getCorsConfiguration(exchange);
            preflight = CorsUtils.isPreFlightRequest(exchange.getRequest());
            allowed = processor.process(configuration, exchange) && (configuration != null || !preflight);
        } catch (RuntimeException unparsableOrigin) {
            return Mono.error(new ApiException(Problem.BAD_REQUEST, "The Origin header is not a valid origin"));
        }
        if (!allowed) {
            return Mono.error(new ApiException(Problem.FORBIDDEN,
                    "Requests from this origin, or with this method or these headers, are not allowed"));
        }
        return preflight ? Mono.empty() : chain.filter(exchange);
    }

    @Override
    public int getOrder() {
        return Ordered.HIGHEST_PRECEDENCE + 5;
    }
}
