package io.paystream.transfer;

import java.util.Map;

import io.paystream.system.Iso4217;
import io.paystream.system.Metadata;
import io.paystream.system.PlainText;
import jakarta.validation.constraints.Max;
import jakarta.validation.constraints.NotNull;
import jakarta.validation.constraints.Positive;
import jakarta.validation.constraints.Size;

/** {@code POST /v1/accounts/{id}/deposits} and {@code .../withdrawals}: money in from, or out to, the world. */
record ExternalMovementRequest(
        @NotNull @Positive @Max(Ledger.MAX_AMOUNT_MINOR) Long amount,
        @NotNull @Iso4217 String currency,
        @Size(max = 500) @PlainText String description,
        @Metadata Map<String, String> metadata) {
}
