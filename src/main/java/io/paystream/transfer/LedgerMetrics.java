package io.paystream.transfer;

import java.time.Duration;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import java.util.function.Function;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.paystream.idempotency.StoredResponse;
import io.paystream.system.Problem;
import io.paystream.system.ProblemExceptionHandler;
import org.springframework.stereotype.Component;
import reactor.core.publisher.Mono;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * What the ledger tells Prometheus. Every tag takes values from a closed set (movement kinds, outcomes,
 * problem codes, the retried SQLSTATEs), so no client input can grow the number of time series.
 *
 * <ul>
 * <li>{@code paystream.movements}: every money movement, by {@code type}, {@code outcome} (applied,
 * refused, replayed, failed) and the problem {@code code} the client got (none when applied or
 * replayed);</li>
 * <li>{@code paystream.ledger.retries}: attempts run again after losing a race, by {@code sqlstate};</li>
 * <li>{@code paystream.ledger.transaction}: each attempt's transaction, from BEGIN to COMMIT or
 * rollback, by {@code outcome};</li>
 * <li>{@code paystream.ledger.lock.wait}: the locking {@code SELECT ... FOR NO KEY UPDATE}, by what it
 * locks.</li>
 * </ul>
 */
@Component
class LedgerMetrics {

    /** The kinds of money movement, as the {@code type} tag spells them. */
    enum Movement {
        TRANSFER, DEPOSIT, WITHDRAWAL, HOLD, CAPTURE, VOID, REVERSAL, BATCH, EXPIRY;

        String tag() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /** What became of a movement. */
    enum Outcome {
        /** It moved money (or placed or released a hold). */
        APPLIED,
        /** A problem answered it (4xx): nothing moved. */
        REFUSED,
        /** Its Idempotency-Key had already been answered: the stored response was sent again. */
        REPLAYED,
        /** It did not complete (5xx, or cancelled): nothing moved; the client may retry. */
        FAILED;

        String tag() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /** The code tag when there is no problem, and when the client went away before an answer. */
    static final String NO_CODE = "none";
    static final String CANCELLED = "cancelled";

    /**
     * Histogram bounds. Below 1 ms is noise for a database round trip; above 10 s is past the attempt
     * and request timeouts, so nothing longer can be observed. Bounding both keeps the bucket count
     * (and so the series per timer) small.
     */
    private static final Duration MIN_EXPECTED = Duration.ofMillis(1);
    private static final Duration MAX_EXPECTED = Duration.ofSeconds(10);

    private final MeterRegistry registry;
    private final JsonMapper json;

    LedgerMetrics(MeterRegistry registry, JsonMapper json) {
        this.registry = registry;
        this.json = json;
        // Registered up front, so dashboards and alerts see a zero rather than no series at all.
        for (String state : java.util.List.of(LedgerRetry.SERIALIZATION_FAILURE, LedgerRetry.DEADLOCK_DETECTED,
                LedgerRetry.UNIQUE_VIOLATION)) {
            retries(state);
        }
        for (Movement movement : Movement.values()) {
            movements(movement, Outcome.APPLIED, NO_CODE);
        }
        transactionTimer("committed");
        lockWaitTimer("accounts");
    }

    // Movements ----------------------------------------------------------------------------------

    /** Counts what becomes of a movement a client asked for, once it has an answer (or is abandoned). */
    Mono<StoredResponse> movement(Movement movement, Mono<StoredResponse> answer) {
        return Mono.defer(() -> {
            // Once per subscription: a cancel that follows an answer must not count it a second time.
            AtomicBoolean counted = new AtomicBoolean();
            return answer
                    .doOnNext(response -> count(counted, movement, outcomeOf(response), codeOf(response)))
                    .doOnError(failure -> {
                        Problem problem = ProblemExceptionHandler.problemOf(failure);
                        count(counted, movement, problem.status().is4xxClientError() ? Outcome.REFUSED : Outcome.FAILED,
                                problem.code());
                    })
                    .doOnCancel(() -> count(counted, movement, Outcome.FAILED, CANCELLED));
        });
    }

    private void count(AtomicBoolean counted, Movement movement, Outcome outcome, String code) {
        if (counted.compareAndSet(false, true)) {
            movements(movement, outcome, code).increment();
        }
    }

    /** Counts one expired hold, or one failed attempt to expire holds, of the sweeper. */
    void expiry(boolean applied, Throwable failure) {
        if (applied) {
            movements(Movement.EXPIRY, Outcome.APPLIED, NO_CODE).increment();
        } else {
            movements(Movement.EXPIRY, Outcome.FAILED, ProblemExceptionHandler.problemOf(failure).code()).increment();
        }
    }

