package io.paystream.transfer;

import java.time.Instant;
import java.util.Map;
import java.util.UUID;

import io.paystream.system.Iso4217;
import io.paystream.system.Metadata;
import io.paystream.system.PlainText;
import jakarta.validation.constraints.Max;
import jakarta.validation.constraints.NotNull;
import jakarta.validation.constraints.Positive;
import jakarta.validation.constraints.Size;

/** {@code POST /v1/holds}: reserve funds now, capture or void them later. */
record HoldRequest(
        @NotNull UUID fromAccountId,
        @NotNull UUID toAccountId,
        @NotNull @Positive @Max(Ledger.MAX_AMOUNT_MINOR) Long amount,
        @NotNull @Iso4217 String currency,
        Instant expiresAt,
        @Size(max = 500) @PlainText String description,
        @Metadata Map<String, String> metadata) {
}
