package io.paystream.stream;

import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collection;
import java.util.IdentityHashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicInteger;

import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.binder.MeterBinder;
import io.paystream.system.EventLoops;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.context.SmartLifecycle;
import org.springframework.stereotype.Component;
import reactor.core.Disposable;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;
import reactor.core.scheduler.Schedulers;
import reactor.util.concurrent.Queues;

/**
 * Who watches which account on this replica, and what changed. Each watched account has one
 * {@link Feed}: the latest version this replica has read and the few versions before it. When
 * accounts change (announced by this replica, by another one through LISTEN, or by the periodic
 * safety check) the hub reads the new versions of <em>all</em> of them in one statement, however many
 * watchers each has, keeps them in the feeds and wakes the watchers; a watcher then takes what it has
 * not sent yet from its feed, in memory. Only a watcher further behind than the feed remembers (a
 * resume from long ago, a very slow reader) reads the ledger itself.
 *
 * <p>Cost: one read per burst of changes (up to {@value #ACCOUNTS_PER_READ} accounts), not one per
 * watcher per change. Memory: at most {@value #RECENT_PER_ACCOUNT} versions per watched account, and
 * at most one pending wake-up per watcher, whatever the rate of changes or the speed of the readers.
 */
@Component
class BalanceHub implements SmartLifecycle, MeterBinder {

    private static final Logger log = LoggerFactory.getLogger(BalanceHub.class);

    /** Accounts per batched read: bounds the statement's parameters and its result (x PAGE_ROWS rows). */
    static final int ACCOUNTS_PER_READ = 500;
    /** Versions per account per read: an account with more is read again at once, in the next batch. */
    static final int PAGE_ROWS = 50;
    /** Versions kept in memory per watched account: watchers this close behind never read themselves. */
    static final int RECENT_PER_ACCOUNT = 32;
    /** After a failed read, wait this long before the next: the database is down or overloaded. */
    private static final Duration READ_FAILURE_PAUSE = Duration.ofMillis(250);

    /** Reads the ledger: each account's versions after its mark, at most {@code limit} each, in order. */
    interface Reader {
        Flux<BalanceEvent> after(Map<UUID, Long> cursors, int limit);
    }

    /** An account's recent versions as this replica knows them. */
    static final class Feed {

        final UUID accountId;
        private final Set<Watcher> watchers = ConcurrentHashMap.newKeySet();
        /** Consecutive versions, oldest first, ending at {@link #latest}. */
        private final ArrayDeque<BalanceEvent> recent = new ArrayDeque<>();
        private long latest;

        Feed(UUID accountId, long latest) {
            this.accountId = accountId;
            this.latest = latest;
        }

        synchronized long latest() {
            return latest;
        }

        /** Appends what a read found; answers whether anything was new. */
        synchronized boolean append(List<BalanceEvent> page) {
            boolean appended = false;
            for (BalanceEvent event : page) {
                if (event.version() <= latest) {
                    continue; // already known (a seed overtook this read)
                }
                if (event.version() != latest + 1) {
                    recent.clear(); // a gap: only what follows it is consecutive
                }
                recent.addLast(event);
                if (recent.size() > RECENT_PER_ACCOUNT) {
                    recent.removeFirst();
                }
                latest = event.version();
                appended = true;
            }
            return appended;
        }

        /**
         * The versions after {@code version} that this replica has read, or null when some of them are
         * no longer (or not yet) in memory: the caller then reads the ledger itself.
         */
        synchronized List<BalanceEvent> after(long version) {
            if (version >= latest) {
                return List.of();
            }
            if (recent.isEmpty() || recent.peekFirst().version() > version + 1) {
                return null;
            }
            List<BalanceEvent> newer = new ArrayList<>((int) Math.min(latest - version, RECENT_PER_ACCOUNT));
            for (BalanceEvent event : recent) {
                if (event.version() > version) {
                    newer.add(event);
                }
            }
            return newer;
        }
    }

    /** One watcher: a stream of wake-ups, at most one pending. */
    static final class Watcher {

        final Feed feed;
        final UUID accountId;
        final UUID clientId;
        /**
         * Where its wake-ups run: the event loop of its HTTP connection, so that the event it sends is
         * written to the socket right there, instead of being handed to that loop as a task of its own.
         */
        final Executor wakeOn;
        private final Sinks.Many<Boolean> wakes = Sinks.many().unicast().onBackpressureBuffer(Queues.<Boolean>one().get());

