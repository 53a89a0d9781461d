package io.paystream.transfer;

import jakarta.validation.constraints.Max;
import jakarta.validation.constraints.Positive;

/** {@code POST /v1/transfers/{id}/reversals}: reverse part of a transfer, or (no amount) all that is left. */
record ReversalRequest(@Positive @Max(Ledger.MAX_AMOUNT_MINOR) Long amount) {
}
