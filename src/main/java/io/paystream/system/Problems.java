package io.paystream.system;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeoutException;

import io.r2dbc.spi.R2dbcNonTransientResourceException;
import io.r2dbc.spi.R2dbcTimeoutException;
import io.r2dbc.spi.R2dbcTransientResourceException;
import org.springframework.core.io.buffer.DataBufferLimitException;
import org.springframework.dao.DataAccessResourceFailureException;
import org.springframework.http.HttpStatus;
import org.springframework.http.InvalidMediaTypeException;
import org.springframework.web.bind.support.WebExchangeBindException;
import org.springframework.web.method.annotation.HandlerMethodValidationException;
import org.springframework.web.server.MethodNotAllowedException;
import org.springframework.web.server.MissingRequestValueException;
import org.springframework.web.server.NotAcceptableStatusException;
import org.springframework.web.server.ResponseStatusException;
import org.springframework.web.server.ServerErrorException;
import org.springframework.web.server.ServerWebInputException;
import org.springframework.web.server.UnsupportedMediaTypeStatusException;
import tools.jackson.core.JacksonException;
import tools.jackson.core.exc.InputCoercionException;
import tools.jackson.core.exc.StreamReadException;
import tools.jackson.databind.exc.MismatchedInputException;
import tools.jackson.databind.exc.UnrecognizedPropertyException;

/**
 * Turns any failure into the {@link ApiException} the client sees. Client mistakes become 4xx with a
 * detail written here, never the exception's own message (which can carry SQL, class names or parts
 * of the request). Only a failure nobody anticipated becomes a 500, with a generic body.
 */
public final class Problems {

    private Problems() {
    }

    static ApiException classify(Throwable failure) {
        if (failure instanceof ApiException api) {
            return api;
        }
        if (causedBy(failure, DataBufferLimitException.class)) {
            return new ApiException(Problem.PAYLOAD_TOO_LARGE, "The request body exceeds the size limit");
        }
        if (failure instanceof WebExchangeBindException bind) {
            List<ApiException.FieldError> errors = new ArrayList<>();
            bind.getFieldErrors().forEach(e -> errors.add(new ApiException.FieldError(e.getField(), e.getDefaultMessage())));
            bind.getGlobalErrors().forEach(e -> errors.add(new ApiException.FieldError(e.getObjectName(), e.getDefaultMessage())));
            return new ApiException(Problem.VALIDATION_FAILED, "The request is not valid", errors);
        }
        if (failure instanceof HandlerMethodValidationException validation) {
            List<ApiException.FieldError> errors = new ArrayList<>();
            validation.getParameterValidationResults().forEach(result -> result.getResolvableErrors().forEach(e ->
                    errors.add(new ApiException.FieldError(result.getMethodParameter().getParameterName(), e.getDefaultMessage()))));
            return new ApiException(Problem.VALIDATION_FAILED, "The request is not valid", errors);
        }
        if (failure instanceof UnsupportedMediaTypeStatusException) {
            return new ApiException(Problem.UNSUPPORTED_MEDIA_TYPE, "Send the request body as application/json");
        }
        if (failure instanceof NotAcceptableStatusException) {
            return new ApiException(Problem.NOT_ACCEPTABLE, "This endpoint answers application/json");
        }
        if (failure instanceof MethodNotAllowedException) {
            return new ApiException(Problem.METHOD_NOT_ALLOWED, "This method is not allowed on this resource");
        }
        if (failure instanceof ServerWebInputException input) {
            return classifyInput(input);
        }
        if (failure instanceof ServerErrorException serverError && serverError.getMethodParameter() != null
                && serverError.getMethodParameter().getParameterName() != null) {
            // A path variable that converts to nothing (a blank id): the client's mistake, not ours.
            return ApiException.invalidField(safe(serverError.getMethodParameter().getParameterName()), "is required");
        }
        if (causedBy(failure, InvalidMediaTypeException.class)) {
            return new ApiException(Problem.BAD_REQUEST, "A media type header (Accept or Content-Type) cannot be parsed");
        }
        if (failure instanceof ResponseStatusException status) {
            if (status.getStatusCode().value() == HttpStatus.NOT_FOUND.value()) {
                return new ApiException(Problem.NOT_FOUND, "No such resource");
            }
            if (status.getStatusCode().is4xxClientError()) {
                return new ApiException(Problem.BAD_REQUEST, "The request cannot be understood");
            }
        }
        if (isDatabaseUnavailable(failure)) {
            // Honest about the one ambiguous case (a connection lost during COMMIT): the client cannot
            // know whether it was applied, but a retry with the same Idempotency-Key is always safe.
            return new ApiException(Problem.DATABASE_UNAVAILABLE,
                    "The ledger is unavailable; retry later. A money movement retried with the same Idempotency-Key"
                            + " is applied at most once");
        }
        return new ApiException(Problem.INTERNAL_ERROR, "An unexpected error occurred");
    }

