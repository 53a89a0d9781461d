package io.paystream.transfer;

import java.util.UUID;

import io.paystream.idempotency.IdempotencyKey;
import io.paystream.idempotency.IdempotencyKeys;
import io.paystream.idempotency.StoredResponse;
import io.paystream.security.Caller;
import io.paystream.system.ApiException;
import io.paystream.system.OptionalBody;
import io.paystream.system.Problem;
import io.paystream.transfer.LedgerMetrics.Movement;
import io.swagger.v3.oas.annotations.Operation;
import io.swagger.v3.oas.annotations.media.Content;
import io.swagger.v3.oas.annotations.media.Schema;
import io.swagger.v3.oas.annotations.responses.ApiResponse;
import io.swagger.v3.oas.annotations.tags.Tag;
import jakarta.validation.Valid;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.http.server.reactive.ServerHttpRequest;
import org.springframework.security.core.annotation.AuthenticationPrincipal;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PathVariable;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RequestHeader;
import org.springframework.web.bind.annotation.RestController;
import reactor.core.publisher.Mono;

/** Holds (two-phase transfers): place, capture, void, read. */
@Tag(name = "Holds", description = "Two-phase transfers")
@RestController
class HoldController {

    private final Ledger ledger;
    private final Holds holds;
    private final IdempotencyKeys keys;
    private final LedgerMetrics metrics;

    HoldController(Ledger ledger, Holds holds, IdempotencyKeys keys, LedgerMetrics metrics) {
        this.metrics = metrics;
        this.ledger = ledger;
        this.holds = holds;
        this.keys = keys;
    }

    @Operation(summary = "Place a hold: reserve money to capture or void later")
    @ApiResponse(responseCode = "201", description = "The pending hold",
            content = @Content(mediaType = "application/json", schema = @Schema(implementation = Hold.class)))
    @PostMapping(path = "/v1/holds", consumes = MediaType.APPLICATION_JSON_VALUE,
            produces = MediaType.APPLICATION_JSON_VALUE)
    Mono<ResponseEntity<byte[]>> place(@RequestHeader(name = IdempotencyKey.HEADER, required = false) String key,
            @Valid @RequestBody HoldRequest request, ServerHttpRequest http, @AuthenticationPrincipal Caller caller) {
        return metrics.movement(Movement.HOLD, Mono.defer(() -> ledger.run(keys.keyOf(key, http, request, caller), http.getPath().value(),
                        () -> holds.place(request, caller).map(hold -> new Ledger.Reply(201, "/v1/holds/" + hold.id(), hold)))))
                .map(StoredResponse::toResponseEntity);
    }

    @Operation(summary = "Capture a hold, in full or in part; the rest is released")
    @ApiResponse(responseCode = "200", description = "The captured hold",
            content = @Content(mediaType = "application/json", schema = @Schema(implementation = Hold.class)))
    @PostMapping(path = "/v1/holds/{id}/capture", produces = MediaType.APPLICATION_JSON_VALUE)
    Mono<ResponseEntity<byte[]>> capture(@RequestHeader(name = IdempotencyKey.HEADER, required = false) String key,
            @PathVariable UUID id, @Valid @RequestBody(required = false) CaptureRequest request, ServerHttpRequest http,
            @AuthenticationPrincipal Caller caller) {
        CaptureRequest capture = OptionalBody.orWhenAbsent(request, http, () -> new CaptureRequest(null));
        return metrics.movement(Movement.CAPTURE, Mono.defer(() -> ledger.run(keys.keyOf(key, http, capture, caller), http.getPath().value(),
                        () -> holds.capture(id, capture, caller).map(hold -> new Ledger.Reply(200, null, hold)))))
                .map(StoredResponse::toResponseEntity);
    }

    @Operation(summary = "Void a hold: release all it holds")
    @ApiResponse(responseCode = "200", description = "The voided hold",
            content = @Content(mediaType = "application/json", schema = @Schema(implementation = Hold.class)))
    @PostMapping(path = "/v1/holds/{id}/void", produces = MediaType.APPLICATION_JSON_VALUE)
    Mono<ResponseEntity<byte[]>> voidHold(@RequestHeader(name = IdempotencyKey.HEADER, required = false) String key,
            @PathVariable UUID id, ServerHttpRequest http, @AuthenticationPrincipal Caller caller) {
        return metrics.movement(Movement.VOID, Mono.defer(() -> ledger.run(keys.keyOf(key, http, null, caller), http.getPath().value(),
                        () -> holds.voidHold(id, caller).map(hold -> new Ledger.Reply(200, null, hold)))))
                .map(StoredResponse::toResponseEntity);
    }

    @Operation(summary = "Read a hold")
    @GetMapping(path = "/v1/holds/{id}", produces = MediaType.APPLICATION_JSON_VALUE)
    Mono<Hold> get(@PathVariable UUID id, @AuthenticationPrincipal Caller caller) {
        return holds.find(id, caller).switchIfEmpty(Mono.error(() -> new ApiException(Problem.HOLD_NOT_FOUND, "No hold " + id)));
    }
}
