package io.paystream.security;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.SecureRandom;
import java.time.Duration;
import java.time.Instant;
import java.util.Base64;
import java.util.HexFormat;
import java.util.Optional;
import java.util.UUID;

import com.github.benmanes.caffeine.cache.AsyncLoadingCache;
import com.github.benmanes.caffeine.cache.Caffeine;
import io.paystream.system.ApiException;
import io.paystream.system.Problem;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.r2dbc.core.DatabaseClient;
import org.springframework.stereotype.Service;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * API keys in the style of secret payment keys: {@value #PREFIX} and 43 characters of base64url over
 * 256 random bits, shown once at creation and stored only as SHA-256. Revocable.
 *
 * <p>Lookups go through a short-lived cache, so a busy client costs no database round trip per
 * request. Its time to live is also how long a revoked key can still be used on another replica
 * (the replica that revokes forgets the key at once): {@code paystream.security.key-cache-ttl}.
 */
@Service
public class ApiKeys {

    private static final Logger log = LoggerFactory.getLogger(ApiKeys.class);

    public static final String PREFIX = "psk_";
    /** Longer bearer tokens are not looked up at all: no key is that long. */
    static final int MAX_TOKEN_CHARS = 200;
    private static final int PREFIX_SHOWN_CHARS = 12;
    /** Keys remembered per replica; beyond it the least used are looked up again. */
    private static final long CACHE_MAX_KEYS = 100_000;

    private static final String FIND = """
            SELECT client_id, name, role FROM api_keys WHERE key_hash = :hash AND revoked_at IS NULL""";
    private static final String INSERT = """
            INSERT INTO api_keys (client_id, name, role, key_prefix, key_hash)
            VALUES (:clientId, :name, :role, :prefix, :hash)
            RETURNING id, created_at""";
    private static final String LIST = """
            SELECT id, client_id, name, role, key_prefix, created_at, revoked_at
              FROM api_keys ORDER BY created_at, id LIMIT :limit""";
    private static final String REVOKE = """
            UPDATE api_keys SET revoked_at = clock_timestamp()
             WHERE id = :id AND revoked_at IS NULL
            RETURNING key_hash""";
    private static final String CLIENT_EXISTS = "SELECT 1 AS one FROM api_keys WHERE client_id = :clientId LIMIT 1";

    private final DatabaseClient db;
    private final SecureRandom random = new SecureRandom();
    private final AsyncLoadingCache<String, Optional<Caller>> cache;
    private final byte[] bootstrapAdminHash;

    ApiKeys(DatabaseClient db, @Value("${paystream.security.key-cache-ttl}") Duration cacheTtl,
            @Value("${paystream.security.admin-api-key:}") String bootstrapAdminKey) {
        this.db = db;
        this.cache = Caffeine.newBuilder()
                .maximumSize(CACHE_MAX_KEYS)
                .expireAfterWrite(cacheTtl)
                .buildAsync((hashHex, executor) -> lookup(hashHex).toFuture());
        // The first admin key comes from the environment. Only its hash is kept, in memory.
        this.bootstrapAdminHash = bootstrapAdminKey.isBlank() ? null : sha256(bootstrapAdminKey.strip());
        if (bootstrapAdminHash == null) {
            log.warn("No admin API key configured (PAYSTREAM_ADMIN_API_KEY): only existing keys can call the API");
        }
    }

    /** The caller a bearer token names, or empty for an unknown or revoked key. */
    Mono<Caller> authenticate(String token) {
        if (!token.startsWith(PREFIX) || token.length() > MAX_TOKEN_CHARS) {
            return Mono.empty();
        }
        byte[] hash = sha256(token);
        if (bootstrapAdminHash != null && MessageDigest.isEqual(hash, bootstrapAdminHash)) {
            return Mono.just(bootstrapAdmin());
        }
        return Mono.fromFuture(() -> cache.get(HexFormat.of().formatHex(hash))).flatMap(Mono::justOrEmpty);
    }

    private Caller bootstrapAdmin() {
        return new Caller(UUID.nameUUIDFromBytes(bootstrapAdminHash), Caller.Role.ADMIN, "bootstrap admin");
    }

    private Mono<Optional<Caller>> lookup(String hashHex) {
        return db.sql(FIND).bind("hash", HexFormat.of().parseHex(hashHex))
                .map(row -> new Caller(row.get("client_id", UUID.class),
                        "admin".equals(row.get("role", String.class)) ? Caller.Role.ADMIN : Caller.Role.CLIENT,
                        row.get("name", String.class)))
                .one()
                .map(Optional::of)
                .defaultIfEmpty(Optional.empty());
    }

    Mono<ApiKey> create(CreateApiKeyRequest request) {
        byte[] secret = new byte[32];
        random.nextBytes(secret);
        String key = PREFIX + Base64.getUrlEncoder().withoutPadding().encodeToString(secret);
        String prefix = key.substring(0, PREFIX_SHOWN_CHARS);
        Mono<UUID> clientId = request.clientId() == null ? Mono.just(UUID.randomUUID())
                : db.sql(CLIENT_EXISTS).bind("clientId", request.clientId()).map(row -> request.clientId()).one()
                        .switchIfEmpty(Mono.error(() -> ApiException.invalidField("clientId", "is not a known client")));
        return clientId.flatMap(client -> db.sql(INSERT)
                .bind("clientId", client)
                .bind("name", request.name())
                .bind("role", request.role())
                .bind("prefix", prefix)
                .bind("hash", sha256(key))
                .map(row -> new ApiKey(row.get("id", UUID.class), client, request.name(), request.role(), prefix,
                        row.get("created_at", Instant.class), null, key))
                .one());
    }

    Flux<ApiKey> list(int limit) {
        return db.sql(LIST).bind("limit", limit)
                .map(row -> new ApiKey(row.get("id", UUID.class), row.get("client_id", UUID.class),
                        row.get("name", String.class), row.get("role", String.class), row.get("key_prefix", String.class),
                        row.get("created_at", Instant.class), row.get("revoked_at", Instant.class), null))
                .all();
    }

    /** Revokes the key; this replica forgets it at once, the others within the cache's time to live. */
    Mono<Void> revoke(UUID id) {
        return db.sql(REVOKE).bind("id", id).map(row -> row.get("key_hash", byte[].class)).one()
                .switchIfEmpty(Mono.error(() -> new ApiException(Problem.API_KEY_NOT_FOUND, "No active API key " + id)))
                .doOnNext(hash -> cache.synchronous().invalidate(HexFormat.of().formatHex(hash)))
                .then();
    }

    static byte[] sha256(String key) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(key.getBytes(StandardCharsets.UTF_8));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java platform has SHA-256", e);
        }
    }
}
