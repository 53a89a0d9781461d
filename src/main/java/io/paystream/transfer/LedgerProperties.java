package io.paystream.transfer;

import java.time.Duration;

import jakarta.validation.Valid;
import jakarta.validation.constraints.Max;
import jakarta.validation.constraints.Min;
import jakarta.validation.constraints.NotNull;
import jakarta.validation.constraints.PositiveOrZero;
import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.boot.context.properties.bind.DefaultValue;
import org.springframework.validation.annotation.Validated;

/**
 * How the ledger moves money. Every bound is explicit, and each says why.
 *
 * @param concurrencyMode how concurrent movements on one account are kept apart
 * @param retry how a movement that lost a race (40001, 40P01, a taken chain version) is retried
 * @param attemptTimeout the longest one attempt (one database transaction) may take, lock waits
 *        included; past it the attempt is cancelled and rolled back
 * @param dailyDepositLimitMinor per account and UTC day, in the account's minor units; 0 = no limit
 */
@Validated
@ConfigurationProperties("paystream.ledger")
record LedgerProperties(
        @NotNull @DefaultValue("pessimistic") ConcurrencyMode concurrencyMode,
        @Valid @NotNull @DefaultValue Retry retry,
        @NotNull @DefaultValue("5s") Duration attemptTimeout,
        @PositiveOrZero @DefaultValue("0") long dailyDepositLimitMinor) {

    /**
     * @param maxRetries retries after the first attempt. Pessimistic movements rarely need one (lock
     *        ordering rules out deadlocks); optimistic ones on a hot account may need many, since each
     *        round lets one of the contenders win
     * @param firstBackoff the first pause; later ones grow exponentially, with jitter so contenders
     *        spread out instead of colliding again
     * @param maxBackoff the longest pause between two attempts
     */
    record Retry(
            @Min(0) @Max(1000) @DefaultValue("64") int maxRetries,
            @NotNull @DefaultValue("2ms") Duration firstBackoff,
            @NotNull @DefaultValue("100ms") Duration maxBackoff) {
    }

    Long dailyDepositLimitOrNull() {
        return dailyDepositLimitMinor == 0 ? null : dailyDepositLimitMinor;
    }
}
