package io.paystream.bench;

import java.time.Duration;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * The two ways of loading the API. Both are bounded in time (warm-up + measured window, then a
 * bounded wait for the last responses) and in count (--max-requests).
 *
 * <ul>
 * <li><b>Closed loop</b>: N clients, each sends its next request as soon as it has the previous
 * response. Measures the peak the system sustains; latency is from send to response.</li>
 * <li><b>Open loop</b>: requests leave on a fixed schedule whatever the responses, as independent
 * users would send them. Latency is measured from the <i>intended</i> send time, so queueing in the
 * client, the server or the database is not hidden (no coordinated omission). At most
 * --max-in-flight requests are outstanding; a request due while that many are in flight is dropped
 * and counted.</li>
 * </ul>
 */
final class Load {

    private Load() {
    }

    /** Prints answered requests per second every 5 s while a phase runs. */
    static java.util.concurrent.ScheduledExecutorService progress(Phase phase) {
        java.util.concurrent.ScheduledExecutorService s = java.util.concurrent.Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "bench-progress");
            t.setDaemon(true);
            return t;
        });
        long[] last = {0, System.nanoTime()};
        s.scheduleAtFixedRate(() -> {
            long answered = phase.answered.get();
            long now = System.nanoTime();
            Log.info("    ... %.0f answered/s", (answered - last[0]) / ((now - last[1]) / 1e9));
            last[0] = answered;
            last[1] = now;
        }, 5, 5, java.util.concurrent.TimeUnit.SECONDS);
        return s;
    }

    /**
     * Tells the phase where its measured window starts, and logs it as wall-clock time, so that a slow
     * second of the report can be matched with the application's and PostgreSQL's logs.
     */
    private static void startWindow(Phase phase, long measureStartNanos) {
        phase.windowStartNanos = measureStartNanos;
        Log.info("    measured window starts at %s", java.time.Instant.ofEpochMilli(
                System.currentTimeMillis() + (measureStartNanos - System.nanoTime()) / 1_000_000));
    }

    static void closed(Http http, Workload workload, Phase phase, Duration warmup, Duration measure,
            long maxRequests, String keyPrefix, Duration responseTimeout) {
        java.util.concurrent.ScheduledExecutorService progress = progress(phase);
        try {
            closedLoop(http, workload, phase, warmup, measure, maxRequests, keyPrefix, responseTimeout);
        } finally {
            progress.shutdownNow();
        }
    }

    private static void closedLoop(Http http, Workload workload, Phase phase, Duration warmup, Duration measure,
            long maxRequests, String keyPrefix, Duration responseTimeout) {
        long start = System.nanoTime();
        long measureStart = start + warmup.toNanos();
        long end = measureStart + measure.toNanos();
        startWindow(phase, measureStart);
        Flux.range(0, phase.clients)
                .flatMap(client -> Mono.defer(() -> {
                    long n = phase.issued.incrementAndGet();
                    if (n > maxRequests) {
                        return Mono.empty();
                    }
                    Workload.Request request = workload.next(ThreadLocalRandom.current(), client);
                    long t0 = System.nanoTime();
                    return http.post(request.path(), request.body(), keyPrefix + n, request.apiKey())
                            .doOnNext(r -> phase.record(t0, System.nanoTime(), t0 >= measureStart && t0 < end, r));
                }).repeat(() -> System.nanoTime() < end && phase.issued.get() < maxRequests), phase.clients)
                .then()
                .onErrorResume(e -> {
                    phase.completed = false;
                    phase.note = "load generator error: " + e;
                    return Mono.empty();
                })
                .block(warmup.plus(measure).plus(responseTimeout).plusSeconds(90));
        phase.seconds = measure.toNanos() / 1e9;
        if (phase.issued.get() >= maxRequests) {
            phase.note = "stopped at --max-requests " + maxRequests;
        }
    }

    static void open(Http http, Workload workload, Phase phase, Duration warmup, Duration measure, long maxRequests,
            int maxInFlight, int clients, String keyPrefix, Duration responseTimeout) {
        java.util.concurrent.ScheduledExecutorService progress = progress(phase);
        try {
            openLoop(http, workload, phase, warmup, measure, maxRequests, maxInFlight, clients, keyPrefix, responseTimeout);
        } finally {
            progress.shutdownNow();
        }
    }

    private static void openLoop(Http http, Workload workload, Phase phase, Duration warmup, Duration measure,
            long maxRequests, int maxInFlight, int clients, String keyPrefix, Duration responseTimeout) {
        AtomicInteger inFlight = new AtomicInteger();
        double periodNanos = 1e9 / phase.targetRate;
        long start = System.nanoTime() + 10_000_000;
        long measureStart = start + warmup.toNanos();
        long end = measureStart + measure.toNanos();
        startWindow(phase, measureStart);
        for (long i = 0; i < maxRequests; i++) {
            long intended = start + (long) (i * periodNanos);
            if (intended >= end) {
                break;
            }
            long now;
            while ((now = System.nanoTime()) < intended) {
                LockSupport.parkNanos(intended - now);
            }
            boolean inWindow = intended >= measureStart;
            if (inFlight.get() >= maxInFlight) {
                if (inWindow) {
                    phase.dropped.incrementAndGet();
                }
                continue;
            }
            inFlight.incrementAndGet();
            long n = phase.issued.incrementAndGet();
            // Requests are spread over the clients in turn, as independent clients would send them.
            Workload.Request request = workload.next(ThreadLocalRandom.current(), (int) (i % clients));
            http.post(request.path(), request.body(), keyPrefix + n, request.apiKey())
                    .subscribe(r -> {
                        phase.record(intended, System.nanoTime(), inWindow, r);
                        inFlight.decrementAndGet();
                    }, e -> inFlight.decrementAndGet());
        }
        if (phase.issued.get() >= maxRequests) {
            phase.note = "stopped at --max-requests " + maxRequests;
        }
        long drainDeadline = System.nanoTime() + responseTimeout.plusSeconds(70).toNanos();
        while (inFlight.get() > 0 && System.nanoTime() < drainDeadline) {
            Sh.sleep(20);
        }
        if (inFlight.get() > 0) {
            phase.completed = false;
            phase.note = inFlight.get() + " requests still unanswered when the phase was closed";
        }
        phase.seconds = measure.toNanos() / 1e9;
    }
}
