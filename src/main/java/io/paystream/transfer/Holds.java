package io.paystream.transfer;

import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import io.paystream.security.Caller;
import io.paystream.system.ApiException;
import io.paystream.system.Problem;
import io.r2dbc.spi.Readable;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.r2dbc.core.DatabaseClient;
import org.springframework.stereotype.Service;
import reactor.core.publisher.Mono;
import tools.jackson.core.type.TypeReference;
import tools.jackson.databind.json.JsonMapper;

/**
 * Holds: two-phase transfers. Placing a hold moves no money; it raises the source account's
 * {@code held}, so {@code available = balance - held} drops and every later debit sees less. A capture
 * posts a transfer and releases the hold in the same balance row; a void or an expiry only releases.
 *
 * <p>Capture, void and expiry of one hold race safely: each locks the hold's row first (the sweeper
 * with SKIP LOCKED), then reads the hold's outcome in a fresh statement, so the loser sees the winner's
 * outcome and answers 409. The unique index on a hold's outcome is the database's backstop. Lock order
 * is always the hold, then its accounts in ascending id order.
 */
@Service
class Holds {

    private static final TypeReference<Map<String, String>> METADATA = new TypeReference<>() {
    };

    /** A hold and the owners of its two accounts (who may see it; the source's owner may settle it). */
    private static final String SELECT_HOLD = """
            SELECT h.id, h.debit_account_id, h.credit_account_id, h.amount, h.currency, h.description, h.metadata,
                   h.expires_at, h.created_at,
                   (SELECT a.owner_id FROM accounts a WHERE a.id = h.debit_account_id) AS debit_owner,
                   (SELECT a.owner_id FROM accounts a WHERE a.id = h.credit_account_id) AS credit_owner
              FROM holds h
             WHERE h.id = :id""";

    private static final String PLACE = """
            WITH head AS (
                SELECT coalesce(b.version, 0) AS version, coalesce(b.balance, 0) AS balance,
                       coalesce(b.held, 0) AS held, b.created_at
                  FROM (SELECT 1) AS one
                  LEFT JOIN LATERAL (
                       SELECT version, balance, held, created_at FROM balances
                        WHERE account_id = :debit ORDER BY version DESC LIMIT 1) b ON true
            ),
            verdict AS (
                SELECT h.balance - h.held >= :amount OR :debitMayGoNegative AS funded,
                       greatest(clock_timestamp(), h.created_at) AS at
                  FROM head h
            ),
            hold AS (
                INSERT INTO holds (debit_account_id, credit_account_id, amount, currency, description, metadata,
                                   expires_at, created_at)
                SELECT :debit, :credit, :amount, :currency, :description, CAST(:metadata AS jsonb), :expiresAt, v.at
                  FROM verdict v
                 WHERE v.funded
                RETURNING id, created_at
            ),
            pending AS (
                INSERT INTO hold_events (hold_id, status, created_at)
                SELECT id, 'pending', created_at FROM hold
            ),
            entry AS (
                INSERT INTO balances (account_id, version, delta, balance, held_delta, held, currency, hold_id, created_at)
                SELECT :debit, h.version + 1, 0, h.balance, :amount, h.held + :amount, :currency, hold.id, hold.created_at
                  FROM head h CROSS JOIN hold
                RETURNING version
            )
            SELECT v.funded, hold.id, hold.created_at, (SELECT count(*) FROM entry) AS entry_count
              FROM verdict v LEFT JOIN hold ON true""";

    private static final String RELEASE = """
            WITH head AS (
                SELECT version, balance, held, created_at FROM balances
                 WHERE account_id = :debit ORDER BY version DESC LIMIT 1
            ),
            outcome AS (
                INSERT INTO hold_events (hold_id, status, created_at)
                SELECT :holdId, :status, greatest(clock_timestamp(), h.created_at) FROM head h
                RETURNING created_at
            ),
            entry AS (
                INSERT INTO balances (account_id, version, delta, balance, held_delta, held, currency, hold_id, created_at)
                SELECT :debit, h.version + 1, 0, h.balance, -CAST(:amount AS bigint), h.held - :amount, :currency,
                       :holdId, o.created_at
                  FROM head h CROSS JOIN outcome o
                RETURNING version
            )
            SELECT o.created_at, (SELECT count(*) FROM entry) AS entry_count FROM outcome o""";


    /** Read in its own statement after the hold's row lock, so it sees an outcome committed before. */
    private static final String OUTCOME = """
            SELECT status, captured_amount, transaction_id, created_at
              FROM hold_events WHERE hold_id = :id AND status <> 'pending'""";

