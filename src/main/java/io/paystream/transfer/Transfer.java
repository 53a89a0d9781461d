package io.paystream.transfer;

import java.time.Instant;
import java.util.Map;
import java.util.UUID;

/**
 * A posted money movement, as the API shows it. For a deposit {@code fromAccountId} is the
 * currency's system account (the outside world); for a withdrawal {@code toAccountId} is.
 * {@code reversalOf} links a reversal to the transfer it reverses; {@code holdId} links a capture to
 * its hold.
 */
record Transfer(UUID id, String type, String status, UUID fromAccountId, UUID toAccountId, long amount,
        String currency, String description, Map<String, String> metadata, UUID reversalOf, UUID holdId,
        Instant createdAt) {

    static final String POSTED = "posted";
}
