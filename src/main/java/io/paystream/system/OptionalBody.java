package io.paystream.system;

import java.util.function.Supplier;

import org.springframework.http.HttpHeaders;
import org.springframework.http.server.reactive.ServerHttpRequest;

/**
 * Bodies a request may leave out: a capture or a reversal without one takes all that is left. Only a
 * request that really sent no body may mean that. A body that decodes to nothing (the JSON literal
 * {@code null}, or only whitespace) is a client mistake, refused, never "all".
 */
public final class OptionalBody {

    private OptionalBody() {
    }

    /** The decoded body; else, when the request sent none, the default; else 400 malformed_json. */
    public static <T> T orWhenAbsent(T decoded, ServerHttpRequest request, Supplier<T> whenAbsent) {
        if (decoded != null) {
            return decoded;
        }
        HttpHeaders headers = request.getHeaders();
        if (headers.getContentLength() > 0 || headers.containsHeader(HttpHeaders.TRANSFER_ENCODING)) {
            throw new ApiException(Problem.MALFORMED_JSON, "The request body could not be read as a JSON object");
        }
        return whenAbsent.get();
    }
}
