package io.paystream.stream;

import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

import org.springframework.stereotype.Component;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Sinks;
import reactor.util.concurrent.Queues;

/**
 * Who watches which account on this replica, and how to wake them. A wake-up carries no data: the
 * watcher reads what changed from the ledger. Wake-ups coalesce: each watcher holds at most one
 * pending wake-up, so a burst of changes or a slow reader costs no memory.
 */
@Component
class BalanceHub {

    /** One watcher: a stream of wake-ups, at most one pending. */
    static final class Watcher {

        final UUID accountId;
        final UUID clientId;
        private final Sinks.Many<Boolean> wakes = Sinks.many().unicast().onBackpressureBuffer(Queues.<Boolean>one().get());

        Watcher(UUID accountId, UUID clientId) {
            this.accountId = accountId;
            this.clientId = clientId;
        }

        /** A full queue means a wake-up is already pending: this one coalesces into it. */
        synchronized void wake() {
            wakes.tryEmitNext(Boolean.TRUE);
        }

        Flux<Boolean> wakes() {
            return wakes.asFlux();
        }
    }

    private final Map<UUID, Set<Watcher>> watchers = new ConcurrentHashMap<>();
    private final Map<UUID, AtomicInteger> perClient = new ConcurrentHashMap<>();
    private final AtomicInteger total = new AtomicInteger();

    /** Registers a watcher, or answers null if a limit is reached (the caller refuses the stream). */
    Watcher register(UUID accountId, UUID clientId, int maxPerClient, int maxTotal) {
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
        Watcher watcher = new Watcher(accountId, clientId);
        watchers.computeIfAbsent(accountId, id -> ConcurrentHashMap.newKeySet()).add(watcher);
        return watcher;
    }

    void unregister(Watcher watcher) {
        watchers.computeIfPresent(watcher.accountId, (id, set) -> {
            set.remove(watcher);
            return set.isEmpty() ? null : set;
        });
        perClient.computeIfPresent(watcher.clientId, (id, count) -> count.decrementAndGet() <= 0 ? null : count);
        total.decrementAndGet();
    }

    /**
     * A notification's payload: account ids, comma-separated, or "*" for all. Malformed parts are
     * skipped: a hint we cannot use loses nothing, readers go by the ledger.
     */
    void onNotification(String payload) {
        if (payload == null) {
            return;
        }
        if (payload.equals(BalanceChanges.EVERYTHING)) {
            wakeAll();
            return;
        }
        for (String change : payload.split(",")) {
            try {
                wake(UUID.fromString(change.strip()));
            } catch (IllegalArgumentException malformed) {
                // Not ours, or garbled.
            }
        }
    }

    /** Changes committed on this replica: its own watchers need not wait for the NOTIFY round trip. */
    void onChanged(java.util.Collection<UUID> accounts) {
        accounts.forEach(this::wake);
    }

    private void wake(UUID account) {
        Set<Watcher> set = watchers.get(account);
        if (set != null) {
            set.forEach(Watcher::wake);
        }
    }

    /** Wakes every watcher: after the listener reconnects, when notifications may have been missed. */
    void wakeAll() {
        watchers.values().forEach(set -> set.forEach(Watcher::wake));
    }

}
