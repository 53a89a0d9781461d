package io.paystream.transfer;

import java.net.URI;
import java.util.UUID;

import io.paystream.system.ApiException;
import io.paystream.system.Problem;
import jakarta.validation.Valid;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PathVariable;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RestController;
import reactor.core.publisher.Mono;

/** The HTTP face of the {@link Ledger}: transfers between accounts, deposits and withdrawals. */
@RestController
class TransferController {

    private final Ledger ledger;
    private final TransferRepository transfers;

    TransferController(Ledger ledger, TransferRepository transfers) {
        this.ledger = ledger;
        this.transfers = transfers;
    }

    @PostMapping(path = "/v1/transfers", consumes = MediaType.APPLICATION_JSON_VALUE,
            produces = MediaType.APPLICATION_JSON_VALUE)
    Mono<ResponseEntity<Transfer>> transfer(@Valid @RequestBody TransferRequest request) {
        return created(ledger.move(new Ledger.Movement(MovementType.TRANSFER, request.fromAccountId(),
                request.toAccountId(), request.amount(), request.currency(), request.description(), request.metadata())));
    }

    @GetMapping(path = "/v1/transfers/{id}", produces = MediaType.APPLICATION_JSON_VALUE)
    Mono<Transfer> get(@PathVariable UUID id) {
        return transfers.find(id)
                .switchIfEmpty(Mono.error(() -> new ApiException(Problem.TRANSFER_NOT_FOUND, "No transfer " + id)));
    }

    @PostMapping(path = "/v1/accounts/{id}/deposits", consumes = MediaType.APPLICATION_JSON_VALUE,
            produces = MediaType.APPLICATION_JSON_VALUE)
    Mono<ResponseEntity<Transfer>> deposit(@PathVariable UUID id, @Valid @RequestBody ExternalMovementRequest request) {
        return created(ledger.move(new Ledger.Movement(MovementType.DEPOSIT, null, id, request.amount(),
                request.currency(), request.description(), request.metadata())));
    }

    @PostMapping(path = "/v1/accounts/{id}/withdrawals", consumes = MediaType.APPLICATION_JSON_VALUE,
            produces = MediaType.APPLICATION_JSON_VALUE)
    Mono<ResponseEntity<Transfer>> withdraw(@PathVariable UUID id, @Valid @RequestBody ExternalMovementRequest request) {
        return created(ledger.move(new Ledger.Movement(MovementType.WITHDRAWAL, id, null, request.amount(),
                request.currency(), request.description(), request.metadata())));
    }

    private static Mono<ResponseEntity<Transfer>> created(Mono<Transfer> movement) {
        return movement.map(t -> ResponseEntity.created(URI.create("/v1/transfers/" + t.id())).body(t));
    }
}
