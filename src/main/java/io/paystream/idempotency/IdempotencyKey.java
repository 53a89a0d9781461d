package io.paystream.idempotency;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

import io.paystream.system.ApiException;
import io.paystream.system.Problem;

/**
 * A client's Idempotency-Key, scoped to the caller, with the fingerprint of the request it names:
 * SHA-256 over the method, the path and the canonical body (the parsed request serialized with
 * sorted keys, so whitespace and key order do not make two equal requests differ).
 *
 * @param scope who sent it (the client's id): keys of different callers never meet
 * @param key the header's value: 1 to 255 printable ASCII characters
 * @param fingerprint 32 bytes of SHA-256
 */
public record IdempotencyKey(String scope, String key, byte[] fingerprint) {

    public static final String HEADER = "Idempotency-Key";
    public static final int MAX_KEY_CHARS = 255;

    public static IdempotencyKey of(String scope, String header, String method, String path, byte[] canonicalBody) {
        if (header == null) {
            throw new ApiException(Problem.IDEMPOTENCY_KEY_REQUIRED,
                    "Send an Idempotency-Key header (1 to 255 printable ASCII characters) with every request that moves money");
        }
        if (header.isEmpty() || header.length() > MAX_KEY_CHARS || !header.chars().allMatch(c -> c >= 0x20 && c <= 0x7E)) {
            throw ApiException.invalidField(HEADER, "must be 1 to 255 printable ASCII characters");
        }
        MessageDigest sha256 = sha256();
        sha256.update((method + ' ' + path + '\n').getBytes(StandardCharsets.UTF_8));
        sha256.update(canonicalBody);
        return new IdempotencyKey(scope, header, sha256.digest());
    }

    /** The 64-bit advisory lock that marks this key as in flight for the length of a transaction. */
    public long advisoryLockId() {
        MessageDigest sha256 = sha256();
        sha256.update(scope.getBytes(StandardCharsets.UTF_8));
        sha256.update((byte) 0);
        sha256.update(key.getBytes(StandardCharsets.US_ASCII));
        return ByteBuffer.wrap(sha256.digest()).getLong();
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java platform has SHA-256", e);
        }
    }
}
