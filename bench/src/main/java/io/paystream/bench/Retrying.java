package io.paystream.bench;

import java.util.concurrent.ThreadLocalRandom;

/**
 * How a careful client retries a money movement (the chaos and load-balanced runs): with the same
 * Idempotency-Key and body, on an answer that says nothing was decided, after a jittered pause that
 * doubles up to 1 s.
 */
final class Retrying {

    static final long MAX_BACKOFF_MS = 1000;

    private Retrying() {
    }

    /** No answer, a 5xx, 429, or 409 "in progress": the movement may be retried safely. */
    static boolean worthRetrying(Http.Response r, String label) {
        return r == null || r.status() < 0 || r.status() >= 500 || r.status() == 429
                || (r.status() == 409 && label.contains("in_progress"));
    }

    /** Sleeps between half and all of {@code backoffMs}; answers the next backoff, or -1 if interrupted. */
    static long pause(long backoffMs) {
        try {
            Thread.sleep(backoffMs / 2 + ThreadLocalRandom.current().nextLong(backoffMs / 2 + 1));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return -1;
        }
        return Math.min(MAX_BACKOFF_MS, backoffMs * 2);
    }
}
