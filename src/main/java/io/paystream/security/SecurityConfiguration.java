package io.paystream.security;

import java.util.List;
import java.util.UUID;

import io.paystream.system.ApiException;
import io.paystream.system.Problem;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.http.HttpMethod;
import org.springframework.security.authentication.BadCredentialsException;
import org.springframework.security.authentication.ReactiveAuthenticationManager;
import org.springframework.security.config.annotation.web.reactive.EnableWebFluxSecurity;
import org.springframework.security.config.web.server.SecurityWebFiltersOrder;
import org.springframework.security.config.web.server.ServerHttpSecurity;
import org.springframework.security.oauth2.jwt.Jwt;
import org.springframework.security.oauth2.jwt.ReactiveJwtDecoders;
import org.springframework.security.oauth2.server.resource.authentication.BearerTokenAuthenticationToken;
import org.springframework.security.oauth2.server.resource.authentication.JwtReactiveAuthenticationManager;
import org.springframework.security.oauth2.server.resource.web.server.authentication.ServerBearerTokenAuthenticationConverter;
import org.springframework.security.web.server.SecurityWebFilterChain;
import org.springframework.security.config.observation.SecurityObservationSettings;
import org.springframework.security.web.server.ServerAuthenticationEntryPoint;
import org.springframework.security.web.server.authentication.AuthenticationWebFilter;
import org.springframework.security.web.server.authentication.ServerAuthenticationEntryPointFailureHandler;
import org.springframework.security.web.server.authorization.ServerAccessDeniedHandler;
import org.springframework.security.web.server.context.NoOpServerSecurityContextRepository;
import org.springframework.web.cors.CorsConfiguration;
import org.springframework.web.cors.reactive.UrlBasedCorsConfigurationSource;
import reactor.core.publisher.Mono;

/**
 * Every {@code /v1} endpoint needs {@code Authorization: Bearer <key>}: a Paystream API key, or, when
 * an OAuth2 issuer is configured, a JWT from it (its subject becomes the client). Health probes and
 * the API documentation are public; metrics ({@code /actuator/prometheus}) are for admins. Managing keys and depositing (which debits the outside world, owned by no client) are for
 * admins. Everything else is decided per account by ownership, in the features themselves.
 */
@Configuration(proxyBeanMethods = false)
@EnableWebFluxSecurity
class SecurityConfiguration {

    @Bean
    SecurityWebFilterChain securityFilterChain(ServerHttpSecurity http, ApiKeys apiKeys,
            @Value("${paystream.security.jwt-issuer-uri:}") String jwtIssuerUri) {
        ServerAuthenticationEntryPoint unauthorized = (exchange, failure) ->
                Mono.error(new ApiException(Problem.UNAUTHORIZED,
                        "Send Authorization: Bearer <API key>; the key given is missing, unknown or revoked"));
        ServerAccessDeniedHandler forbidden = (exchange, denied) ->
                Mono.error(new ApiException(Problem.FORBIDDEN, "This API key's role may not do this"));

        AuthenticationWebFilter bearer = new AuthenticationWebFilter(authenticationManager(apiKeys, jwtIssuerUri));
        // A browser's EventSource cannot send headers: streams also take the key as ?access_token=.
        // Nothing else does, so a key cannot end up in the URLs (and logs) of ordinary requests.
        ServerBearerTokenAuthenticationConverter headerOnly = new ServerBearerTokenAuthenticationConverter();
        ServerBearerTokenAuthenticationConverter headerOrQuery = new ServerBearerTokenAuthenticationConverter();
        headerOrQuery.setAllowUriQueryParameter(true);
        bearer.setServerAuthenticationConverter(exchange -> exchange.getRequest().getMethod() == HttpMethod.GET
                && exchange.getRequest().getPath().value().endsWith("/balance/stream")
                ? headerOrQuery.convert(exchange) : headerOnly.convert(exchange));
        bearer.setAuthenticationFailureHandler(new ServerAuthenticationEntryPointFailureHandler(unauthorized));
        bearer.setSecurityContextRepository(NoOpServerSecurityContextRepository.getInstance());

        return http
                // CORS is answered by CorsFilter, before this chain, so refusals are problem+json too.
                .cors(ServerHttpSecurity.CorsSpec::disable)
                .csrf(ServerHttpSecurity.CsrfSpec::disable)
                .httpBasic(ServerHttpSecurity.HttpBasicSpec::disable)
                .formLogin(ServerHttpSecurity.FormLoginSpec::disable)
                .logout(ServerHttpSecurity.LogoutSpec::disable)
                .anonymous(ServerHttpSecurity.AnonymousSpec::disable)
                .requestCache(ServerHttpSecurity.RequestCacheSpec::disable)
                .securityContextRepository(NoOpServerSecurityContextRepository.getInstance())
                .addFilterAt(bearer, SecurityWebFiltersOrder.AUTHENTICATION)
                .exceptionHandling(e -> e.authenticationEntryPoint(unauthorized).accessDeniedHandler(forbidden))
                .authorizeExchange(exchanges -> exchanges
                        .pathMatchers("/v1/api-keys", "/v1/api-keys/**").hasRole("ADMIN")
                        .pathMatchers(HttpMethod.POST, "/v1/accounts/*/deposits").hasRole("ADMIN")
                        .pathMatchers("/v1/**").authenticated()
                        // Probes stay public; every other actuator endpoint (metrics) is for admins:
                        // business volumes are nobody else's business.
                        .pathMatchers("/actuator/health", "/actuator/health/**").permitAll()
                        .pathMatchers("/actuator", "/actuator/**").hasRole("ADMIN")
                        .anyExchange().permitAll())
                .build();
    }

