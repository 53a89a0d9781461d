package io.paystream.account;

import java.time.Instant;
import java.util.UUID;

/** An account's balance at its latest version, or at the version current at some instant. */
record Balance(UUID accountId, String currency, long balance, long version, Instant updatedAt) {
}