        Watcher(Feed feed, UUID clientId, Executor wakeOn) {
            this.feed = feed;
            this.accountId = feed.accountId;
            this.clientId = clientId;
            this.wakeOn = wakeOn;
        }

        /** A full queue means a wake-up is already pending: this one coalesces into it. */
        synchronized void wake() {
            wakes.tryEmitNext(Boolean.TRUE);
        }

        Flux<Boolean> wakes() {
            return wakes.asFlux();
        }
    }

    private final Reader reader;
    private final Duration safetyCheck;
    private final Map<UUID, Feed> feeds = new ConcurrentHashMap<>();
    private final Map<UUID, AtomicInteger> perClient = new ConcurrentHashMap<>();
    private final AtomicInteger total = new AtomicInteger();
    /** Watched accounts that changed since the last read: the next batch. */
    private final Set<UUID> changed = ConcurrentHashMap.newKeySet();
    /** Starts a read pass; at most one pending, so any number of announcements cost one pass. */
    private final Sinks.Many<Boolean> passes = Sinks.many().unicast().onBackpressureBuffer(Queues.<Boolean>one().get());
    private volatile Disposable running;

    @Autowired
    BalanceHub(BalanceReads reader, @Value("${paystream.streams.safety-check}") Duration safetyCheck) {
        this((Reader) reader, safetyCheck);
    }

    BalanceHub(Reader reader, Duration safetyCheck) {
        this.reader = reader;
        this.safetyCheck = safetyCheck;
    }

    /**
     * Registers a watcher of an account whose head the caller has just read, or answers null if a limit
     * is reached (the caller refuses the stream). The account is then read once more, so that a change
     * committed between the caller's read and this registration is not left unannounced. The watcher
     * is woken on {@code wakeOn}: its connection's event loop, or {@link EventLoops#PARALLEL}.
     */
    Watcher register(UUID accountId, long headVersion, UUID clientId, int maxPerClient, int maxTotal, Executor wakeOn) {
        AtomicInteger mine = perClient.computeIfAbsent(clientId, id -> new AtomicInteger());
        if (mine.incrementAndGet() > maxPerClient) {
            mine.decrementAndGet();
            return null;
        }
        if (total.incrementAndGet() > maxTotal) {
            total.decrementAndGet();
            mine.decrementAndGet();
            return null;
        }
        Watcher[] registered = new Watcher[1];
        feeds.compute(accountId, (id, feed) -> {
            // An existing feed is left as it is even if this head is newer: the read below brings it up.
            Feed current = feed != null ? feed : new Feed(id, headVersion);
            registered[0] = new Watcher(current, clientId, wakeOn);
            current.watchers.add(registered[0]);
            return current;
        });
        changed(List.of(accountId));
        return registered[0];
    }

    void unregister(Watcher watcher) {
        feeds.computeIfPresent(watcher.accountId, (id, feed) -> {
            feed.watchers.remove(watcher);
            return feed.watchers.isEmpty() ? null : feed;
        });
        perClient.computeIfPresent(watcher.clientId, (id, count) -> count.decrementAndGet() <= 0 ? null : count);
        total.decrementAndGet();
    }

    /**
     * A notification's payload: account ids, comma-separated, or "*" for all. Malformed parts are
     * skipped: a hint we cannot use loses nothing, the safety check still reads the ledger.
     */
    void onNotification(String payload) {
        if (payload == null) {
            return;
        }
        if (payload.equals(BalanceChanges.EVERYTHING)) {
            wakeAll();
            return;
        }
        List<UUID> accounts = new ArrayList<>();
        for (String change : payload.split(",")) {
            try {
                accounts.add(UUID.fromString(change.strip()));
            } catch (IllegalArgumentException malformed) {
                // Not ours, or garbled.
            }
        }
        changed(accounts);
    }

    /** These accounts changed: read the watched ones in the next pass. */
    void changed(Collection<UUID> accounts) {
        boolean any = false;
        for (UUID account : accounts) {
            if (feeds.containsKey(account)) {
                changed.add(account);
                any = true;
            }
        }
        if (any) {
            pass();
        }
    }

