package io.paystream.stream;

import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Function;

import io.paystream.security.Caller;
import io.paystream.system.ApiException;
import io.paystream.system.Problem;
import com.github.benmanes.caffeine.cache.Caffeine;
import com.github.benmanes.caffeine.cache.LoadingCache;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.context.SmartLifecycle;
import org.springframework.http.codec.ServerSentEvent;
import org.springframework.stereotype.Service;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;
import tools.jackson.databind.json.JsonMapper;

/**
 * Live balance streams. A stream is a loop: wait for a wake-up, take every version after the last one
 * sent, send them, repeat. A new stream starts with the current balance (read in the same statement
 * as the ownership check); a resumed one first replays what it missed. From then on {@link BalanceHub}
 * wakes it when its account changes, and the versions come from the account's feed in memory (the
 * ledger only when the stream is further behind than the feed remembers). Because every take starts
 * after the last version sent, the switch from replay to live has no gap, no duplicate and no
 * reordering, and a lost announcement only delays.
 *
 * <p>Memory per stream is bounded whatever the reader's speed: versions are taken only when the HTTP
 * writer asks for more (a page at most), and wake-ups coalesce (at most one pending).
 */
@Service
class BalanceStreams implements SmartLifecycle {

    /** Versions per read of a stream's own: bounds the memory a stream holds at once. */
    static final int PAGE_ROWS = 100;

    /**
     * Encoded events kept for the other watchers of the same version. A version is sent to all its
     * watchers within moments of being read, so the newest ten thousand (a few MB) cover them; a
     * watcher so slow that its event was forgotten encodes it again.
     */
    static final int ENCODED_EVENTS = 10_000;

    /**
     * The heap one open stream holds, with a margin: with 10,000 streams open, the stream benchmark
     * (bench/streams) measured 350 MB of heap in use after a full collection, the server's own
     * included, so 35 KB a stream.
     */
    static final long HEAP_PER_STREAM_BYTES = 40 * 1024;

    /**
     * Streams may fill at most this share of the heap. The rest is the server's own, its requests', and
     * the collector's room to work: a heap nearly full of live streams is collected over and over (the
     * serial collector a production pod gets stalled seconds at a time at 417 of 512 MB live).
     */
    static final double STREAM_HEAP_SHARE = 0.5;

    private static final Logger log = LoggerFactory.getLogger(BalanceStreams.class);

    private final BalanceReads reads;
    private final BalanceHub hub;
    private final Duration heartbeat;
    private final Duration retryHint;
    private final Duration maxLifetime;
    private final int maxPerClient;
    private final int maxTotal;
    /** Completes every stream at shutdown, so clients reconnect elsewhere instead of holding it up. */
    private final Sinks.Empty<Void> shutdown = Sinks.empty();
    /**
     * Each version's event, encoded once however many watch it: an account's watchers are sent the
     * very same versions from its feed, so the JSON is written once per version rather than once per
     * watcher. Keyed by identity (weak keys: nothing kept once the feed lets go) and bounded.
     */
    private final LoadingCache<BalanceEvent, ServerSentEvent<String>> encoded;
    private volatile boolean running;

    BalanceStreams(BalanceReads reads, BalanceHub hub, JsonMapper json,
            @Value("${paystream.streams.heartbeat}") Duration heartbeat,
            @Value("${paystream.streams.retry-hint}") Duration retryHint,
            @Value("${paystream.streams.max-lifetime}") Duration maxLifetime,
            @Value("${paystream.streams.max-per-client}") int maxPerClient,
            @Value("${paystream.streams.max-per-replica}") int maxTotal) {
        this.reads = reads;
        this.hub = hub;
        this.heartbeat = heartbeat;
        this.retryHint = retryHint;
        this.maxLifetime = maxLifetime;
        this.maxPerClient = maxPerClient;
        if (maxTotal < 0) {
            throw new IllegalArgumentException("paystream.streams.max-per-replica is 0 (fit the heap) or more, not " + maxTotal);
        }
        long heap = Runtime.getRuntime().maxMemory();
        int fitting = fittingStreams(heap);
        if (maxTotal > fitting) {
            log.warn("paystream.streams.max-per-replica={} streams need about {} MB of heap, more than {}% of the {} MB "
                    + "this JVM may use: a replica full of streams would spend its time collecting garbage, or run out "
                    + "of memory. Lower PAYSTREAM_STREAMS_PER_REPLICA (0 picks {} for this heap) or give the JVM more memory.",
                    maxTotal, maxTotal * HEAP_PER_STREAM_BYTES >> 20, Math.round(STREAM_HEAP_SHARE * 100), heap >> 20, fitting);
        }
        this.maxTotal = maxTotal > 0 ? maxTotal : fitting;
        this.encoded = Caffeine.newBuilder()
                .weakKeys()
                .maximumSize(ENCODED_EVENTS)
                .executor(Runnable::run) // its bookkeeping is tiny; no hop to another pool
                .build(event -> ServerSentEvent.builder(json.writeValueAsString(event))
                        .event("balance").id(Long.toString(event.version())).build());
    }

