package io.paystream.stream;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.SmartLifecycle;
import org.springframework.r2dbc.core.DatabaseClient;
import org.springframework.stereotype.Component;
import reactor.core.Disposable;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * Announces committed balance changes: at once to this replica's watchers, and, coalesced every
 * {@value #FLUSH_MS} ms, to every replica with one NOTIFY of the accounts that changed.
 *
 * <p>Why not NOTIFY inside the money transaction (a trigger)? A transaction that notified takes a
 * database-wide lock at commit, so all of them commit one at a time: measured with pgbench on the
 * transfer transaction, throughput fell to about half ({@code bench/notify/run.sh}). Notifying after
 * commit, from here, keeps money commits parallel. The price is that a replica dying between COMMIT
 * and the next flush loses those hints; a hint is only a wake-up, the ledger is the truth, and every
 * watcher also checks the ledger on its own every {@code paystream.streams.safety-check}, so such a
 * change still arrives, late, never lost.
 */
@Component
public class BalanceChanges implements SmartLifecycle {

    private static final Logger log = LoggerFactory.getLogger(BalanceChanges.class);

    static final long FLUSH_MS = 10;
    /** Accounts per NOTIFY: 37 bytes each, well under PostgreSQL's 8000-byte payload limit. */
    private static final int ACCOUNTS_PER_NOTIFY = 150;
    /** Beyond this many pending accounts, announce "everything changed" instead of a huge list. */
    private static final int MAX_PENDING = 50_000;
    static final String EVERYTHING = "*";

    private final DatabaseClient db;
    private final BalanceHub hub;
    private final Set<UUID> pending = ConcurrentHashMap.newKeySet();
    private final AtomicBoolean overflow = new AtomicBoolean();
    private volatile Disposable flusher;

    BalanceChanges(DatabaseClient db, BalanceHub hub) {
        this.db = db;
        this.hub = hub;
    }

    /** Called after a money movement committed, with the accounts whose balance rows it wrote. */
    public void committed(Collection<UUID> accounts) {
        if (accounts.isEmpty()) {
            return;
        }
        // The hub reads the changes on its own thread, never inside this movement's completion.
        hub.changed(accounts);
        if (pending.size() + accounts.size() > MAX_PENDING) {
            overflow.set(true);
        } else {
            pending.addAll(accounts);
        }
    }

    private Mono<Void> flush() {
        List<String> payloads = new ArrayList<>();
        if (overflow.getAndSet(false)) {
            pending.clear();
            payloads.add(EVERYTHING);
        } else {
            StringBuilder payload = new StringBuilder();
            int inPayload = 0;
            for (Iterator<UUID> it = pending.iterator(); it.hasNext(); ) {
                UUID account = it.next();
                it.remove();
                payload.append(inPayload == 0 ? "" : ",").append(account);
                if (++inPayload == ACCOUNTS_PER_NOTIFY) {
                    payloads.add(payload.toString());
                    payload.setLength(0);
                    inPayload = 0;
                }
            }
            if (inPayload > 0) {
                payloads.add(payload.toString());
            }
        }
        return Flux.fromIterable(payloads)
                .concatMap(payload -> db.sql("SELECT pg_notify(:channel, :payload)")
                        .bind("channel", BalanceListener.CHANNEL).bind("payload", payload).then())
                .then();
    }

    @Override
    public void start() {
        flusher = Flux.interval(Duration.ofMillis(FLUSH_MS))
                .onBackpressureDrop()
                .concatMap(tick -> flush().onErrorResume(error -> {
                    // Hints only: watchers catch up through their own checks of the ledger.
                    log.warn("Could not announce balance changes: {}", error.toString());
                    return Mono.empty();
                }), 1)
                .subscribe();
    }

    @Override
    public void stop() {
        Disposable current = flusher;
        if (current != null) {
            current.dispose();
        }
        flusher = null;
    }

    @Override
    public boolean isRunning() {
        return flusher != null;
    }
}
