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

    public ApiException(Problem problem, String detail) {
        this(problem, detail, List.of());
    }

    public ApiException(Problem problem, String detail, List<FieldError> errors) {
        super(detail, null, false, false); // a refusal is not a bug: no stack trace to fill
        this.problem = problem;
        this.errors = List.copyOf(errors);
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
}
