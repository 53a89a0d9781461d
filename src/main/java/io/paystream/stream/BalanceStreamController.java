package io.paystream.stream;

import java.util.UUID;

import io.paystream.security.Caller;
import io.paystream.system.ApiException;
import io.paystream.system.EventLoops;
import io.swagger.v3.oas.annotations.Operation;
import io.swagger.v3.oas.annotations.media.Content;
import io.swagger.v3.oas.annotations.media.Schema;
import io.swagger.v3.oas.annotations.responses.ApiResponse;
import org.springframework.http.MediaType;
import org.springframework.http.codec.ServerSentEvent;
import org.springframework.http.server.reactive.ServerHttpRequest;
import org.springframework.security.core.annotation.AuthenticationPrincipal;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PathVariable;
import org.springframework.web.bind.annotation.RequestHeader;
import org.springframework.web.bind.annotation.RequestParam;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.server.ServerWebExchange;
import reactor.core.publisher.Flux;

/**
 * {@code GET /v1/accounts/{id}/balance/stream}: server-sent events of an account's balance, for its
 * owner or an admin. Resume with {@code Last-Event-ID} (what a browser's EventSource sends when it
 * reconnects) or {@code ?after=<version>}.
 */
@RestController
class BalanceStreamController {

    private final BalanceStreams streams;

    BalanceStreamController(BalanceStreams streams) {
        this.streams = streams;
    }

    @Operation(summary = "Watch an account's balance as server-sent events; resume with Last-Event-ID or ?after=")
    @ApiResponse(responseCode = "200", description = "Events named balance, each one version, its id the version",
            content = @Content(mediaType = MediaType.TEXT_EVENT_STREAM_VALUE,
                    schema = @Schema(implementation = BalanceEvent.class)))
    @GetMapping(path = "/v1/accounts/{id}/balance/stream", produces = MediaType.TEXT_EVENT_STREAM_VALUE)
    Flux<ServerSentEvent<String>> stream(@PathVariable UUID id,
            @RequestHeader(name = "Last-Event-ID", required = false) String lastEventId,
            @RequestParam(required = false) String after, @AuthenticationPrincipal Caller caller,
            ServerWebExchange exchange) {
        Long resumeAfter = version("Last-Event-ID", lastEventId);
        if (resumeAfter == null) {
            resumeAfter = version("after", after);
        }
        // A refusal (404, 429) fails before the first event, so it is still answered as a problem.
        // The events' data is BalanceEvent as JSON, encoded once per version for all its watchers.
        return streams.open(id, resumeAfter, caller, EventLoops.of(exchange.getRequest())).flatMapMany(stream -> stream);
    }

    private static Long version(String name, String text) {
        if (text == null || text.isBlank()) {
            return null;
        }
        try {
            long version = Long.parseLong(text.strip());
            if (version < 0) {
                throw new NumberFormatException();
            }
            return version;
        } catch (NumberFormatException e) {
            throw ApiException.invalidField(name, "must be a balance version (a whole number, 0 or more)");
        }
    }
}