    /** How many streams fit in {@link #STREAM_HEAP_SHARE} of a heap of {@code maxHeapBytes}: the limit when none is set. */
    static int fittingStreams(long maxHeapBytes) {
        return (int) Math.max(1, Math.min(Integer.MAX_VALUE, (long) (maxHeapBytes * STREAM_HEAP_SHARE) / HEAP_PER_STREAM_BYTES));
    }

    /** Streams this replica holds at most. */
    int maxTotal() {
        return maxTotal;
    }

    /**
     * The stream of one account for one caller: every version after {@code after} (or, when null, the
     * current balance first), then each change as it commits. Its wake-ups run on {@code wakeOn}: the
     * event loop of the stream's connection.
     */
    Mono<Flux<ServerSentEvent<String>>> open(UUID accountId, Long after, Caller caller, Executor wakeOn) {
        // One read (shared with the other streams opening now): whether the caller may watch, and the
        // head the stream starts from. Through a future, so the stream (which lives for up to an hour)
        // keeps only the answer: a reactive chain would keep the whole query (its parsed SQL and result
        // metadata, about 10 KB) referenced from the subscription until the stream ends.
        return Mono.fromFuture(() -> reads.open(accountId))
                .filter(opening -> "user".equals(opening.kind()) && caller.owns(opening.ownerId()) || caller.isAdmin())
                .switchIfEmpty(Mono.error(() -> new ApiException(Problem.ACCOUNT_NOT_FOUND, "No account " + accountId)))
                .map(opening -> {
                    BalanceHub.Watcher watcher = hub.register(accountId, opening.head().version(), caller.clientId(),
                            maxPerClient, maxTotal, wakeOn);
                    if (watcher == null) {
                        throw new ApiException(Problem.TOO_MANY_STREAMS, "At most " + maxPerClient
                                + " streams per client and " + maxTotal + " per server are open at once");
                    }
                    return stream(watcher, after, opening.head());
                });
    }

    private Flux<ServerSentEvent<String>> stream(BalanceHub.Watcher watcher, Long after, BalanceEvent head) {
        return pipeline(watcher.wakes(), after, Mono.just(head), lastSent -> readAfter(watcher, lastSent),
                encoded::get, new Limits(heartbeat, retryHint, maxLifetime), shutdown.asMono())
                .doFinally(signal -> hub.unregister(watcher));
    }

    record Limits(Duration heartbeat, Duration retryHint, Duration maxLifetime) {
    }

    /**
     * The stream itself, apart from where its data comes from (so it can be tested on its own): the
     * current balance unless resuming, then a read after the last version sent at once and on every
     * wake-up, with heartbeats, until its lifetime or the shutdown ends it.
     */
    static Flux<ServerSentEvent<BalanceEvent>> pipeline(Flux<Boolean> wakes, Long after, Mono<BalanceEvent> head,
            Function<AtomicLong, Flux<BalanceEvent>> readAfter, Limits limits, Mono<Void> shutdown) {
        return pipeline(wakes, after, head, readAfter, BalanceStreams::event, limits, shutdown);
    }

