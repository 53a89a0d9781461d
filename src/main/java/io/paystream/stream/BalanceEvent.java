package io.paystream.stream;

import java.time.Instant;
import java.util.UUID;

/**
 * One version of an account's balance, as a stream sends it. The SSE {@code id} is {@code version},
 * so a client that reconnects with {@code Last-Event-ID} resumes right after it.
 */
record BalanceEvent(UUID accountId, long balance, long held, long available, long version, UUID transactionId,
        UUID holdId, Instant createdAt) {
}
