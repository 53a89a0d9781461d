package io.paystream.account;

import java.time.Instant;
import java.util.UUID;

/**
 * One link of an account's balance chain: {@code balance} = previous balance + {@code delta}, and
 * {@code held} = previous held + {@code heldDelta}. {@code transactionId} names the movement that
 * moved money; {@code holdId} the hold whose reservation changed (a capture has both).
 */
record Entry(long version, UUID transactionId, UUID holdId, long delta, long balance, long heldDelta, long held,
        Instant createdAt) {
}
