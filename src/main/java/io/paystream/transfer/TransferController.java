package io.paystream.transfer;

import java.util.UUID;

import io.paystream.idempotency.IdempotencyKey;
import io.paystream.idempotency.IdempotencyKeys;
import io.paystream.idempotency.StoredResponse;
import io.paystream.security.Caller;
import io.paystream.system.ApiException;
import io.paystream.system.EventLoops;
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

/**
 * The HTTP face of the ledger: transfers, deposits, withdrawals, reversals and batches. Every POST
 * moves money and so needs an {@code Idempotency-Key}; it runs as one {@link Ledger#run} unit.
 */
@Tag(name = "Transfers", description = "Transfers, deposits, withdrawals, reversals and batches")
@RestController
class TransferController {

    private final Ledger ledger;
    private final Transfers transfers;
    private final TransferRepository repository;
    private final IdempotencyKeys keys;
    private final LedgerMetrics metrics;
    private final TransferGroups groups;

    TransferController(Ledger ledger, Transfers transfers, TransferRepository repository, IdempotencyKeys keys,
            LedgerMetrics metrics, TransferGroups groups) {
        this.metrics = metrics;
        this.groups = groups;
        this.ledger = ledger;
        this.transfers = transfers;
        this.repository = repository;
        this.keys = keys;
    }

    @Operation(summary = "Transfer money between two accounts of one currency")
    @ApiResponse(responseCode = "201", description = "The transfer",
            content = @Content(mediaType = "application/json", schema = @Schema(implementation = Transfer.class)))
    @PostMapping(path = "/v1/transfers", consumes = MediaType.APPLICATION_JSON_VALUE,
            produces = MediaType.APPLICATION_JSON_VALUE)
    Mono<ResponseEntity<byte[]>> transfer(@RequestHeader(name = IdempotencyKey.HEADER, required = false) String key,
            @Valid @RequestBody TransferRequest request, ServerHttpRequest http, @AuthenticationPrincipal Caller caller) {
        if (groups.enabled()) { // many transfers to a transaction, each with its own outcome
            return metrics.movement(Movement.TRANSFER, Mono.defer(() -> groups.submit(keys.keyOf(key, http, request, caller),
                            http.getPath().value(), request, caller, EventLoops.of(http))))
                    .map(StoredResponse::toResponseEntity);
        }
        return created(Movement.TRANSFER, key, http, request, caller, () -> Transfers.locks(request),
                accounts -> transfers.transfer(request, caller, accounts));
    }

    @Operation(summary = "Read a transfer")
    @GetMapping(path = "/v1/transfers/{id}", produces = MediaType.APPLICATION_JSON_VALUE)
    Mono<Transfer> get(@PathVariable UUID id, @AuthenticationPrincipal Caller caller) {
        return repository.find(id, caller)
                .switchIfEmpty(Mono.error(() -> new ApiException(Problem.TRANSFER_NOT_FOUND, "No transfer " + id)));
    }

    @Operation(summary = "Deposit money from outside into an account (admin)")
    @ApiResponse(responseCode = "201", description = "The deposit",
            content = @Content(mediaType = "application/json", schema = @Schema(implementation = Transfer.class)))
    @PostMapping(path = "/v1/accounts/{id}/deposits", consumes = MediaType.APPLICATION_JSON_VALUE,
            produces = MediaType.APPLICATION_JSON_VALUE)
    Mono<ResponseEntity<byte[]>> deposit(@RequestHeader(name = IdempotencyKey.HEADER, required = false) String key,
            @PathVariable UUID id, @Valid @RequestBody ExternalMovementRequest request, ServerHttpRequest http,
            @AuthenticationPrincipal Caller caller) {
        return created(Movement.DEPOSIT, key, http, request, caller, () -> Transfers.locks(id, request),
                accounts -> transfers.external(MovementType.DEPOSIT, id, request, caller, accounts));
    }

