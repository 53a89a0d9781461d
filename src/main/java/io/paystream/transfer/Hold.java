package io.paystream.transfer;

import java.time.Instant;
import java.util.Map;
import java.util.UUID;

/**
 * A two-phase transfer. {@code pending} while its amount is held on the source account; then exactly
 * one of {@code posted} (captured: {@code capturedAmount} moved by {@code transactionId}, the rest
 * released), {@code voided} or {@code expired} (all released).
 */
record Hold(UUID id, String status, UUID fromAccountId, UUID toAccountId, long amount, String currency,
        String description, Map<String, String> metadata, Instant expiresAt, Long capturedAmount, UUID transactionId,
        Instant createdAt, Instant updatedAt) {

    static final String PENDING = "pending";
    static final String POSTED = "posted";
    static final String VOIDED = "voided";
    static final String EXPIRED = "expired";
}
