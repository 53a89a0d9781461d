package io.paystream.stream;

import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Function;

import io.paystream.system.EventLoops;
import org.junit.jupiter.api.Test;
import org.springframework.http.codec.ServerSentEvent;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;
import reactor.test.StepVerifier;

import static org.assertj.core.api.Assertions.assertThat;

/** The stream pipeline on its own, over a ledger held in memory. */
class BalanceStreamPipelineTests {

    private static final UUID ACCOUNT = UUID.randomUUID();
    private static final BalanceStreams.Limits LIMITS =
            new BalanceStreams.Limits(Duration.ofSeconds(15), Duration.ofSeconds(2), Duration.ofHours(1));

    /** An account's chain, appended to by the test, read like the real ledger: versions after a mark. */
    private final List<BalanceEvent> ledger = new CopyOnWriteArrayList<>();
    private final AtomicInteger reads = new AtomicInteger();

    private void append(long amount) {
        long version = ledger.size() + 1;
        long balance = (ledger.isEmpty() ? 0 : ledger.get(ledger.size() - 1).balance()) + amount;
        ledger.add(new BalanceEvent(ACCOUNT, balance, 0, balance, version, UUID.randomUUID(), null, null));
    }

    private final Function<AtomicLong, Flux<BalanceEvent>> readAfter = lastSent -> Flux.defer(() -> {
        reads.incrementAndGet();
        List<BalanceEvent> after = ledger.stream().filter(e -> e.version() > lastSent.get()).toList();
        if (!after.isEmpty()) {
            lastSent.set(after.get(after.size() - 1).version());
        }
        return Flux.fromIterable(after);
    });

    private Mono<BalanceEvent> head() {
        return Mono.fromSupplier(() -> ledger.isEmpty() ? new BalanceEvent(ACCOUNT, 0, 0, 0, 0, null, null, null)
                : ledger.get(ledger.size() - 1));
    }

    @Test
    void replayThenLiveWithoutGapOrDuplicate() {
        append(10);
        append(20);
        append(30);
        Sinks.Many<Boolean> wakes = Sinks.many().unicast().onBackpressureBuffer();

        StepVerifier.create(BalanceStreams.pipeline(wakes.asFlux(), 1L, head(), readAfter, LIMITS, Mono.never())
                        .filter(e -> e.event() != null).map(ServerSentEvent::id))
                .expectNext("2", "3") // the replay after version 1
                .then(() -> {
                    append(5);
                    append(6);
                    wakes.tryEmitNext(true);
                })
                .expectNext("4", "5") // live, right after the replay
                .then(() -> wakes.tryEmitNext(true)) // a wake-up with nothing new: nothing sent twice
                .expectNoEvent(Duration.ofMillis(100))
                .thenCancel()
                .verify(Duration.ofSeconds(5));
    }

    @Test
    void aNewStreamOpensAtOnceWithARetryHintThenTheCurrentBalance() {
        append(7);
        StepVerifier.create(BalanceStreams.pipeline(Flux.never(), null, head(), readAfter, LIMITS, Mono.never()))
                .assertNext(opened -> {
                    assertThat(opened.comment()).isEqualTo("stream open");
                    assertThat(opened.retry()).isEqualTo(Duration.ofSeconds(2));
                })
                .assertNext(first -> {
                    assertThat(first.id()).isEqualTo("1");
                    assertThat(first.event()).isEqualTo("balance");
                    assertThat(first.data().balance()).isEqualTo(7);
                })
                .expectNoEvent(Duration.ofMillis(100))
                .thenCancel()
                .verify(Duration.ofSeconds(5));
    }

    /** The hub over the in-memory ledger: counts its batched reads and the accounts in each. */
    private final List<Integer> hubReads = new CopyOnWriteArrayList<>();

    private BalanceHub hub() {
        BalanceHub hub = unstartedHub();
        hub.start();
        return hub;
    }

