package io.paystream.system;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Pattern;

import org.springframework.http.MediaType;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * What every response to hostile input must look like, whatever the input (the contract of
 * README.md "The API" and {@link ProblemExceptionHandler}):
 * <ul>
 * <li>an HTTP response arrives, correctly framed, within the time limit;</li>
 * <li>never a 5xx: hostile input is the client's mistake, not a server failure;</li>
 * <li>a 4xx is {@code application/problem+json} with {@code type}, {@code title}, {@code status} (equal to
 * the HTTP status) and a non-empty {@code code}; the only exception is a request the HTTP codec refuses
 * before the application sees it because of its size (a URI over 4096 characters, headers over 8 KB),
 * which Netty answers with an empty body: allowed for those only, and counted;</li>
 * <li>a 2xx with a body is JSON (for a balance stream: each event's data is);</li>
 * <li>no response leaks internals: no stack trace, no SQL or database error text, no Java class name,
 * no raw API key. Text the client itself sent may come back (an account's name, a field name in
 * {@code unknown_field}, the path in {@code instance}), so a marker counts only if the client never
 * sent it.</li>
 * </ul>
 */
final class HostileResponses {

    /** Netty's limits (reactor-netty defaults): beyond them the codec answers 414/431 with no body. */
    static final int NETTY_MAX_INITIAL_LINE = 4096;
    static final int NETTY_MAX_HEADER_BYTES = 8192;

    /** Whether Netty's codec refuses this request line (414) before any application code sees it. */
    static boolean requestLineTooLong(String method, String target) {
        return method.length() + 1 + target.length() + " HTTP/1.1".length() > NETTY_MAX_INITIAL_LINE;
    }

    private static final JsonMapper JSON = JsonMapper.builder().build();

    /** Markers of internals; SQL ones are matched case-insensitively. */
    private static final List<String> CLASS_MARKERS = List.of("java.", "javax.", "jakarta.", "io.paystream",
            "org.springframework", "reactor.", "io.r2dbc", "io.netty", "tools.jackson", "com.fasterxml", "org.postgresql",
            "org.flywaydb", "Exception", "Caused by", ".java:");
    private static final List<String> SQL_MARKERS = List.of("select ", "insert into", "update ", "delete from", "violates",
            "sqlstate", "duplicate key value", "syntax error", "relation \"", "pg_", "error:", "constraint");
    private static final Pattern STACK_FRAME = Pattern.compile("(?m)^[ \\t]*at [\\w$]+(\\.[\\w$<>]+)+\\(");

    /** Secrets that must never be in any response: the API keys the suite uses. */
    private final Set<String> secrets = ConcurrentHashMap.newKeySet();
    /** Markers some request has sent so far: a stored name may legitimately contain "SELECT ". */
    private final Set<String> markersEverSent = ConcurrentHashMap.newKeySet();

    final AtomicInteger responses = new AtomicInteger();
    final AtomicInteger emptyBodyOversizeRejections = new AtomicInteger();
    final Map<Integer, AtomicInteger> statuses = new ConcurrentHashMap<>();

    void addSecret(String apiKey) {
        secrets.add(apiKey);
    }

    /** A request and what it got. */
    record Exchange(HostileHttp.Request request, HostileHttp.Response response, int port) {

        int status() {
            return response.status();
        }

        JsonNode json() {
            return parse(response.bodyText());
        }

        String code() {
            JsonNode json = json();
            return json != null && json.get("code") != null ? json.get("code").asString() : null;
        }

        boolean replayed() {
            return "true".equalsIgnoreCase(response.header("Idempotent-Replayed"));
        }

        @Override
        public String toString() {
            return "\n--- request ---\n" + request + "\n--- response ---\n" + response + "\n";
        }
    }

    static JsonNode parse(String text) {
        try {
            return JSON.readTree(text);
        } catch (RuntimeException e) {
            return null;
        }
    }

    /** The checks every response gets; throws AssertionError naming the request and response. */
    void check(Exchange exchange) {
        HostileHttp.Request request = exchange.request();
        HostileHttp.Response response = exchange.response();
        responses.incrementAndGet();
        statuses.computeIfAbsent(response.status(), s -> new AtomicInteger()).incrementAndGet();
        String sent = request.sentText();
        rememberMarkers(sent);

        if (response.status() < 0 || response.failure() != null) {
            fail("no complete HTTP response", exchange);
        }
        if (response.status() >= 500) {
            fail("a server error (5xx) for client input", exchange);
        }
        String body = response.bodyText();
        boolean head = "HEAD".equals(request.method());
        if (response.status() >= 400) {
            boolean oversize = requestLineTooLong(request.method(), request.target())
                    || request.headSize(exchange.port()) > NETTY_MAX_HEADER_BYTES;
            if (response.body().length == 0 && oversize) {
                // Known limitation: Netty refuses an oversized request line or header section itself
                // (414/431 or 400), before any application code runs, with an empty body.
                emptyBodyOversizeRejections.incrementAndGet();
            } else {
                checkProblem(exchange, head);
            }
        } else if (response.status() >= 200 && response.body().length > 0 && !head) {
            MediaType type = contentType(exchange);
            if (type != null && type.isCompatibleWith(MediaType.TEXT_EVENT_STREAM)) {
                // A live stream (its first event): every data line of a complete event is JSON.
                for (String line : body.split("\n")) {
                    if (line.startsWith("data:") && parse(line.substring(5)) == null) {
                        fail("a stream event whose data is not JSON", exchange);
                    }
                }
            } else if (type == null || !(type.isCompatibleWith(MediaType.APPLICATION_JSON) || type.getSubtype().endsWith("+json"))) {
                fail("a 2xx body that is not declared JSON", exchange);
            } else if (parse(body) == null) {
                fail("a 2xx body that is not valid JSON", exchange);
            }
        }
        checkNoLeak(exchange, body, sent);
    }

    private void checkProblem(Exchange exchange, boolean head) {
        MediaType type = contentType(exchange);
        if (type == null || !type.equalsTypeAndSubtype(MediaType.APPLICATION_PROBLEM_JSON)) {
            fail("a 4xx that is not application/problem+json (Content-Type " + exchange.response().header("Content-Type") + ")",
                    exchange);
        }
        if (head) {
            return; // a HEAD response has no body by definition
        }
        JsonNode json = parse(exchange.response().bodyText());
        if (json == null || !json.isObject()) {
            fail("a 4xx whose body is not a JSON object", exchange);
        }
        for (String member : List.of("type", "title", "code")) {
            JsonNode value = json.get(member);
            if (value == null || !value.isString() || value.asString().isBlank()) {
                fail("a problem without a non-empty string '" + member + "'", exchange);
            }
        }
        JsonNode status = json.get("status");
        if (status == null || !status.isIntegralNumber() || status.asInt() != exchange.status()) {
            fail("a problem whose 'status' is not the HTTP status " + exchange.status(), exchange);
        }
        String code = json.get("code").asString();
        if (!code.matches("[a-z][a-z_]*")) {
            fail("a problem code that is not a stable snake_case code", exchange);
        }
        String problemType = json.get("type").asString();
        if (!problemType.startsWith("https://") || !problemType.endsWith("/" + code.replace('_', '-'))) {
            fail("a problem type URI that is not derived from its code", exchange);
        }
    }

    private void checkNoLeak(Exchange exchange, String body, String sent) {
        String everything = body + "\n" + headersText(exchange.response());
        for (String secret : secrets) {
            if (everything.contains(secret)) {
                fail("a response that contains a raw API key", exchange);
            }
        }
        boolean success = exchange.status() >= 200 && exchange.status() < 300;
        String lowerSent = sent.toLowerCase(Locale.ROOT);
        String lowerBody = body.toLowerCase(Locale.ROOT);
        for (String marker : CLASS_MARKERS) {
            if (body.contains(marker) && !sent.contains(marker) && !(success && markersEverSent.contains(marker))) {
                fail("a response that leaks internals ('" + marker + "')", exchange);
            }
        }
        for (String marker : SQL_MARKERS) {
            if (lowerBody.contains(marker) && !lowerSent.contains(marker) && !(success && markersEverSent.contains(marker))) {
                fail("a response that leaks SQL or database errors ('" + marker.trim() + "')", exchange);
            }
        }
        if (STACK_FRAME.matcher(body).find() && !(success && markersEverSent.contains("at "))) {
            fail("a response that contains a stack trace", exchange);
        }
    }

    private void rememberMarkers(String sent) {
        String lower = sent.toLowerCase(Locale.ROOT);
        for (String marker : CLASS_MARKERS) {
            if (sent.contains(marker)) {
                markersEverSent.add(marker);
            }
        }
        for (String marker : SQL_MARKERS) {
            if (lower.contains(marker)) {
                markersEverSent.add(marker);
            }
        }
        if (STACK_FRAME.matcher(sent).find()) {
            markersEverSent.add("at ");
        }
    }

    private static String headersText(HostileHttp.Response response) {
        StringBuilder out = new StringBuilder();
        for (String[] h : response.headers()) {
            out.append(h[0]).append(": ").append(h[1]).append('\n');
        }
        return out.toString();
    }

    private static MediaType contentType(Exchange exchange) {
        String header = exchange.response().header("Content-Type");
        try {
            return header == null ? null : MediaType.parseMediaType(header);
        } catch (RuntimeException e) {
            return null;
        }
    }

    static void fail(String what, Exchange exchange) {
        throw new AssertionError(what + exchange);
    }

    /** The statuses seen, for the run's summary. */
    String summary() {
        List<Integer> keys = new ArrayList<>(statuses.keySet());
        keys.sort(Integer::compare);
        StringBuilder out = new StringBuilder();
        for (Integer key : keys) {
            out.append(key).append('=').append(statuses.get(key).get()).append(' ');
        }
        return out.toString().trim();
    }
}
