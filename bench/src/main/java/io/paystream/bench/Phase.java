package io.paystream.bench;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.LongAdder;

import org.HdrHistogram.ConcurrentHistogram;
import org.HdrHistogram.Histogram;

/**
 * One measured run: a workload, a concurrency mode, a loop type. Latency in microseconds, from the
 * send (closed loop) or the intended send time (open loop) to the last byte of the response, for the
 * requests whose (intended) start falls inside the measured window. Every 2xx of the whole run,
 * warm-up included, is kept for the audit.
 */
final class Phase {

    static final long HIGHEST_MICROS = 10L * 60 * 1_000_000;

    final String workload;
    final String mode;
    final String loop;
    final int clients;
    final double targetRate;
    final int ratePercent;
    final Histogram latency = new ConcurrentHistogram(HIGHEST_MICROS, 3);
    final Map<String, LongAdder> statuses = new ConcurrentHashMap<>();
    final Map<String, LongAdder> warmupStatuses = new ConcurrentHashMap<>();
    final ConcurrentLinkedQueue<UUID> acknowledged = new ConcurrentLinkedQueue<>();
    final AtomicLong measured = new AtomicLong();
    final AtomicLong measured2xx = new AtomicLong();
    final AtomicLong dropped = new AtomicLong();
    final AtomicLong issued = new AtomicLong();
    final AtomicLong answered = new AtomicLong();
    final Map<String, String> sampleBodies = new ConcurrentHashMap<>();
    /**
     * Per second of the measured window: requests slower than {@link #SLOW_MICROS} and the slowest one,
     * so that a tail made by a few stalls (a collection, a checkpoint) can be told from one spread over
     * the whole window. Bounded: seconds past {@link #TIMELINE_SECONDS} are not broken down.
     */
    static final int TIMELINE_SECONDS = 3600;
    static final long SLOW_MICROS = 50_000;
    final AtomicLongArray slowBySecond = new AtomicLongArray(TIMELINE_SECONDS);
    final AtomicLongArray maxMicrosBySecond = new AtomicLongArray(TIMELINE_SECONDS);
    volatile long windowStartNanos;
    double seconds;
    boolean completed = true;
    String note = "";
    long ledgerRowsBefore;
    long ledgerRowsAfter;
    Audit.Result audit;

    Phase(String workload, String mode, String loop, int clients, double targetRate, int ratePercent) {
        this.workload = workload;
        this.mode = mode;
        this.loop = loop;
        this.clients = clients;
        this.targetRate = targetRate;
        this.ratePercent = ratePercent;
    }

    String title() {
        return workload + " " + loop + (loop.equals("open") ? " " + ratePercent + "%" : "") + " (" + mode + ")";
    }

    void record(long startNanos, long endNanos, boolean inWindow, Http.Response response) {
        answered.incrementAndGet();
        if (response.is2xx()) {
            String id = Json.field(response.body(), "id");
            if (id != null) {
                acknowledged.add(UUID.fromString(id));
            }
        } else if (response.status() >= 500 || response.status() == 400 || response.status() == 401
                || response.status() == 403 || response.status() == 404) {
            // Keep one body per unexpected status for the report.
            sampleBodies.putIfAbsent(response.label(), response.body() == null ? "" : truncate(response.body(), 400));
        }
        String label = response.label();
        if (inWindow) {
            measured.incrementAndGet();
            if (response.is2xx()) {
                measured2xx.incrementAndGet();
            }
            statuses.computeIfAbsent(label, k -> new LongAdder()).increment();
            long micros = Math.max(1, Math.min(HIGHEST_MICROS, (endNanos - startNanos) / 1000));
            latency.recordValue(micros);
            long second = (startNanos - windowStartNanos) / 1_000_000_000L;
            if (second >= 0 && second < TIMELINE_SECONDS) {
                if (micros > SLOW_MICROS) {
                    slowBySecond.incrementAndGet((int) second);
                }
                maxMicrosBySecond.accumulateAndGet((int) second, micros, Math::max);
            }
        } else {
            warmupStatuses.computeIfAbsent(label, k -> new LongAdder()).increment();
        }
    }

