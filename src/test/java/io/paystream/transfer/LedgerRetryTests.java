package io.paystream.transfer;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;

import io.paystream.system.ApiException;
import io.paystream.system.Problem;
import io.r2dbc.spi.R2dbcBadGrammarException;
import io.r2dbc.spi.R2dbcDataIntegrityViolationException;
import io.r2dbc.spi.R2dbcRollbackException;
import io.r2dbc.spi.R2dbcTransientResourceException;
import org.junit.jupiter.api.Test;
import org.springframework.dao.DataIntegrityViolationException;
import org.springframework.dao.PessimisticLockingFailureException;
import reactor.core.publisher.Mono;
import reactor.test.StepVerifier;

import static org.assertj.core.api.Assertions.assertThat;

class LedgerRetryTests {

    private static final LedgerProperties.Retry RETRY =
            new LedgerProperties.Retry(3, Duration.ofMillis(10), Duration.ofMillis(100));

    /** Retries counted nowhere: LedgerMetricsTests checks the counting. */
    private static final java.util.function.Consumer<String> NOT_COUNTED = sqlState -> {
    };

    @Test
    void serializationFailureAndDeadlockAreRacesWhereverTheyAreWrapped() {
        var serialization = new R2dbcRollbackException("could not serialize access", "40001");
        var deadlock = new R2dbcRollbackException("deadlock detected", "40P01");
        assertThat(LedgerRetry.isLostRace(serialization)).isTrue();
        assertThat(LedgerRetry.isLostRace(deadlock)).isTrue();
        // As Spring's translation and the transaction manager wrap them:
        assertThat(LedgerRetry.isLostRace(new PessimisticLockingFailureException("x", serialization))).isTrue();
        assertThat(LedgerRetry.isLostRace(new IllegalStateException("commit failed",
                new PessimisticLockingFailureException("x", deadlock)))).isTrue();
    }

    @Test
    void classificationIsBySqlStateNotByExceptionClass() {
        // A rollback exception that is not a race, and a race carried by an unusual class.
        assertThat(LedgerRetry.isLostRace(new R2dbcRollbackException("read only", "25006"))).isFalse();
        assertThat(LedgerRetry.isLostRace(new R2dbcBadGrammarException("odd wrapper", "40001"))).isTrue();
        assertThat(LedgerRetry.isLostRace(new R2dbcTransientResourceException("connection lost", "08006"))).isFalse();
        assertThat(LedgerRetry.isLostRace(new IllegalArgumentException("no SQLSTATE at all"))).isFalse();
    }

    @Test
    void uniqueViolationIsARaceOnlyOnTheChainVersion() {
        var otherUnique = new DataIntegrityViolationException("x",
                new R2dbcDataIntegrityViolationException("duplicate key", "23505"));
        assertThat(LedgerRetry.isLostRace(otherUnique)).isFalse();
        assertThat(LedgerRetry.sqlState(otherUnique)).contains("23505");
    }

    @Test
    void retriesTheWholeUnitWithBackoffThenSucceeds() {
        AtomicInteger attempts = new AtomicInteger();
        StepVerifier.withVirtualTime(() -> Mono.defer(() -> attempts.incrementAndGet() < 3
                        ? Mono.<String>error(new R2dbcRollbackException("conflict", "40001"))
                        : Mono.just("posted"))
                        .retryWhen(LedgerRetry.spec(RETRY, NOT_COUNTED)))
                .expectSubscription()
                // Two backoffs of at least 10 ms * 2^n * (1 - jitter) are pending: nothing yet.
                .expectNoEvent(Duration.ofMillis(4))
                .thenAwait(Duration.ofSeconds(1))
                .expectNext("posted")
                .expectComplete()
                .verify(Duration.ofSeconds(5));
        assertThat(attempts).hasValue(3);
    }

    @Test
    void exhaustedRetriesBecomeA503ProblemAfterExactlyTheBound() {
        AtomicInteger attempts = new AtomicInteger();
        StepVerifier.withVirtualTime(() -> Mono.defer(() -> {
                    attempts.incrementAndGet();
                    return Mono.<String>error(new R2dbcRollbackException("deadlock", "40P01"));
                }).retryWhen(LedgerRetry.spec(RETRY, NOT_COUNTED)))
                .thenAwait(Duration.ofSeconds(10))
                .expectErrorSatisfies(error -> {
                    assertThat(error).isInstanceOf(ApiException.class);
                    assertThat(((ApiException) error).problem()).isEqualTo(Problem.RETRIES_EXHAUSTED);
                    assertThat(((ApiException) error).problem().status().value()).isEqualTo(503);
                })
                .verify(Duration.ofSeconds(5));
        assertThat(attempts).hasValue(1 + RETRY.maxRetries());
    }

    @Test
    void aRefusalIsNeverRetried() {
        AtomicInteger attempts = new AtomicInteger();
        StepVerifier.withVirtualTime(() -> Mono.defer(() -> {
                    attempts.incrementAndGet();
                    return Mono.<String>error(new ApiException(Problem.INSUFFICIENT_FUNDS, "no"));
                }).retryWhen(LedgerRetry.spec(RETRY, NOT_COUNTED)))
                .expectError(ApiException.class)
                .verify(Duration.ofSeconds(5));
        assertThat(attempts).hasValue(1);
    }

    @Test
    void backoffNeverExceedsItsBound() {
        AtomicInteger attempts = new AtomicInteger();
        var longRetry = new LedgerProperties.Retry(20, Duration.ofMillis(10), Duration.ofMillis(100));
        // 20 retries, each pause at most 100 ms * (1 + jitter 0.5): all done within 3 s of virtual time.
        StepVerifier.withVirtualTime(() -> Mono.defer(() -> {
                    attempts.incrementAndGet();
                    return Mono.<String>error(new R2dbcRollbackException("conflict", "40001"));
                }).retryWhen(LedgerRetry.spec(longRetry, NOT_COUNTED)))
                .thenAwait(Duration.ofSeconds(3))
                .expectError(ApiException.class)
                .verify(Duration.ofSeconds(5));
        assertThat(attempts).hasValue(21);
    }
}
