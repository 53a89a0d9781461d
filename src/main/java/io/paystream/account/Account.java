package io.paystream.account;

import java.time.Instant;
import java.util.Map;
import java.util.UUID;

/**
 * An account as the API shows it, with its current balance. {@code held} is reserved by pending holds;
 * {@code available = balance - held} is what debits may use. {@code version} counts the account's
 * balance entries (0 before its first movement); {@code updatedAt} is when the latest one was written.
 */
record Account(UUID id, String currency, String name, String kind, Map<String, String> metadata,
        Instant createdAt, long balance, long held, long available, long version, Instant updatedAt) {
}
