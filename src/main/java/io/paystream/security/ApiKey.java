package io.paystream.security;

import java.time.Instant;
import java.util.UUID;

/**
 * An API key as listed: never the key itself, only its first characters. {@code key} is set once, in
 * the response that creates it, and is stored nowhere.
 */
record ApiKey(UUID id, UUID clientId, String name, String role, String keyPrefix, Instant createdAt,
        Instant revokedAt, String key) {
}