    private static Outcome outcomeOf(StoredResponse response) {
        if (response.replayed()) {
            return Outcome.REPLAYED;
        }
        return response.status() >= 400 ? Outcome.REFUSED : Outcome.APPLIED;
    }

    /** A refusal stored with its key carries its code in the problem body (a few hundred bytes). */
    private String codeOf(StoredResponse response) {
        if (response.replayed() || response.status() < 400) {
            return NO_CODE;
        }
        JsonNode code = json.readTree(response.body()).path("code");
        return knownCode(code.isString() ? code.asString() : null);
    }

    /** Only codes of the Problem enum become tag values. */
    private static String knownCode(String code) {
        for (Problem problem : Problem.values()) {
            if (problem.code().equals(code)) {
                return code;
            }
        }
        return Problem.INTERNAL_ERROR.code();
    }

    private Counter movements(Movement movement, Outcome outcome, String code) {
        return Counter.builder("paystream.movements")
                .description("Money movements by type and outcome, with the problem code of refusals and failures")
                .tag("type", movement.tag())
                .tag("outcome", outcome.tag())
                .tag("code", code)
                .register(registry);
    }

    // Retries ------------------------------------------------------------------------------------

    /** Counts one retry of a unit that lost a race with this SQLSTATE. */
    void retried(String sqlState) {
        retries(sqlState).increment();
    }

    private Counter retries(String sqlState) {
        return Counter.builder("paystream.ledger.retries")
                .description("Ledger units run again after losing a race, by SQLSTATE")
                .tag("sqlstate", sqlState)
                .register(registry);
    }

    /** Why an optimistic unit took row locks. */
    enum Escalation {
        /** It lost a race; its next attempts lock. */
        LOST_RACE("lost_race"),
        /** It names an account that lately lost one; it locks from its first attempt. */
        REMEMBERED("remembered");

        private final String tag;

        Escalation(String tag) {
            this.tag = tag;
        }
    }

    /** Counts one optimistic unit that took row locks, and why. */
    void escalated(Escalation reason) {
        Counter.builder("paystream.ledger.lock.escalations")
                .description("Optimistic ledger units that took row locks: after losing a race, or on an account that lately lost one")
                .tag("reason", reason.tag)
                .register(registry)
                .increment();
    }

    // Timers -------------------------------------------------------------------------------------

    /**
     * Times one attempt's transaction, from its subscription (BEGIN) to its answer (after COMMIT) or
     * its failure (after rollback); cancelled if it was abandoned before either.
     */
    <T> Mono<T> transaction(Mono<T> attempt) {
        return timed(attempt, ending -> transactionTimer(ending.outcome));
    }

    /** Times one locking SELECT: mostly the wait for the rows' current holders to commit. */
    <T> Mono<T> lockWait(String what, Mono<T> lockingSelect) {
        Timer timer = lockWaitTimer(what);
        return timed(lockingSelect, ending -> timer);
    }

    private Timer transactionTimer(String outcome) {
        return histogram(Timer.builder("paystream.ledger.transaction")
                .description("One attempt of a ledger unit: its whole transaction, by how it ended")
                .tag("outcome", outcome));
    }

    private Timer lockWaitTimer(String what) {
        return histogram(Timer.builder("paystream.ledger.lock.wait")
                .description("The locking SELECT ... FOR NO KEY UPDATE of a ledger unit, waiting included")
                .tag("lock", what));
    }

    private Timer histogram(Timer.Builder timer) {
        return timer.publishPercentileHistogram()
                .minimumExpectedValue(MIN_EXPECTED)
                .maximumExpectedValue(MAX_EXPECTED)
                .register(registry);
    }

    /** How timed work ended, as a transaction's outcome tag. */
    private enum Ending {
        ANSWERED("committed"), FAILED("rolled_back"), CANCELLED(LedgerMetrics.CANCELLED);

        final String outcome;

        Ending(String outcome) {
            this.outcome = outcome;
        }
    }

    /**
     * Records once, on the timer for how the work ended: the first of answer, failure or cancel
     * decides (a cancel after the answer changes nothing), and before the end reaches the subscriber
     * (not after, as doFinally would), so whoever saw it end also sees it counted.
     */
    private static <T> Mono<T> timed(Mono<T> work, Function<Ending, Timer> timer) {
        return Mono.defer(() -> {
            long startNanos = System.nanoTime();
            AtomicBoolean recorded = new AtomicBoolean();
            Consumer<Ending> stop = ending -> {
                if (recorded.compareAndSet(false, true)) {
                    timer.apply(ending).record(System.nanoTime() - startNanos, TimeUnit.NANOSECONDS);
                }
            };
            return work.doOnSuccess(result -> stop.accept(Ending.ANSWERED))
                    .doOnError(failure -> stop.accept(Ending.FAILED))
                    .doOnCancel(() -> stop.accept(Ending.CANCELLED));
        });
    }
}
