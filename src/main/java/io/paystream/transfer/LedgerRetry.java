package io.paystream.transfer;

import java.util.Optional;
import java.util.Set;
import java.util.function.Consumer;

import io.paystream.system.ApiException;
import io.paystream.system.Problem;
import io.r2dbc.postgresql.api.PostgresqlException;
import io.r2dbc.spi.R2dbcException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.util.retry.Retry;
import reactor.util.retry.RetryBackoffSpec;

/**
 * Which failures mean "this movement lost a race; run it again", and how often.
 *
 * <p>Classification is by SQLSTATE, found anywhere along the cause chain, never by exception class:
 * the same 40001 reaches us wrapped differently from a statement, from a trigger or from COMMIT, and
 * wrapper classes change between library versions while SQLSTATEs do not.
 */
final class LedgerRetry {

    private static final Logger log = LoggerFactory.getLogger(LedgerRetry.class);

    static final String SERIALIZATION_FAILURE = "40001";
    static final String DEADLOCK_DETECTED = "40P01";
    static final String UNIQUE_VIOLATION = "23505";

    /**
     * Unique keys whose violation means "lost a race", so that running the unit again gives the right
     * answer. Any other unique violation is not a race and is not retried.
     * <ul>
     * <li>the chain's UNIQUE(account_id, version): two movements read the same head of an account's
     * chain and both tried to append version n+1; the loser read a stale head;</li>
     * <li>a hold's one outcome: a capture, void or expiry lost to another; run again, it sees the
     * outcome and answers 409;</li>
     * <li>an idempotency key recorded by a twin request in the instant before ours claimed it; run
     * again, ours finds the stored response and replays it.</li>
     * </ul>
     */
    static final Set<String> RACE_CONSTRAINTS = Set.of("balances_account_version_key", "hold_events_one_outcome",
            "idempotency_keys_pkey");

    /** Bounded walk: a cyclic or absurdly deep cause chain cannot loop forever. */
    private static final int MAX_CAUSE_DEPTH = 32;

    private static final Set<String> RACE_STATES = Set.of(SERIALIZATION_FAILURE, DEADLOCK_DETECTED);

    private LedgerRetry() {
    }

    static boolean isLostRace(Throwable failure) {
        return sqlState(failure).map(state -> RACE_STATES.contains(state)
                || (UNIQUE_VIOLATION.equals(state) && isRaceConstraint(constraint(failure))))
                .orElse(false);
    }

    private static boolean isRaceConstraint(String constraint) {
        return constraint != null && RACE_CONSTRAINTS.contains(constraint); // Set.of refuses null lookups
    }

    /** The first SQLSTATE along the cause chain. */
    static Optional<String> sqlState(Throwable failure) {
        Throwable current = failure;
        for (int depth = 0; current != null && depth < MAX_CAUSE_DEPTH; depth++) {
            if (current instanceof R2dbcException r2dbc && r2dbc.getSqlState() != null) {
                return Optional.of(r2dbc.getSqlState());
            }
            current = current.getCause();
        }
        return Optional.empty();
    }

    private static String constraint(Throwable failure) {
        Throwable current = failure;
        for (int depth = 0; current != null && depth < MAX_CAUSE_DEPTH; depth++) {
            if (current instanceof PostgresqlException pg) {
                return pg.getErrorDetails().getConstraintName().orElse(null);
            }
            current = current.getCause();
        }
        return null;
    }

    /**
     * Exponential backoff with jitter, at most {@code maxRetries} times. When the races keep being
     * lost, the client gets 503 with Retry-After; every attempt was its own transaction and was
     * rolled back, so nothing is half-written. {@code onRetry} hears each retry's SQLSTATE (for metrics).
     */
    static RetryBackoffSpec spec(LedgerProperties.Retry retry, Consumer<String> onRetry) {
        return Retry.backoff(retry.maxRetries(), retry.firstBackoff())
                .maxBackoff(retry.maxBackoff())
                .jitter(0.5)
                .filter(LedgerRetry::isLostRace)
                .doBeforeRetry(signal -> onRetry.accept(sqlState(signal.failure()).orElse("none")))
                .onRetryExhaustedThrow((spec, signal) -> {
                    log.warn("Movement still losing races after {} retries; last SQLSTATE {}", signal.totalRetries(),
                            sqlState(signal.failure()).orElse("none"));
                    return new ApiException(Problem.RETRIES_EXHAUSTED,
                            "The accounts are too busy right now; nothing was applied. Retry later");
                });
    }
}