    private BalanceHub unstartedHub() {
        return new BalanceHub((cursors, limit) -> Flux.defer(() -> {
            hubReads.add(cursors.size());
            return Flux.fromIterable(cursors.entrySet())
                    .concatMap(cursor -> Flux.fromIterable(ledger)
                            .filter(e -> e.accountId().equals(cursor.getKey()) && e.version() > cursor.getValue())
                            .take(limit));
        }), Duration.ofHours(1));
    }

    /** The read a real stream makes: the feed in memory when it has everything, else the ledger. */
    private Function<AtomicLong, Flux<BalanceEvent>> readThrough(BalanceHub.Watcher watcher) {
        return lastSent -> BalanceStreams.readThrough(watcher.feed, lastSent, readAfter);
    }

    @Test
    void wakeUpsCoalesceIntoOneReadForASlowReader() {
        BalanceHub hub = hub();
        append(1);
        BalanceHub.Watcher watcher = hub.register(ACCOUNT, 1, UUID.randomUUID(), 10, 10, EventLoops.PARALLEL);
        // The reader asks for nothing while 100 changes are announced: one wake-up stays pending, and
        // the feed keeps only its last RECENT_PER_ACCOUNT versions, so the reader catches up from the
        // ledger in pages.
        StepVerifier.create(BalanceStreams.pipeline(watcher.wakes(), 1L, head(), readThrough(watcher), LIMITS, Mono.never())
                        .filter(e -> e.event() != null).map(ServerSentEvent::id), 0)
                .then(() -> {
                    for (int i = 0; i < 100; i++) {
                        append(1);
                        hub.onNotification(ACCOUNT.toString());
                    }
                })
                .thenRequest(100)
                .expectNextSequence(java.util.stream.LongStream.rangeClosed(2, 101).mapToObj(Long::toString).toList())
                .thenCancel()
                .verify(Duration.ofSeconds(5));
        // A handful of its own reads (the first, one in progress when the burst began, the coalesced
        // pending wake-up), not one per notification: the count does not grow with the burst.
        assertThat(reads.get()).isLessThanOrEqualTo(5);
        hub.stop();
    }

    @Test
    void oneBatchedReadServesEveryWatcherOfEveryChangedAccount() {
        // Registered before the hub starts: the 50 registrations' announcements coalesce into one
        // pending pass, so no registration read is still in flight when the change below is counted.
        BalanceHub hub = unstartedHub();
        append(5);
        List<BalanceHub.Watcher> watchers = new java.util.ArrayList<>();
        for (int i = 0; i < 50; i++) {
            watchers.add(hub.register(ACCOUNT, 1, UUID.randomUUID(), 10, 100, EventLoops.PARALLEL));
        }
        hub.start();
        await(() -> !hubReads.isEmpty());
        assertThat(hubReads).as("one read for 50 registrations").containsExactly(1);
        hubReads.clear();
        // 50 watchers of one account, and one change: the hub reads once, every watcher gets it from memory.
        List<List<String>> received = new java.util.ArrayList<>();
        List<reactor.core.Disposable> streams = new java.util.ArrayList<>();
        for (BalanceHub.Watcher watcher : watchers) {
            List<String> ids = new CopyOnWriteArrayList<>();
            received.add(ids);
            streams.add(BalanceStreams.pipeline(watcher.wakes(), 1L, head(), readThrough(watcher), LIMITS, Mono.never())
                    .filter(e -> e.event() != null).map(ServerSentEvent::id).subscribe(ids::add));
        }
        append(6);
        hub.changed(List.of(ACCOUNT));
        await(() -> received.stream().allMatch(ids -> ids.equals(List.of("2"))));
        assertThat(hubReads).as("one read for the change, of one account").containsExactly(1);
        assertThat(reads.get()).as("no watcher read the ledger itself").isZero();
        assertThat(hub.watchers()).isEqualTo(50);
        streams.forEach(reactor.core.Disposable::dispose);
        watchers.forEach(hub::unregister);
        assertThat(hub.watchers()).isZero();
        hub.stop();
    }