    /**
     * No observation of Spring Security's own filters, authentication and authorization: without this,
     * every filter of every request is wrapped in an observation and its decorators (eight a request),
     * which cost CPU on every request and, on a balance stream, stay in the heap for the stream's
     * whole life (measured: 80,000 such wrappers with 10,000 streams open). The request itself is
     * still observed (metrics, traces).
     */
    @Bean
    SecurityObservationSettings securityObservationSettings() {
        return SecurityObservationSettings.noObservations();
    }

    /**
     * Browsers on the listed origins may call the API (and watch balance streams). None by default:
     * an API key in a browser is a deliberate choice of the deployment.
     */
    @Bean
    CorsFilter corsFilter(@Value("${paystream.cors.allowed-origins:}") List<String> corsAllowedOrigins) {
        return new CorsFilter(cors(corsAllowedOrigins));
    }

    private static UrlBasedCorsConfigurationSource cors(List<String> allowedOrigins) {
        UrlBasedCorsConfigurationSource source = new UrlBasedCorsConfigurationSource();
        List<String> origins = allowedOrigins.stream().map(String::strip).filter(o -> !o.isEmpty()).toList();
        if (!origins.isEmpty()) {
            CorsConfiguration configuration = new CorsConfiguration();
            configuration.setAllowedOrigins(origins);
            configuration.setAllowedMethods(List.of("GET", "POST", "DELETE"));
            configuration.setAllowedHeaders(List.of("Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID",
                    "X-Request-Id", "traceparent"));
            configuration.setExposedHeaders(List.of("Location", "Idempotent-Replayed", "Retry-After", "RateLimit-Limit",
                    "RateLimit-Remaining", "RateLimit-Reset", "X-Request-Id"));
            configuration.setMaxAge(java.time.Duration.ofHours(1));
            source.registerCorsConfiguration("/v1/**", configuration);
        }
        return source;
    }

    /** API keys by their prefix; anything else is a JWT if an issuer is configured, else refused. */
    private static ReactiveAuthenticationManager authenticationManager(ApiKeys apiKeys, String jwtIssuerUri) {
        JwtReactiveAuthenticationManager jwt = jwtIssuerUri.isBlank() ? null
                : new JwtReactiveAuthenticationManager(ReactiveJwtDecoders.fromIssuerLocation(jwtIssuerUri));
        return authentication -> {
            String token = ((BearerTokenAuthenticationToken) authentication).getToken();
            if (token.startsWith(ApiKeys.PREFIX) || jwt == null) {
                return apiKeys.authenticate(token)
                        .<org.springframework.security.core.Authentication>map(CallerAuthentication::new)
                        .switchIfEmpty(Mono.error(() -> new BadCredentialsException("unknown or revoked API key")));
            }
            return jwt.authenticate(authentication).map(authenticated -> {
                Jwt claims = (Jwt) authenticated.getPrincipal();
                // A JWT subject is a client of its own, stable across tokens of the same issuer.
                UUID clientId = UUID.nameUUIDFromBytes(("jwt:" + claims.getIssuer() + ":" + claims.getSubject())
                        .getBytes(java.nio.charset.StandardCharsets.UTF_8));
                return new CallerAuthentication(new Caller(clientId, Caller.Role.CLIENT, claims.getSubject()));
            });
        };
    }
}
