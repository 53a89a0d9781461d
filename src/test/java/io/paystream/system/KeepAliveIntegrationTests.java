package io.paystream.system;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import io.paystream.testsupport.PaystreamIntegrationTest;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.web.server.LocalServerPort;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Every request on a reused HTTP/1.1 connection is answered. A client that sends its next request
 * the moment it has read the previous answer can reach the server before the server has finished
 * with that previous request; the server then buffers it, and must still serve it. (Under Reactor
 * Netty 1.3.6 about one such request in 200 was never answered: the connection stopped reading.)
 */
@PaystreamIntegrationTest
class KeepAliveIntegrationTests {

    /** At one hang in 200, a thousand requests meet one with near certainty. */
    private static final int REQUESTS = 1000;
    /**
     * A probe answers in milliseconds, but a loaded 2-core machine can stall one for seconds; a request
     * left unanswered waits for ever, so a generous bound still tells the two apart.
     */
    private static final Duration PER_REQUEST = Duration.ofSeconds(30);

    @LocalServerPort
    int port;

    @Test
    void everyRequestOnAReusedConnectionIsAnswered() throws Exception {
        HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
        URI livez = URI.create("http://127.0.0.1:" + port + "/livez");
        // Not counted: the first request pays for a cold server and a cold client (class loading, JIT,
        // the connection itself). It opens the connection the counted requests then reuse.
        HttpResponse<String> warmUp = client.sendAsync(HttpRequest.newBuilder(livez).build(), HttpResponse.BodyHandlers.ofString())
                .get(PER_REQUEST.toMillis(), TimeUnit.MILLISECONDS);
        assertThat(warmUp.statusCode()).isEqualTo(200);
        List<Integer> unanswered = new ArrayList<>();
        for (int i = 0; i < REQUESTS && unanswered.size() < 3; i++) {
            HttpRequest request = HttpRequest.newBuilder(livez).build();
            try {
                HttpResponse<String> response = client.sendAsync(request, HttpResponse.BodyHandlers.ofString())
                        .get(PER_REQUEST.toMillis(), TimeUnit.MILLISECONDS);
                assertThat(response.statusCode()).isEqualTo(200);
            } catch (TimeoutException e) {
                unanswered.add(i);
            }
        }
        assertThat(unanswered).as("requests never answered, by their number in the sequence").isEmpty();
    }
}