    /**
     * Watchers are woken on the loop each was registered with (its connection's event loop): one task
     * per loop per read, however many watchers, and each watcher's event is sent from its own loop.
     */
    @Test
    void watchersAreWokenOnTheirOwnLoopOneTaskPerLoop() {
        // Started after the registrations, as above: their reads are one, done before the change.
        BalanceHub hub = unstartedHub();
        append(5);
        java.util.concurrent.ExecutorService[] loops = new java.util.concurrent.ExecutorService[3];
        AtomicInteger[] tasks = new AtomicInteger[loops.length];
        java.util.concurrent.Executor[] counted = new java.util.concurrent.Executor[loops.length];
        for (int i = 0; i < loops.length; i++) {
            String name = "loop-" + i;
            loops[i] = java.util.concurrent.Executors.newSingleThreadExecutor(task -> new Thread(task, name));
            tasks[i] = new AtomicInteger();
            int loop = i;
            counted[i] = task -> {
                tasks[loop].incrementAndGet();
                loops[loop].execute(task);
            };
        }
        List<BalanceHub.Watcher> watchers = new java.util.ArrayList<>();
        for (int i = 0; i < 30; i++) {
            watchers.add(hub.register(ACCOUNT, 1, UUID.randomUUID(), 10, 100, counted[i % loops.length]));
        }
        hub.start();
        await(() -> !hubReads.isEmpty());
        List<String> sentFrom = new CopyOnWriteArrayList<>();
        List<reactor.core.Disposable> streams = new java.util.ArrayList<>();
        for (int i = 0; i < watchers.size(); i++) {
            String expected = "loop-" + (i % loops.length);
            streams.add(BalanceStreams.pipeline(watchers.get(i).wakes(), 1L, head(), readThrough(watchers.get(i)), LIMITS,
                            Mono.never())
                    .filter(e -> e.event() != null)
                    .subscribe(e -> sentFrom.add(Thread.currentThread().getName().equals(expected) ? "own loop"
                            : Thread.currentThread().getName())));
        }
        for (AtomicInteger count : tasks) {
            count.set(0);
        }
        append(6);
        hub.changed(List.of(ACCOUNT));
        await(() -> sentFrom.size() == watchers.size());
        assertThat(sentFrom).containsOnly("own loop");
        assertThat(tasks).allSatisfy(count -> assertThat(count.get()).as("tasks handed to one loop").isEqualTo(1));
        streams.forEach(reactor.core.Disposable::dispose);
        watchers.forEach(hub::unregister);
        for (java.util.concurrent.ExecutorService loop : loops) {
            loop.shutdownNow();
        }
        hub.stop();
    }

    @Test
    void aFeedServesOnlyWhatItHoldsConsecutively() {
        BalanceHub.Feed feed = new BalanceHub.Feed(ACCOUNT, 3);
        assertThat(feed.after(3)).isEmpty();
        assertThat(feed.after(1)).as("versions 2-3 were never read into the feed").isNull();
        feed.append(List.of(new BalanceEvent(ACCOUNT, 1, 0, 1, 4, null, null, null),
                new BalanceEvent(ACCOUNT, 2, 0, 2, 5, null, null, null)));
        assertThat(feed.after(3)).extracting(BalanceEvent::version).containsExactly(4L, 5L);
        assertThat(feed.after(4)).extracting(BalanceEvent::version).containsExactly(5L);
        assertThat(feed.after(2)).isNull();
        // A duplicate or stale page changes nothing.
        assertThat(feed.append(List.of(new BalanceEvent(ACCOUNT, 1, 0, 1, 4, null, null, null)))).isFalse();
        // Beyond its bound, the oldest versions leave memory.
        List<BalanceEvent> many = new java.util.ArrayList<>();
        for (long v = 6; v < 6 + BalanceHub.RECENT_PER_ACCOUNT; v++) {
            many.add(new BalanceEvent(ACCOUNT, v, 0, v, v, null, null, null));
        }
        feed.append(many);
        assertThat(feed.after(4)).isNull();
        assertThat(feed.after(5)).hasSize(BalanceHub.RECENT_PER_ACCOUNT);
    }

