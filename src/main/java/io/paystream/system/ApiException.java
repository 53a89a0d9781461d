package io.paystream.system;

import java.util.List;

/**
 * A refusal with a known {@link Problem}. The detail is written for the client: it never carries
 * SQL, class names or anything the client did not send.
 */
public class ApiException extends RuntimeException {

    /** One rejected field, with the JSON path the client sent it at. */
    public record FieldError(String field, String message) {
    }

    private final Problem problem;
    private final List<FieldError> errors;
    private final Integer item;

    public ApiException(Problem problem, String detail) {
        this(problem, detail, List.of(), null);
    }

    public ApiException(Problem problem, String detail, List<FieldError> errors) {
        this(problem, detail, errors, null);
    }

    private ApiException(Problem problem, String detail, List<FieldError> errors, Integer item) {
        super(detail, null, false, false); // a refusal is not a bug: no stack trace to fill
        this.problem = problem;
        this.errors = List.copyOf(errors);
        this.item = item;
    }

    /** The same refusal, naming the item of a batch it is about (0-based). */
    public ApiException forItem(int index) {
        return new ApiException(problem, "Item " + index + ": " + getMessage(), errors, index);
    }

    public static ApiException invalidField(String field, String message) {
        return new ApiException(Problem.VALIDATION_FAILED, "The request is not valid",
                List.of(new FieldError(field, message)));
    }

    public Problem problem() {
        return problem;
    }

    public List<FieldError> errors() {
        return errors;
    }

    /** The batch item this refusal is about, or null. */
    public Integer item() {
        return item;
    }

    /**
     * A verdict about the request itself, reached inside a money movement (an account that does not
     * exist, insufficient funds, a hold no longer pending): replaying the same request must give the
     * same answer, so it is stored with the idempotency key. Failures of the moment (busy, unavailable)
     * and refusals about the key itself are not.
     */
    public boolean isStoredWithIdempotencyKey() {
        int status = problem.status().value();
        return (status == 404 || status == 409 || status == 422)
                && problem != Problem.IDEMPOTENCY_KEY_REUSED && problem != Problem.IDEMPOTENCY_REQUEST_IN_PROGRESS;
    }
}
