package io.paystream.account;

import java.time.Instant;
import java.util.UUID;

/**
 * An account's balance at its latest version, or at the version current at some instant.
 * {@code available = balance - held}.
 */
record Balance(UUID accountId, String currency, long balance, long held, long available, long version,
        Instant updatedAt) {
}
