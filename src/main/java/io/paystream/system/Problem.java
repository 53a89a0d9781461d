package io.paystream.system;

import java.net.URI;

import org.springframework.http.HttpStatus;

/**
 * Every problem Paystream answers with. The {@code code} is the stable, machine-readable part of the
 * contract (clients switch on it); the title is for people. The type URI is derived from the code,
 * so the two can never drift apart.
 */
public enum Problem {

    VALIDATION_FAILED(HttpStatus.BAD_REQUEST, "validation_failed", "The request is not valid"),
    MALFORMED_JSON(HttpStatus.BAD_REQUEST, "malformed_json", "The request body is not valid JSON"),
    UNKNOWN_FIELD(HttpStatus.BAD_REQUEST, "unknown_field", "The request body has a field this endpoint does not accept"),
    BAD_REQUEST(HttpStatus.BAD_REQUEST, "bad_request", "The request cannot be understood"),
    IDEMPOTENCY_KEY_REQUIRED(HttpStatus.BAD_REQUEST, "idempotency_key_required",
            "This request moves money and needs an Idempotency-Key header"),
    UNAUTHORIZED(HttpStatus.UNAUTHORIZED, "unauthorized", "A valid API key is required"),
    FORBIDDEN(HttpStatus.FORBIDDEN, "forbidden", "This API key may not do this"),
    NOT_FOUND(HttpStatus.NOT_FOUND, "not_found", "No such resource"),
    API_KEY_NOT_FOUND(HttpStatus.NOT_FOUND, "api_key_not_found", "API key not found"),
    ACCOUNT_NOT_FOUND(HttpStatus.NOT_FOUND, "account_not_found", "Account not found"),
    TRANSFER_NOT_FOUND(HttpStatus.NOT_FOUND, "transfer_not_found", "Transfer not found"),
    HOLD_NOT_FOUND(HttpStatus.NOT_FOUND, "hold_not_found", "Hold not found"),
    METHOD_NOT_ALLOWED(HttpStatus.METHOD_NOT_ALLOWED, "method_not_allowed", "Method not allowed"),
    NOT_ACCEPTABLE(HttpStatus.NOT_ACCEPTABLE, "not_acceptable", "No acceptable representation"),
    IDEMPOTENCY_REQUEST_IN_PROGRESS(HttpStatus.CONFLICT, "idempotency_request_in_progress",
            "A request with this Idempotency-Key is still being processed"),
    HOLD_NOT_PENDING(HttpStatus.CONFLICT, "hold_not_pending", "The hold is no longer pending"),
    PAYLOAD_TOO_LARGE(HttpStatus.CONTENT_TOO_LARGE, "payload_too_large", "The request body is too large"),
    RATE_LIMITED(HttpStatus.TOO_MANY_REQUESTS, "rate_limited", "Too many requests"),
    TOO_MANY_STREAMS(HttpStatus.TOO_MANY_REQUESTS, "too_many_streams", "Too many open streams"),
    REQUEST_TIMEOUT(HttpStatus.SERVICE_UNAVAILABLE, "request_timeout", "The request took too long; retry later"),
    UNSUPPORTED_MEDIA_TYPE(HttpStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "Unsupported media type"),
    INSUFFICIENT_FUNDS(HttpStatus.UNPROCESSABLE_CONTENT, "insufficient_funds", "Insufficient funds"),
    CURRENCY_MISMATCH(HttpStatus.UNPROCESSABLE_CONTENT, "currency_mismatch", "Currency mismatch"),
    SAME_ACCOUNT(HttpStatus.UNPROCESSABLE_CONTENT, "same_account", "Source and destination are the same account"),
    SYSTEM_ACCOUNT_NOT_ALLOWED(HttpStatus.UNPROCESSABLE_CONTENT, "system_account_not_allowed",
            "System accounts move money only through deposits and withdrawals"),
    BALANCE_LIMIT_EXCEEDED(HttpStatus.UNPROCESSABLE_CONTENT, "balance_limit_exceeded",
            "The movement would take a balance beyond the ledger's bounds"),
    DEPOSIT_LIMIT_EXCEEDED(HttpStatus.UNPROCESSABLE_CONTENT, "deposit_limit_exceeded", "Daily deposit limit exceeded"),
    IDEMPOTENCY_KEY_REUSED(HttpStatus.UNPROCESSABLE_CONTENT, "idempotency_key_reused",
            "This Idempotency-Key was used for a different request"),
    CAPTURE_EXCEEDS_HOLD(HttpStatus.UNPROCESSABLE_CONTENT, "capture_exceeds_hold",
            "A capture cannot exceed the amount held"),
    NOT_REVERSIBLE(HttpStatus.UNPROCESSABLE_CONTENT, "not_reversible", "Only transfers can be reversed"),
    REVERSAL_EXCEEDS_ORIGINAL(HttpStatus.UNPROCESSABLE_CONTENT, "reversal_exceeds_original",
            "Reversals cannot exceed the original transfer"),
    RETRIES_EXHAUSTED(HttpStatus.SERVICE_UNAVAILABLE, "retries_exhausted",
            "The ledger is too busy to apply this movement right now; nothing was applied"),
    DATABASE_UNAVAILABLE(HttpStatus.SERVICE_UNAVAILABLE, "database_unavailable", "The ledger is unavailable"),
    INTERNAL_ERROR(HttpStatus.INTERNAL_SERVER_ERROR, "internal_error", "Internal error");

    private static final String TYPE_BASE = "https://paystream.io/problems/";

    private final HttpStatus status;
    private final String code;
    private final String title;

    Problem(HttpStatus status, String code, String title) {
        this.status = status;
        this.code = code;
        this.title = title;
    }

    public HttpStatus status() {
        return status;
    }

    public String code() {
        return code;
    }

    public String title() {
        return title;
    }

    public URI type() {
        return URI.create(TYPE_BASE + code.replace('_', '-'));
    }
}
