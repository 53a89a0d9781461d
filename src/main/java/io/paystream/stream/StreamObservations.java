package io.paystream.stream;

import io.micrometer.observation.ObservationPredicate;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.http.server.reactive.observation.ServerRequestObservationContext;

/**
 * Balance streams are not observed as HTTP requests. A stream is a request that lasts up to an hour:
 * its {@code http.server.requests} observation (its context, key values and tracing span) would stay in
 * the heap for all that time, for every one of up to ten thousand streams, and its duration would say
 * nothing. How many streams are open is {@code paystream_streams_active}; refusals still answer with a
 * problem and an {@code X-Request-Id}.
 */
@Configuration(proxyBeanMethods = false)
class StreamObservations {

    /** The path of a balance stream, {@code /v1/accounts/{id}/balance/stream}, ends with this. */
    static final String STREAM_PATH_SUFFIX = "/balance/stream";

    @Bean
    ObservationPredicate noBalanceStreamObservations() {
        return (name, context) -> !(context instanceof ServerRequestObservationContext request
                && request.getCarrier() != null
                && request.getCarrier().getPath().value().endsWith(STREAM_PATH_SUFFIX));
    }
}