    private static ApiException classifyInput(ServerWebInputException input) {
        if (find(input, Utf8CheckingJsonDecoder.InvalidUtf8Exception.class) != null) {
            return new ApiException(Problem.MALFORMED_JSON, "The request body is not valid UTF-8");
        }
        UnrecognizedPropertyException unknown = find(input, UnrecognizedPropertyException.class);
        if (unknown != null) {
            return new ApiException(Problem.UNKNOWN_FIELD, "Unknown field '" + safe(path(unknown)) + "'",
                    List.of(new ApiException.FieldError(safe(path(unknown)), "is not a field of this request")));
        }
        JacksonException json = find(input, JacksonException.class);
        if (json != null) {
            String field = path(json);
            boolean typeError = json instanceof MismatchedInputException || json instanceof InputCoercionException
                    || find(json, InputCoercionException.class) != null;
            if (typeError && !field.isEmpty()) {
                return ApiException.invalidField(safe(field), "has the wrong type or is out of range");
            }
            if (json instanceof StreamReadException || json.getCause() instanceof StreamReadException || typeError) {
                return new ApiException(Problem.MALFORMED_JSON, describe(json));
            }
            return new ApiException(Problem.MALFORMED_JSON, "The request body is not valid JSON");
        }
        if (input instanceof MissingRequestValueException missing) {
            return ApiException.invalidField(safe(missing.getName()), "is required");
        }
        if (input.getMethodParameter() != null && input.getMethodParameter().getParameterName() != null
                && input.getCause() != null) {
            return ApiException.invalidField(safe(input.getMethodParameter().getParameterName()), "has an invalid value");
        }
        if (input.getReason() != null && input.getReason().contains("body")) {
            return new ApiException(Problem.MALFORMED_JSON, "A JSON request body is required");
        }
        return new ApiException(Problem.BAD_REQUEST, "The request cannot be understood");
    }

    /**
     * True for failures that mean "the database cannot serve us now": it cannot be reached
     * ({@link #isDatabaseUnreachable}) or a unit or wait ran past its time ({@link #isDatabaseTimeout}).
     * Where the server answered with a SQLSTATE, the SQLSTATE decides (the driver files SQLSTATEs it does
     * not know under its "resource" exception classes, so the class alone would misfile a bug as an outage).
     */
    public static boolean isDatabaseUnavailable(Throwable failure) {
        String state = sqlState(failure);
        if (state != null) {
            return isUnreachableState(state) || isTimeoutState(state);
        }
        return isUnreachableCause(failure) || isTimeoutCause(failure);
    }

    /**
     * The database cannot be reached at all: connection lost or refused, server shutting down or out
     * of resources. The SQLSTATE decides where there is one, as in {@link #isDatabaseUnavailable}.
     */
    public static boolean isDatabaseUnreachable(Throwable failure) {
        String state = sqlState(failure);
        return state != null ? isUnreachableState(state) : isUnreachableCause(failure);
    }

    /**
     * A unit, a statement, a lock wait or a connection acquisition ran past its time: a SQLSTATE that
     * says so, or a timeout anywhere along the cause chain.
     */
    public static boolean isDatabaseTimeout(Throwable failure) {
        String state = sqlState(failure);
        return state != null && isTimeoutState(state) || isTimeoutCause(failure);
    }

    /** The SQLSTATE of the first R2DBC exception along the cause chain, or null when it has none. */
    private static String sqlState(Throwable failure) {
        io.r2dbc.spi.R2dbcException r2dbc = find(failure, io.r2dbc.spi.R2dbcException.class);
        return r2dbc != null && r2dbc.getSqlState() != null && !r2dbc.getSqlState().isEmpty() ? r2dbc.getSqlState() : null;
    }

    private static boolean isUnreachableState(String state) {
        return state.startsWith("08") // connection exception
                || state.startsWith("53") // insufficient resources (too many connections, ...)
                || state.equals("57P01") || state.equals("57P02") || state.equals("57P03"); // shutting down
    }

    private static boolean isTimeoutState(String state) {
        return state.equals("57014") // statement cancelled (statement_timeout)
                || state.equals("55P03"); // lock not available (lock_timeout)
    }

    private static boolean isUnreachableCause(Throwable failure) {
        return causedBy(failure, R2dbcTransientResourceException.class)
                || causedBy(failure, R2dbcNonTransientResourceException.class)
                || causedBy(failure, DataAccessResourceFailureException.class)
                || causedBy(failure, java.net.ConnectException.class)
                || causedBy(failure, java.nio.channels.ClosedChannelException.class)
                || causedBy(failure, io.r2dbc.pool.ConnectionPoolException.class);
    }

    /** The pool's acquire timeout comes as R2dbcTimeoutException; a unit past its time as TimeoutException. */
    private static boolean isTimeoutCause(Throwable failure) {
        return causedBy(failure, R2dbcTimeoutException.class) || causedBy(failure, TimeoutException.class);
    }

    private static String describe(JacksonException json) {
        if (json.getMessage() != null && json.getMessage().startsWith("Duplicate ")) {
            return "The request body has a duplicate key";
        }
        if (json.getLocation() != null && json.getLocation().getLineNr() > 0) {
            return "The request body is not valid JSON (line " + json.getLocation().getLineNr() + ", column "
                    + json.getLocation().getColumnNr() + ")";
        }
        return "The request body is not valid JSON";
    }

    private static String path(JacksonException json) {
        StringBuilder out = new StringBuilder();
        for (JacksonException.Reference ref : json.getPath()) {
            if (ref.getPropertyName() != null) {
                if (!out.isEmpty()) {
                    out.append('.');
                }
                out.append(ref.getPropertyName());
            } else if (ref.getIndex() >= 0) {
                out.append('[').append(ref.getIndex()).append(']');
            }
        }
        return out.toString();
    }

    /** A field name echoed back: printable ASCII only, 64 characters at most. */
    private static String safe(String text) {
        String printable = text == null ? "" : text.replaceAll("[^\\x20-\\x7E]", "?");
        return printable.length() > 64 ? printable.substring(0, 64) + "..." : printable;
    }

    static boolean causedBy(Throwable failure, Class<? extends Throwable> type) {
        return find(failure, type) != null;
    }

    /** Walks the cause chain, bounded: a cyclic or absurdly deep chain cannot loop forever. */
    static <T extends Throwable> T find(Throwable failure, Class<T> type) {
        Throwable current = failure;
        for (int depth = 0; current != null && depth < 32; depth++) {
            if (type.isInstance(current)) {
                return type.cast(current);
            }
            current = current.getCause();
        }
        return null;
    }
}
