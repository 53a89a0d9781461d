package io.paystream.idempotency;

import java.net.URI;

import org.springframework.http.HttpHeaders;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;

/**
 * A response exactly as it was first sent, so a replay can send the same bytes again.
 *
 * @param status the HTTP status
 * @param location the Location header, or null
 * @param body the JSON body, byte for byte
 * @param replayed whether this is a replay of a stored response
 */
public record StoredResponse(int status, String location, byte[] body, boolean replayed) {

    public static final String REPLAYED_HEADER = "Idempotent-Replayed";

    public static StoredResponse of(int status, String location, byte[] body) {
        return new StoredResponse(status, location, body, false);
    }

    public ResponseEntity<byte[]> toResponseEntity() {
        ResponseEntity.BodyBuilder response = ResponseEntity.status(status)
                .contentType(status >= 400 ? MediaType.APPLICATION_PROBLEM_JSON : MediaType.APPLICATION_JSON);
        if (location != null) {
            response.location(URI.create(location));
        }
        if (replayed) {
            response.header(REPLAYED_HEADER, "true");
        }
        return response.header(HttpHeaders.CACHE_CONTROL, "no-store").body(body);
    }
}
