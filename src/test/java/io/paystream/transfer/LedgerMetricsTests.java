package io.paystream.transfer;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.paystream.idempotency.StoredResponse;
import io.paystream.system.ApiException;
import io.paystream.system.Problem;
import io.r2dbc.spi.R2dbcRollbackException;
import io.r2dbc.spi.R2dbcTransientResourceException;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Mono;
import reactor.test.StepVerifier;
import tools.jackson.databind.json.JsonMapper;

import static org.assertj.core.api.Assertions.assertThat;

class LedgerMetricsTests {

    private final SimpleMeterRegistry registry = new SimpleMeterRegistry();
    private final LedgerMetrics metrics = new LedgerMetrics(registry, JsonMapper.builder().build());

    @Test
    void retriesAreCountedBySqlState() {
        AtomicInteger attempts = new AtomicInteger();
        var retry = new LedgerProperties.Retry(5, Duration.ofMillis(1), Duration.ofMillis(2));
        StepVerifier.create(Mono.defer(() -> switch (attempts.incrementAndGet()) {
                    case 1, 2 -> Mono.<String>error(new R2dbcRollbackException("conflict", "40001"));
                    case 3 -> Mono.<String>error(new R2dbcRollbackException("deadlock", "40P01"));
                    default -> Mono.just("posted");
                }).retryWhen(LedgerRetry.spec(retry, metrics::retried)))
                .expectNext("posted").verifyComplete();
        assertThat(retries("40001")).isEqualTo(2);
        assertThat(retries("40P01")).isEqualTo(1);
        assertThat(retries("23505")).isZero();
    }

    @Test
    void eachMovementIsCountedOnceWithItsOutcomeAndCode() {
        StoredResponse applied = StoredResponse.of(201, "/v1/transfers/x", "{}".getBytes(StandardCharsets.UTF_8));
        StoredResponse refused = StoredResponse.of(422, null,
                "{\"code\":\"insufficient_funds\"}".getBytes(StandardCharsets.UTF_8));
        StoredResponse forged = StoredResponse.of(404, null, "{\"code\":\"made_up\"}".getBytes(StandardCharsets.UTF_8));
        StoredResponse replayed = new StoredResponse(201, null, "{}".getBytes(StandardCharsets.UTF_8), true);

        // An answer followed by a cancel (as a Mono's subscriber may send) counts once.
        StepVerifier.create(metrics.movement(LedgerMetrics.Movement.TRANSFER, Mono.just(applied)))
                .expectNext(applied).thenCancel().verify();
        metrics.movement(LedgerMetrics.Movement.TRANSFER, Mono.just(refused)).block();
        metrics.movement(LedgerMetrics.Movement.CAPTURE, Mono.just(forged)).block();
        metrics.movement(LedgerMetrics.Movement.TRANSFER, Mono.just(replayed)).block();
        StepVerifier.create(metrics.movement(LedgerMetrics.Movement.HOLD,
                Mono.error(new ApiException(Problem.IDEMPOTENCY_KEY_REUSED, "reused")))).verifyError();
        StepVerifier.create(metrics.movement(LedgerMetrics.Movement.BATCH,
                Mono.error(new R2dbcTransientResourceException("connection lost", "08006")))).verifyError();
        StepVerifier.create(metrics.movement(LedgerMetrics.Movement.VOID, Mono.never()))
                .thenCancel().verify();

        assertThat(movements("transfer", "applied", "none")).isEqualTo(1);
        assertThat(movements("transfer", "refused", "insufficient_funds")).isEqualTo(1);
        assertThat(movements("capture", "refused", "internal_error")).as("only known codes become tags").isEqualTo(1);
        assertThat(movements("transfer", "replayed", "none")).isEqualTo(1);
        assertThat(movements("hold", "refused", "idempotency_key_reused")).isEqualTo(1);
        assertThat(movements("batch", "failed", "database_unavailable")).isEqualTo(1);
        assertThat(movements("void", "failed", "cancelled")).isEqualTo(1);
        assertThat(registry.get("paystream.movements").counters().stream().mapToDouble(c -> c.count()).sum())
                .isEqualTo(7);
    }

    @Test
    void transactionsAreTimedByHowTheyEnded() {
        metrics.transaction(Mono.just(1)).block();
        metrics.transaction(Mono.empty()).block();
        StepVerifier.create(metrics.transaction(Mono.error(new IllegalStateException("rolled back")))).verifyError();
        StepVerifier.create(metrics.transaction(Mono.never())).thenCancel().verify();
        // A cancel after the answer (takeUntil, next) does not make a committed transaction "cancelled".
        StepVerifier.create(metrics.transaction(Mono.just(2))).expectNext(2).thenCancel().verify();
        assertThat(transactions("committed")).isEqualTo(3);
        assertThat(transactions("rolled_back")).isEqualTo(1);
        assertThat(transactions("cancelled")).isEqualTo(1);
    }

    @Test
    void lockWaitsAreTimedEvenWhenTheLockIsNeverGranted() {
        metrics.lockWait("accounts", Mono.delay(Duration.ofMillis(20))).block();
        StepVerifier.create(metrics.lockWait("hold", Mono.never())).thenCancel().verify();
        assertThat(registry.get("paystream.ledger.lock.wait").tag("lock", "accounts").timer().count()).isEqualTo(1);
        assertThat(registry.get("paystream.ledger.lock.wait").tag("lock", "accounts").timer()
                .totalTime(java.util.concurrent.TimeUnit.MILLISECONDS)).isGreaterThanOrEqualTo(20);
        assertThat(registry.get("paystream.ledger.lock.wait").tag("lock", "hold").timer().count()).isEqualTo(1);
    }

    private double retries(String sqlState) {
        return registry.get("paystream.ledger.retries").tag("sqlstate", sqlState).counter().count();
    }

    private double movements(String type, String outcome, String code) {
        return registry.get("paystream.movements").tag("type", type).tag("outcome", outcome).tag("code", code)
                .counter().count();
    }

    private long transactions(String outcome) {
        return registry.get("paystream.ledger.transaction").tag("outcome", outcome).timer().count();
    }
}
