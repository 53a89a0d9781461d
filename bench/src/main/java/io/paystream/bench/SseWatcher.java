package io.paystream.bench;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.HttpURLConnection;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.UUID;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One watcher of one account's balance stream, through the load balancer, as a browser's
 * EventSource behaves: when its stream ends or is cut, it waits the server's {@code retry:} hint
 * and reconnects with {@code Last-Event-ID} set to the last event id it got. It keeps every event
 * (version and balance), so that afterwards the ledger can tell whether it missed any or got one
 * twice. Bounded: at most {@link #MAX_CONNECTS} connections and the run's deadline; every read by
 * {@link #READ_TIMEOUT_MS} (four heartbeats).
 */
final class SseWatcher implements Runnable {

    static final int MAX_CONNECTS = 2_000;
    static final int MAX_EVENTS = 2_000_000;
    private static final int CONNECT_TIMEOUT_MS = 5_000;
    private static final int READ_TIMEOUT_MS = 60_000;
    private static final long MIN_RETRY_MS = 100;
    private static final long MAX_RETRY_MS = 5_000;
    private static final Pattern VERSION = Pattern.compile("\"version\"\\s*:\\s*(\\d+)");
    private static final Pattern BALANCE = Pattern.compile("\"balance\"\\s*:\\s*(-?\\d+)");

    /** One event as received: its id, the version and balance of its data. */
    record Event(long id, long version, long balance) {
    }

    final UUID account;
    private final String apiKey;
    private final int lbPort;
    private final long deadlineNanos;
    final List<Event> events = new ArrayList<>();
    /** Streams that answered 200. */
    long streams;
    /** Connections opened again after the first (the stream ended, was cut, or the attempt failed). */
    long reconnects;
    long endedCleanly;
    long cut;
    long readTimeouts;
    /** Attempts that did not get a stream, by answer. */
    final Map<String, Long> refused = new TreeMap<>();
    private volatile boolean stopping;
    private long lastId = -1;
    private long retryMs = 2_000;

    SseWatcher(UUID account, String apiKey, int lbPort, long deadlineNanos) {
        this.account = account;
        this.apiKey = apiKey;
        this.lbPort = lbPort;
        this.deadlineNanos = deadlineNanos;
    }

    synchronized long lastVersion() {
        return events.isEmpty() ? -1 : events.get(events.size() - 1).version();
    }

    synchronized List<Event> eventsCopy() {
        return List.copyOf(events);
    }

    /**
     * Ends the watcher: it reconnects no more, and ends when its stream does (stopping nginx ends it).
     * It does not close the connection from this thread: HttpURLConnection.disconnect() waits for the
     * lock the reading thread holds while it reads, so it would wait as long as heartbeats keep coming.
     */
    void stop() {
        stopping = true;
    }

    @Override
    public void run() {
        for (int connect = 0; connect < MAX_CONNECTS && !stopping && System.nanoTime() < deadlineNanos; connect++) {
            if (connect > 0) {
                reconnects++;
                Sh.sleep(Math.max(MIN_RETRY_MS, Math.min(MAX_RETRY_MS, retryMs)));
                if (stopping) {
                    break;
                }
            }
            try {
                once();
            } catch (IOException e) {
                if (stopping) {
                    break;
                }
                if (e instanceof java.net.SocketTimeoutException) {
                    readTimeouts++;
                } else {
                    cut++;
                }
            }
        }
    }

    private void once() throws IOException {
        HttpURLConnection c = (HttpURLConnection) new URL("http://127.0.0.1:" + lbPort + "/v1/accounts/" + account
                + "/balance/stream").openConnection();
        try {
            c.setConnectTimeout(CONNECT_TIMEOUT_MS);
            c.setReadTimeout(READ_TIMEOUT_MS);
            c.setUseCaches(false);
            c.setRequestProperty("Accept", "text/event-stream");
            c.setRequestProperty("Authorization", "Bearer " + apiKey);
            if (lastId >= 0) {
                c.setRequestProperty("Last-Event-ID", Long.toString(lastId));
            }
            int status = c.getResponseCode();
            if (status != 200) {
                String code = readError(c);
                refused.merge(status + (code == null ? "" : " " + code), 1L, Long::sum);
                return;
            }
            streams++;
            try (BufferedReader in = new BufferedReader(new InputStreamReader(c.getInputStream(), StandardCharsets.UTF_8))) {
                String id = null;
                StringBuilder data = new StringBuilder();
                String line;
                while ((line = in.readLine()) != null) {
                    if (line.isEmpty()) {
                        if (data.length() > 0) {
                            dispatch(id, data.toString());
                        }
                        id = null;
                        data.setLength(0);
                    } else if (line.startsWith("id:")) {
                        id = line.substring(3).strip();
                    } else if (line.startsWith("data:")) {
                        data.append(line.substring(5).strip());
                    } else if (line.startsWith("retry:")) {
                        try {
                            retryMs = Long.parseLong(line.substring(6).strip());
                        } catch (NumberFormatException ignored) {
                            // keep the previous hint
                        }
                    }
                }
                endedCleanly++;
            }
        } finally {
            if (stopping) {
                c.disconnect();
            }
        }
    }

    private synchronized void dispatch(String id, String data) {
        if (events.size() >= MAX_EVENTS) {
            stopping = true;
            return;
        }
        Matcher v = VERSION.matcher(data);
        Matcher b = BALANCE.matcher(data);
        long version = v.find() ? Long.parseLong(v.group(1)) : -1;
        long balance = b.find() ? Long.parseLong(b.group(1)) : Long.MIN_VALUE;
        long eventId = id == null ? -1 : Long.parseLong(id);
        events.add(new Event(eventId, version, balance));
        if (eventId >= 0) {
            lastId = eventId;
        }
    }

    private static String readError(HttpURLConnection c) {
        try (InputStream err = c.getErrorStream()) {
            if (err == null) {
                return null;
            }
            String body = new String(err.readNBytes(4096), StandardCharsets.UTF_8);
            return body.startsWith("<") ? "(nginx)" : Json.field(body, "code");
        } catch (IOException e) {
            return null;
        }
    }
}