    /**
     * The sweeper's next expired, unsettled hold. SKIP LOCKED: replicas sweeping at once, or a capture
     * holding the row, never make it wait; it takes the next one. The time is {@code statement_timestamp()},
     * stable within the statement, so it bounds the scan of {@code holds_by_expiry}: a volatile clock
     * could only be a filter, read against every hold not yet expired too.
     */
    static final String NEXT_EXPIRED = """
            SELECT h.id FROM holds h
             WHERE h.expires_at <= statement_timestamp()
               AND NOT EXISTS (SELECT 1 FROM hold_events e WHERE e.hold_id = h.id AND e.status <> 'pending')
             ORDER BY h.expires_at
             LIMIT 1
               FOR NO KEY UPDATE OF h SKIP LOCKED""";

    private final Ledger ledger;
    private final LedgerMetrics metrics;
    private final DatabaseClient db;
    private final JsonMapper json;
    private final Duration defaultExpiry;
    private final Duration maxExpiry;

    Holds(Ledger ledger, LedgerMetrics metrics, DatabaseClient db, JsonMapper json,
            @Value("${paystream.holds.default-expiry}") Duration defaultExpiry,
            @Value("${paystream.holds.max-expiry}") Duration maxExpiry) {
        this.ledger = ledger;
        this.metrics = metrics;
        this.db = db;
        this.json = json;
        this.defaultExpiry = defaultExpiry;
        this.maxExpiry = maxExpiry;
    }

    Mono<Hold> place(HoldRequest request, Caller caller) {
        if (request.fromAccountId().equals(request.toAccountId())) {
            return Mono.error(new ApiException(Problem.SAME_ACCOUNT, "A hold needs two different accounts"));
        }
        Instant now = Instant.now();
        Instant expiresAt = request.expiresAt() == null ? now.plus(defaultExpiry) : request.expiresAt();
        if (!expiresAt.isAfter(now.plusSeconds(1)) || expiresAt.isAfter(now.plus(maxExpiry))) {
            return Mono.error(ApiException.invalidField("expiresAt",
                    "must be in the future and at most " + maxExpiry.toDays() + " days away"));
        }
        Map<String, String> metadata = request.metadata() == null ? Map.of() : request.metadata();
        return ledger.lockAccounts(List.of(request.fromAccountId(), request.toAccountId()), null)
                .flatMap(accounts -> {
                    Ledger.AccountRow debit = Ledger.debitAccount(request.fromAccountId(), request.currency(), accounts, caller);
                    Ledger.creditAccount(request.toAccountId(), request.currency(), accounts, caller);
                    DatabaseClient.GenericExecuteSpec place = db.sql(PLACE)
                            .bind("debit", debit.id())
                            .bind("credit", request.toAccountId())
                            .bind("amount", request.amount())
                            .bind("currency", request.currency())
                            .bind("debitMayGoNegative", debit.allowNegative())
                            .bind("metadata", json.writeValueAsString(metadata))
                            .bind("expiresAt", expiresAt);
                    place = Ledger.bindOrNull(place, "description", request.description(), String.class);
                    return Ledger.touching(place.map(row -> new Placed(Boolean.TRUE.equals(row.get("funded", Boolean.class)),
                                    row.get("id", UUID.class), row.get("created_at", Instant.class),
                                    row.get("entry_count", Long.class)))
                            .one(), debit.id());
                })
                .map(placed -> {
                    if (!placed.funded()) {
                        throw Ledger.insufficientFunds(request.fromAccountId(), request.amount());
                    }
                    if (placed.id() == null || placed.entryCount() != 1) {
                        throw new IllegalStateException("placing a hold wrote " + placed.entryCount() + " balance rows");
                    }
                    return new Hold(placed.id(), Hold.PENDING, request.fromAccountId(), request.toAccountId(),
                            request.amount(), request.currency(), request.description(), metadata, expiresAt, null, null,
                            placed.createdAt(), placed.createdAt());
                });
    }

    private record Placed(boolean funded, UUID id, Instant createdAt, Long entryCount) {
    }

    /** Posts {@code amount} (all of the hold if null) and releases the rest. */
    Mono<Hold> capture(UUID holdId, CaptureRequest request, Caller caller) {
        return pendingHold(holdId, caller).flatMap(hold -> {
            long amount = request.amount() == null ? hold.amount() : request.amount();
            if (amount > hold.amount()) {
                return Mono.error(new ApiException(Problem.CAPTURE_EXCEEDS_HOLD,
                        "Hold " + holdId + " holds " + hold.amount() + "; cannot capture " + amount));
            }
            return ledger.lockAccounts(List.of(hold.fromAccountId(), hold.toAccountId()), null)
                    .map(accounts -> new Ledger.Posting(MovementType.TRANSFER,
                            Ledger.debitAccount(hold.fromAccountId(), hold.currency(), accounts, caller),
                            Ledger.creditAccount(hold.toAccountId(), hold.currency(), accounts, caller),
                            amount, hold.currency(), hold.description(), hold.metadata(), -hold.amount(), holdId, null))
                    .flatMap(ledger::post)
                    .map(transfer -> withOutcome(hold, Hold.POSTED, amount, transfer.id(), transfer.createdAt()));
        });
    }

    Mono<Hold> voidHold(UUID holdId, Caller caller) {
        return pendingHold(holdId, caller).flatMap(hold -> release(hold, Hold.VOIDED));
    }

