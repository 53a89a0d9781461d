package io.paystream.account;

import java.time.Instant;
import java.util.UUID;

/** One link of an account's balance chain: {@code balance} = previous balance + {@code delta}. */
record Entry(long version, UUID transactionId, long delta, long balance, Instant createdAt) {
}