    @Operation(summary = "Withdraw money from an account to the outside")
    @ApiResponse(responseCode = "201", description = "The withdrawal",
            content = @Content(mediaType = "application/json", schema = @Schema(implementation = Transfer.class)))
    @PostMapping(path = "/v1/accounts/{id}/withdrawals", consumes = MediaType.APPLICATION_JSON_VALUE,
            produces = MediaType.APPLICATION_JSON_VALUE)
    Mono<ResponseEntity<byte[]>> withdraw(@RequestHeader(name = IdempotencyKey.HEADER, required = false) String key,
            @PathVariable UUID id, @Valid @RequestBody ExternalMovementRequest request, ServerHttpRequest http,
            @AuthenticationPrincipal Caller caller) {
        return created(Movement.WITHDRAWAL, key, http, request, caller, () -> Transfers.locks(id, request),
                accounts -> transfers.external(MovementType.WITHDRAWAL, id, request, caller, accounts));
    }

    @Operation(summary = "Reverse a transfer, in full or in part")
    @ApiResponse(responseCode = "201", description = "The reversal",
            content = @Content(mediaType = "application/json", schema = @Schema(implementation = Transfer.class)))
    @PostMapping(path = "/v1/transfers/{id}/reversals", produces = MediaType.APPLICATION_JSON_VALUE)
    Mono<ResponseEntity<byte[]>> reverse(@RequestHeader(name = IdempotencyKey.HEADER, required = false) String key,
            @PathVariable UUID id, @Valid @RequestBody(required = false) ReversalRequest request, ServerHttpRequest http,
            @AuthenticationPrincipal Caller caller) {
        ReversalRequest reversal = OptionalBody.orWhenAbsent(request, http, () -> new ReversalRequest(null));
        return created(Movement.REVERSAL, key, http, reversal, caller, () -> transfers.reverse(id, reversal, caller));
    }

    @Operation(summary = "Apply several transfers all or nothing, in one transaction")
    @ApiResponse(responseCode = "201", description = "The transfers, in request order",
            content = @Content(mediaType = "application/json", schema = @Schema(implementation = BatchResult.class)))
    @PostMapping(path = "/v1/transfer-batches", consumes = MediaType.APPLICATION_JSON_VALUE,
            produces = MediaType.APPLICATION_JSON_VALUE)
    Mono<ResponseEntity<byte[]>> batch(@RequestHeader(name = IdempotencyKey.HEADER, required = false) String key,
            @Valid @RequestBody BatchRequest request, ServerHttpRequest http, @AuthenticationPrincipal Caller caller) {
        // Deferred: a missing or invalid Idempotency-Key is counted as a refused movement too.
        return metrics.movement(Movement.BATCH, Mono.defer(() -> ledger.runLocked(keys.keyOf(key, http, request, caller),
                        http.getPath().value(),
                        () -> transfers.batch(request, caller).map(batch -> new Ledger.Reply(201, null, batch)))))
                .map(StoredResponse::toResponseEntity);
    }

    /** A movement that names its accounts up front: claimed and locked in one statement. */
    private Mono<ResponseEntity<byte[]>> created(Movement movement, String key, ServerHttpRequest http, Object request,
            Caller caller, java.util.function.Supplier<Ledger.Locks> locks,
            java.util.function.Function<java.util.List<Ledger.AccountRow>, Mono<Transfer>> work) {
        return metrics.movement(movement, Mono.defer(() -> ledger.run(keys.keyOf(key, http, request, caller),
                        http.getPath().value(), locks.get(),
                        accounts -> work.apply(accounts).map(t -> new Ledger.Reply(201, "/v1/transfers/" + t.id(), t)))))
                .map(StoredResponse::toResponseEntity);
    }

    private Mono<ResponseEntity<byte[]>> created(Movement movement, String key, ServerHttpRequest http, Object request,
            Caller caller, java.util.function.Supplier<Mono<Transfer>> work) {
        return metrics.movement(movement, Mono.defer(() -> ledger.run(keys.keyOf(key, http, request, caller),
                        http.getPath().value(),
                        () -> work.get().map(t -> new Ledger.Reply(201, "/v1/transfers/" + t.id(), t)))))
                .map(StoredResponse::toResponseEntity);
    }
}