    private static void await(java.util.function.BooleanSupplier condition) {
        long deadline = System.nanoTime() + Duration.ofSeconds(5).toNanos();
        while (!condition.getAsBoolean()) {
            assertThat(System.nanoTime()).as("condition within 5 s").isLessThan(deadline);
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                throw new IllegalStateException(e);
            }
        }
    }

    @Test
    void aFailedReadEndsTheStreamCleanlyForTheClientToResume() {
        append(1);
        Function<AtomicLong, Flux<BalanceEvent>> failing = lastSent -> Flux.error(new IllegalStateException("pool exhausted"));
        StepVerifier.create(BalanceStreams.pipeline(Flux.never(), null, head(), failing, LIMITS, Mono.never())
                        .filter(e -> e.event() != null))
                .assertNext(first -> assertThat(first.id()).isEqualTo("1"))
                .expectComplete()
                .verify(Duration.ofSeconds(5));
    }

    @Test
    void heartbeatsComeOnTimeWhenNothingHappens() {
        StepVerifier.withVirtualTime(() -> BalanceStreams.pipeline(Flux.never(), 0L, head(), readAfter, LIMITS, Mono.never()))
                .expectSubscription()
                .assertNext(opened -> assertThat(opened.comment()).isEqualTo("stream open"))
                .expectNoEvent(Duration.ofSeconds(15))
                .assertNext(heartbeat -> assertThat(heartbeat.comment()).isEqualTo("heartbeat"))
                .thenAwait(Duration.ofSeconds(15))
                .assertNext(heartbeat -> assertThat(heartbeat.comment()).isEqualTo("heartbeat"))
                .thenCancel()
                .verify(Duration.ofSeconds(5));
    }

    /**
     * A reader that stops reading (a full socket) for several heartbeat periods: the heartbeats it
     * could not take are dropped, not an error that ends its stream; once it reads again it gets
     * the changes it missed, then heartbeats as before.
     */
    @Test
    void aReaderThatStallsForMinutesMissesHeartbeatsNotItsStream() {
        append(10);
        Sinks.Many<Boolean> wakes = Sinks.many().unicast().onBackpressureBuffer();
        StepVerifier.withVirtualTime(() -> BalanceStreams.pipeline(wakes.asFlux(), 1L, head(), readAfter, LIMITS,
                        Mono.never()), 1)
                .expectSubscription()
                .assertNext(opened -> assertThat(opened.comment()).isEqualTo("stream open"))
                .then(() -> {
                    append(20);
                    wakes.tryEmitNext(true);
                })
                .thenAwait(Duration.ofMinutes(5)) // twenty heartbeat periods without a request
                .thenRequest(1)
                .assertNext(change -> assertThat(change.id()).isEqualTo("2"))
                .thenRequest(1)
                .thenAwait(Duration.ofSeconds(15))
                .assertNext(heartbeat -> assertThat(heartbeat.comment()).isEqualTo("heartbeat"))
                .thenCancel()
                .verify(Duration.ofSeconds(5));
    }

    @Test
    void aStreamEndsAtItsMaximumLifetimeAndAtShutdown() {
        var shortLived = new BalanceStreams.Limits(Duration.ofSeconds(15), Duration.ofSeconds(2), Duration.ofMinutes(1));
        StepVerifier.withVirtualTime(() -> BalanceStreams.pipeline(Flux.never(), 0L, head(), readAfter, shortLived, Mono.never()))
                .expectSubscription()
                .thenAwait(Duration.ofMinutes(1))
                .thenConsumeWhile(e -> e.comment() != null)
                .expectComplete()
                .verify(Duration.ofSeconds(5));

        Sinks.Empty<Void> shutdown = Sinks.empty();
        StepVerifier.create(BalanceStreams.pipeline(Flux.never(), 0L, head(), readAfter, LIMITS, shutdown.asMono())
                        .filter(e -> e.event() != null))
                .then(shutdown::tryEmitEmpty)
                .expectComplete()
                .verify(Duration.ofSeconds(5));
    }
}