    /** {@link #pipeline} with the events made by {@code toEvent} (the server sends them encoded once). */
    static <T> Flux<ServerSentEvent<T>> pipeline(Flux<Boolean> wakes, Long after, Mono<BalanceEvent> head,
            Function<AtomicLong, Flux<BalanceEvent>> readAfter, Function<BalanceEvent, ServerSentEvent<T>> toEvent,
            Limits limits, Mono<Void> shutdown) {
        AtomicLong lastSent = new AtomicLong(after == null ? -1 : after);
        // Sent at once, so the client sees the response start even when there is nothing to replay,
        // and learns how soon to reconnect.
        ServerSentEvent<T> opened = ServerSentEvent.<T>builder().comment("stream open")
                .retry(limits.retryHint()).build();
        Flux<ServerSentEvent<T>> first = after != null ? Flux.empty() : head
                .doOnNext(event -> lastSent.set(event.version()))
                .map(toEvent)
                .flux();
        Flux<ServerSentEvent<T>> changes = wakes
                .startWith(Boolean.TRUE)
                .concatMap(wake -> readAfter.apply(lastSent), 1)
                .map(toEvent);
        // A heartbeat the writer cannot take (the client reads slowly, the socket is full) is dropped:
        // the connection has data in flight anyway. Without the drop, interval fails the whole stream.
        Flux<ServerSentEvent<T>> heartbeats = Flux.interval(limits.heartbeat())
                .onBackpressureDrop()
                .map(tick -> ServerSentEvent.<T>builder().comment("heartbeat").build());
        // Prefetch 1: nothing is read ahead of what the HTTP writer asks for, beyond one event.
        // A read that fails (the database busy or gone) ends the stream cleanly rather than cutting the
        // connection: the client reconnects with its Last-Event-ID and misses nothing.
        Sinks.Empty<Void> ended = Sinks.empty();
        Flux<ServerSentEvent<T>> events = Flux.concat(Flux.just(opened), first, changes)
                .onErrorResume(error -> Flux.empty())
                .doFinally(signal -> ended.tryEmitEmpty());
        return Flux.merge(1, events, heartbeats.takeUntilOther(ended.asMono()))
                .take(limits.maxLifetime())
                .takeUntilOther(shutdown);
    }

    /**
     * Every version after the last one sent: from the account's feed in memory when it has them all,
     * else from the ledger, page by page, advancing the mark as it goes.
     */
    private Flux<BalanceEvent> readAfter(BalanceHub.Watcher watcher, AtomicLong lastSent) {
        return readThrough(watcher.feed, lastSent, mark -> readLedgerAfter(watcher, mark));
    }

    /** {@link #readAfter} apart from the ledger it falls back on (so it can be tested on its own). */
    static Flux<BalanceEvent> readThrough(BalanceHub.Feed feed, AtomicLong lastSent,
            Function<AtomicLong, Flux<BalanceEvent>> ledgerAfter) {
        return Flux.defer(() -> {
            List<BalanceEvent> recent = feed.after(lastSent.get());
            if (recent == null) {
                return ledgerAfter.apply(lastSent);
            }
            if (!recent.isEmpty()) {
                lastSent.set(recent.get(recent.size() - 1).version());
            }
            return Flux.fromIterable(recent);
        });
    }

    private Flux<BalanceEvent> readLedgerAfter(BalanceHub.Watcher watcher, AtomicLong lastSent) {
        return Flux.defer(() -> reads.after(watcher.accountId, Math.max(lastSent.get(), 0), PAGE_ROWS).collectList())
                .concatMap(page -> {
                    if (page.isEmpty()) {
                        return Flux.empty();
                    }
                    BalanceEvent last = page.get(page.size() - 1);
                    lastSent.set(last.version());
                    Flux<BalanceEvent> rows = Flux.fromIterable(page);
                    return page.size() < PAGE_ROWS ? rows : rows.concatWith(readAfter(watcher, lastSent));
                });
    }

    private static ServerSentEvent<BalanceEvent> event(BalanceEvent event) {
        return ServerSentEvent.<BalanceEvent>builder(event).event("balance").id(Long.toString(event.version())).build();
    }

    // Shutdown: end every stream first, before the web server's graceful shutdown waits for requests.

    @Override
    public void start() {
        running = true;
    }

    @Override
    public void stop() {
        running = false;
        shutdown.tryEmitEmpty();
    }

    @Override
    public boolean isRunning() {
        return running;
    }

    @Override
    public int getPhase() {
        return Integer.MAX_VALUE; // stopped first
    }
}
