package io.paystream.transfer;

import jakarta.validation.constraints.Max;
import jakarta.validation.constraints.Positive;

/** {@code POST /v1/holds/{id}/capture}: post all of the hold, or (with an amount) part of it. */
record CaptureRequest(@Positive @Max(Ledger.MAX_AMOUNT_MINOR) Long amount) {
}
