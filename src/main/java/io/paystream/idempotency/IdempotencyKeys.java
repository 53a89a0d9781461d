package io.paystream.idempotency;

import java.security.MessageDigest;

import io.paystream.security.Caller;
import io.paystream.system.ApiException;
import io.paystream.system.Problem;
import io.r2dbc.spi.Readable;
import org.springframework.http.server.reactive.ServerHttpRequest;
import org.springframework.r2dbc.core.DatabaseClient;
import org.springframework.stereotype.Repository;
import reactor.core.publisher.Mono;
import tools.jackson.databind.SerializationFeature;
import tools.jackson.databind.json.JsonMapper;

/**
 * Claims and records idempotency keys. Both calls run inside the caller's money movement
 * transaction: the key and the movement commit together or not at all.
 *
 * <p>A claim takes a transaction-scoped advisory lock on the key. A second request with the same key
 * while the first is in flight fails to take it and gets 409 at once, without waiting and without a
 * second execution. The lock ends with the transaction, by which time the stored response (if any)
 * is committed. The primary key is the backstop: should a claim's lookup miss a response committed
 * in the instant before its lock was taken, recording the key again fails on that key (23505) and
 * the whole movement is retried, which then finds and replays it.
 */
@Repository
public class IdempotencyKeys {

    /** The primary key a racing duplicate trips over; a unit that hits it is retried and replays. */
    public static final String PRIMARY_KEY = "idempotency_keys_pkey";

    private static final String CLAIM = """
            SELECT pg_try_advisory_xact_lock(:lockId) AS claimed,
                   k.fingerprint, k.status_code, k.location, k.response_body
              FROM (SELECT 1) AS one
              LEFT JOIN idempotency_keys k ON k.scope = :scope AND k.key = :key""";

    private static final String RECORD = """
            INSERT INTO idempotency_keys (scope, key, fingerprint, status_code, location, response_body)
            VALUES (:scope, :key, :fingerprint, :status, :location, :body)""";

    private final DatabaseClient db;
    private final JsonMapper canonicalJson;

    IdempotencyKeys(DatabaseClient db, JsonMapper json) {
        this.db = db;
        // The fingerprint's body is the parsed request re-serialized with sorted map keys: two
        // requests that differ only in whitespace or key order are the same request.
        this.canonicalJson = json.rebuild().enable(SerializationFeature.ORDER_MAP_ENTRIES_BY_KEYS).build();
    }

    /**
     * The key a request names, fingerprinted by method, path and its parsed body (null: none), in the
     * caller's scope: two clients using the same key never see each other's responses.
     */
    public IdempotencyKey keyOf(String header, ServerHttpRequest request, Object parsedBody, Caller caller) {
        byte[] body = parsedBody == null ? new byte[0] : canonicalJson.writeValueAsBytes(parsedBody);
        return IdempotencyKey.of(caller.clientId().toString(), header, request.getMethod().name(),
                request.getPath().value(), body);
    }

    /** What to do with a request: run it (empty), or answer with what it got the first time. */
    public Mono<StoredResponse> claim(IdempotencyKey key) {
        return bindClaim(db.sql(CLAIM), key)
                .map(Claim::of)
                .one()
                .flatMap(claim -> claim.resolve(key));
    }

    /**
     * The claim as a subquery, for a caller that claims and locks in one statement: one row with
     * {@code claimed, fingerprint, status_code, location, response_body}, binding {@code :lockId},
     * {@code :scope} and {@code :key} as {@link #bindClaim} does.
     */
    public static final String CLAIM_SUBQUERY = "(" + CLAIM + ")";

    public static DatabaseClient.GenericExecuteSpec bindClaim(DatabaseClient.GenericExecuteSpec statement, IdempotencyKey key) {
        return statement.bind("lockId", key.advisoryLockId()).bind("scope", key.scope()).bind("key", key.key());
    }

    /** A claim as read from the claim's columns, in {@link #CLAIM} or a caller's own statement. */
    public record Claim(boolean claimed, byte[] fingerprint, Integer status, String location, byte[] body) {

        public static Claim of(Readable row) {
            return new Claim(Boolean.TRUE.equals(row.get("claimed", Boolean.class)), row.get("fingerprint", byte[].class),
                    row.get("status_code", Integer.class), row.get("location", String.class),
                    row.get("response_body", byte[].class));
        }

        /** Ours, and never answered: the request runs. */
        public boolean runs() {
            return claimed && fingerprint == null;
        }

        /**
         * What the claim means: run the request (empty), answer with what it got the first time, or
         * refuse (409 in flight elsewhere, 422 key reused).
         */
        public Mono<StoredResponse> resolve(IdempotencyKey key) {
            return Mono.fromCallable(() -> resolveNow(key));
        }

        /** {@link #resolve}, answered at once: null (run it), the stored response, or the refusal thrown. */
        public StoredResponse resolveNow(IdempotencyKey key) {
            if (!claimed) {
                throw new ApiException(Problem.IDEMPOTENCY_REQUEST_IN_PROGRESS,
                        "A request with this Idempotency-Key is still in progress; retry shortly");
            }
            if (fingerprint == null) {
                return null;
            }
            if (!MessageDigest.isEqual(fingerprint, key.fingerprint())) {
                throw new ApiException(Problem.IDEMPOTENCY_KEY_REUSED,
                        "This Idempotency-Key was already used for a different request");
            }
            return new StoredResponse(status, location, body, true);
        }
    }

    public Mono<Void> record(IdempotencyKey key, StoredResponse response) {
        DatabaseClient.GenericExecuteSpec insert = db.sql(RECORD)
                .bind("scope", key.scope())
                .bind("key", key.key())
                .bind("fingerprint", key.fingerprint())
                .bind("status", response.status())
                .bind("body", response.body());
        insert = response.location() == null ? insert.bindNull("location", String.class)
                : insert.bind("location", response.location());
        return insert.then();
    }
}