    /**
     * Expires the next expired hold, if any; answers whether there was one. Runs as its own unit, so
     * a failure expires nothing and the next sweep tries again.
     */
    Mono<Boolean> expireNext() {
        return ledger.runInternal(() -> db.sql(NEXT_EXPIRED)
                .map(row -> row.get("id", UUID.class))
                .one()
                .flatMap(id -> lockedHold(id, false))
                .map(HoldRow::hold)
                .flatMap(hold -> outcome(hold.id()).hasElement()
                        .flatMap(settled -> settled ? Mono.just(true) : release(hold, Hold.EXPIRED).thenReturn(true)))
                .defaultIfEmpty(false));
    }

    /** A hold, if the caller may see it: an admin, or the owner of either account. */
    Mono<Hold> find(UUID holdId, Caller caller) {
        return lockedHold(holdId, false)
                .filter(row -> caller.owns(row.debitOwner()) || caller.owns(row.creditOwner()))
                .map(HoldRow::hold)
                .flatMap(hold -> outcome(holdId).map(o -> withOutcome(hold, o.status(), o.capturedAmount(),
                        o.transactionId(), o.createdAt())).defaultIfEmpty(hold));
    }

    // ---------------------------------------------------------------------------------------------

    /**
     * Locks the hold and checks the caller may settle it (it owns the source account; to anyone else
     * the hold does not exist) and that it is still pending: not settled and not past its expiry.
     */
    private Mono<Hold> pendingHold(UUID holdId, Caller caller) {
        return lockedHold(holdId, ledger.isPessimistic())
                .filter(row -> caller.owns(row.debitOwner()))
                .map(HoldRow::hold)
                .switchIfEmpty(Mono.error(() -> new ApiException(Problem.HOLD_NOT_FOUND, "No hold " + holdId)))
                .flatMap(hold -> outcome(holdId)
                        .flatMap(o -> Mono.<Hold>error(new ApiException(Problem.HOLD_NOT_PENDING,
                                "Hold " + holdId + " is " + o.status())))
                        .switchIfEmpty(Mono.defer(() -> hold.expiresAt().isAfter(Instant.now()) ? Mono.just(hold)
                                : Mono.error(new ApiException(Problem.HOLD_NOT_PENDING,
                                        "Hold " + holdId + " expired at " + hold.expiresAt())))));
    }

    private record HoldRow(Hold hold, UUID debitOwner, UUID creditOwner) {
    }

    private Mono<HoldRow> lockedHold(UUID holdId, boolean lock) {
        Mono<HoldRow> row = db.sql(lock ? SELECT_HOLD + Ledger.LOCK_CLAUSE : SELECT_HOLD).bind("id", holdId)
                .map(r -> new HoldRow(hold(r), r.get("debit_owner", UUID.class), r.get("credit_owner", UUID.class)))
                .one();
        return lock ? metrics.lockWait("hold", row) : row;
    }

    private Mono<Hold> release(Hold hold, String status) {
        return ledger.lockAccounts(List.of(hold.fromAccountId()), null)
                .then(Ledger.touching(db.sql(RELEASE)
                        .bind("debit", hold.fromAccountId())
                        .bind("holdId", hold.id())
                        .bind("status", status)
                        .bind("amount", hold.amount())
                        .bind("currency", hold.currency())
                        .map(row -> {
                            if (row.get("entry_count", Long.class) != 1) {
                                throw new IllegalStateException("releasing hold " + hold.id() + " wrote no balance row");
                            }
                            return withOutcome(hold, status, null, null, row.get("created_at", Instant.class));
                        })
                        .one(), hold.fromAccountId()));
    }

    private record Outcome(String status, Long capturedAmount, UUID transactionId, Instant createdAt) {
    }

    private Mono<Outcome> outcome(UUID holdId) {
        return db.sql(OUTCOME).bind("id", holdId)
                .map(row -> new Outcome(row.get("status", String.class), row.get("captured_amount", Long.class),
                        row.get("transaction_id", UUID.class), row.get("created_at", Instant.class)))
                .one();
    }

    private Hold hold(Readable row) {
        Instant createdAt = row.get("created_at", Instant.class);
        return new Hold(row.get("id", UUID.class), Hold.PENDING, row.get("debit_account_id", UUID.class),
                row.get("credit_account_id", UUID.class), row.get("amount", Long.class), row.get("currency", String.class),
                row.get("description", String.class), json.readValue(row.get("metadata", String.class), METADATA),
                row.get("expires_at", Instant.class), null, null, createdAt, createdAt);
    }

    private static Hold withOutcome(Hold hold, String status, Long capturedAmount, UUID transactionId, Instant at) {
        return new Hold(hold.id(), status, hold.fromAccountId(), hold.toAccountId(), hold.amount(), hold.currency(),
                hold.description(), hold.metadata(), hold.expiresAt(), capturedAmount, transactionId, hold.createdAt(), at);
    }
}