    double throughput() {
        return seconds <= 0 ? 0 : measured.get() / seconds;
    }

    double throughput2xx() {
        return seconds <= 0 ? 0 : measured2xx.get() / seconds;
    }

    double millis(double percentile) {
        return latency.getTotalCount() == 0 ? Double.NaN : latency.getValueAtPercentile(percentile) / 1000.0;
    }

    Map<String, Long> statusCounts() {
        Map<String, Long> m = new TreeMap<>();
        statuses.forEach((k, v) -> m.put(k, v.sum()));
        if (dropped.get() > 0) {
            m.put("dropped", dropped.get());
        }
        return m;
    }

    /**
     * The seconds of the window that held requests slower than {@link #SLOW_MICROS}, worst first, at
     * most {@code limit}: "40 over 50 ms, in 2 of 20 s: t=4 s 37 (max 180 ms), t=9 s 3 (max 61 ms)".
     */
    String slowSeconds(int limit) {
        int n = (int) Math.min(TIMELINE_SECONDS, Math.ceil(seconds));
        List<Integer> slow = new ArrayList<>();
        long total = 0;
        for (int i = 0; i < n; i++) {
            if (slowBySecond.get(i) > 0) {
                slow.add(i);
                total += slowBySecond.get(i);
            }
        }
        slow.sort((a, b) -> Long.compare(slowBySecond.get(b), slowBySecond.get(a)));
        StringBuilder sb = new StringBuilder();
        sb.append(total).append(" over ").append(SLOW_MICROS / 1000).append(" ms, in ").append(slow.size())
                .append(" of ").append(n).append(" s");
        for (int k = 0; k < Math.min(limit, slow.size()); k++) {
            int i = slow.get(k);
            sb.append(k == 0 ? ": " : ", ").append("t=").append(i).append(" s ").append(slowBySecond.get(i))
                    .append(" (max ").append(maxMicrosBySecond.get(i) / 1000).append(" ms)");
        }
        return sb.toString();
    }

    Map<String, Long> warmupStatusCounts() {
        Map<String, Long> m = new TreeMap<>();
        warmupStatuses.forEach((k, v) -> m.put(k, v.sum()));
        return m;
    }

    List<UUID> acknowledgedList() {
        return new ArrayList<>(acknowledged);
    }

    Map<String, Object> toMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("workload", workload);
        m.put("mode", mode);
        m.put("loop", loop);
        m.put("clients", clients);
        if (loop.equals("open")) {
            m.put("targetRatePerSecond", targetRate);
            m.put("ratePercentOfClosedPeak", ratePercent);
        }
        m.put("seconds", seconds);
        m.put("measuredRequests", measured.get());
        m.put("throughputPerSecond", throughput());
        m.put("throughput2xxPerSecond", throughput2xx());
        m.put("p50Ms", millis(50));
        m.put("p99Ms", millis(99));
        m.put("p999Ms", millis(99.9));
        m.put("maxMs", latency.getTotalCount() == 0 ? Double.NaN : latency.getMaxValue() / 1000.0);
        m.put("statuses", statusCounts());
        if (loop.equals("open")) {
            m.put("slowSeconds", slowSeconds(5));
        }
        m.put("warmupStatuses", warmupStatusCounts());
        m.put("acknowledgedTotal", (long) acknowledged.size());
        m.put("completed", completed);
        m.put("note", note);
        m.put("ledgerMovementsWritten", ledgerRowsAfter - ledgerRowsBefore);
        if (!sampleBodies.isEmpty()) {
            m.put("sampleErrorBodies", new TreeMap<>(sampleBodies));
        }
        if (audit != null) {
            m.put("audit", audit.toMap());
        }
        return m;
    }

    static String truncate(String s, int max) {
        return s.length() <= max ? s : s.substring(0, max) + "...";
    }
}