    /** Reads every watched account: after the listener reconnects, and on every safety check. */
    void wakeAll() {
        if (!feeds.isEmpty()) {
            changed.addAll(feeds.keySet());
            pass();
        }
    }

    private synchronized void pass() {
        passes.tryEmitNext(Boolean.TRUE);
    }

    /**
     * One pass: one batch of changed accounts, read and delivered. If more are left (more than a batch
     * changed, or an account had more than a page), another pass follows at once: one batch at a time
     * keeps every pass's memory bounded.
     */
    private Mono<Void> readChanged() {
        return Mono.defer(() -> {
            Map<UUID, Long> cursors = new LinkedHashMap<>();
            for (Iterator<UUID> it = changed.iterator(); it.hasNext() && cursors.size() < ACCOUNTS_PER_READ; ) {
                UUID account = it.next();
                it.remove();
                Feed feed = feeds.get(account);
                if (feed != null) {
                    cursors.put(account, feed.latest());
                }
            }
            if (cursors.isEmpty()) {
                return Mono.empty();
            }
            return reader.after(cursors, PAGE_ROWS).collectList()
                    .doOnNext(rows -> {
                        deliver(rows);
                        if (!changed.isEmpty()) {
                            pass();
                        }
                    })
                    .then()
                    .onErrorResume(error -> {
                        // Nothing is lost: the accounts are read again after a pause.
                        changed.addAll(cursors.keySet());
                        log.warn("Could not read balance changes ({}); retrying in {}", error.toString(), READ_FAILURE_PAUSE);
                        return Mono.delay(READ_FAILURE_PAUSE).doOnNext(tick -> pass()).then();
                    });
        });
    }

    private void deliver(List<BalanceEvent> rows) {
        // The watchers to wake, by the event loop each is woken on: one task per loop per read,
        // however many watchers and accounts, instead of one hand-over per event sent.
        Map<Executor, List<Watcher>> toWake = new IdentityHashMap<>();
        int from = 0;
        while (from < rows.size()) {
            UUID account = rows.get(from).accountId();
            int to = from;
            while (to < rows.size() && rows.get(to).accountId().equals(account)) {
                to++;
            }
            Feed feed = feeds.get(account);
            if (feed != null && feed.append(rows.subList(from, to))) {
                for (Watcher watcher : feed.watchers) {
                    toWake.computeIfAbsent(watcher.wakeOn, loop -> new ArrayList<>()).add(watcher);
                }
            }
            if (to - from == PAGE_ROWS) {
                changed.add(account); // more than a page: the rest in the next batch
            }
            from = to;
        }
        // Never on the thread that delivered the rows: that is the database driver's, which the money
        // movements' connections share. Each watcher's send then runs on its own connection's loop, so
        // the sends spread over the loops (and the cores) as the connections do.
        toWake.forEach((loop, watchers) -> {
            try {
                loop.execute(() -> watchers.forEach(Watcher::wake));
            } catch (RejectedExecutionException shuttingDown) {
                // The loop is shutting down, and its connections with it: their streams are ending.
            }
        });
    }

    int watchers() {
        return total.get();
    }

    @Override
    public void bindTo(MeterRegistry registry) {
        Gauge.builder("paystream.streams.active", total, AtomicInteger::get)
                .description("Balance streams open on this replica").register(registry);
        Gauge.builder("paystream.streams.watched.accounts", feeds, Map::size)
                .description("Accounts with at least one balance stream open on this replica").register(registry);
    }

    @Override
    public void start() {
        Disposable reads = passes.asFlux()
                // Off the announcing thread: a read must not start inside a committing transaction's completion.
                .publishOn(Schedulers.parallel(), 1)
                .concatMap(pass -> readChanged(), 1)
                .subscribe();
        // The safety check: the bound on how late a change whose announcement was lost (a replica died
        // between COMMIT and announcing it) can arrive.
        Disposable checks = Flux.interval(safetyCheck, safetyCheck).onBackpressureDrop().subscribe(tick -> wakeAll());
        running = () -> {
            checks.dispose();
            reads.dispose();
        };
    }

    @Override
    public void stop() {
        Disposable current = running;
        if (current != null) {
            current.dispose();
        }
        running = null;
    }

    @Override
    public boolean isRunning() {
        return running != null;
    }
}
