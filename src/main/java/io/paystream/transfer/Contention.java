package io.paystream.transfer;

import java.time.Duration;
import java.util.Collection;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import com.github.benmanes.caffeine.cache.Ticker;

/**
 * The optimistic mode's memory of where it lately lost races. A movement that lost one (40001, or a
 * chain version taken under it) runs its next attempts with row locks; and a movement that names an
 * account remembered here takes the locks from its first attempt. So on a hot account optimistic
 * movements queue on the lock, as pessimistic ones do, instead of each round of contenders wasting
 * all but one of their transactions; on accounts nobody contends they keep taking no locks.
 *
 * <p>Keys are account ids, and {@link #world} for a currency's system account (a deposit or
 * withdrawal does not know that account's id before its first statement).
 */
final class Contention {

    /**
     * How long an account is remembered after its last lost race, or its last locked movement while
     * remembered. Long enough to span the gaps between movements on a busy account (so a hot account
     * stays locked while it is hot), short enough that an account contended once returns to taking no
     * locks a second after its traffic calms down.
     */
    static final Duration MEMORY = Duration.ofSeconds(1);

    /** Bounds the memory: beyond this many the least recently marked are forgotten (they lock less, no harm). */
    static final int MAX_KEYS = 10_000;

    /** The key of a currency's system account. */
    record World(String currency) {
    }

    static Object world(String currency) {
        return new World(currency);
    }

    private final Cache<Object, Boolean> recent;

    Contention() {
        this(Ticker.systemTicker());
    }

    /** With a given clock (tests). */
    Contention(Ticker ticker) {
        this.recent = Caffeine.newBuilder()
                .ticker(ticker)
                .expireAfterWrite(MEMORY)
                .maximumSize(MAX_KEYS)
                .executor(Runnable::run) // its bookkeeping is tiny; no hop to another pool
                .build();
    }

    /** Whether any of these accounts lately lost a race. */
    boolean anyContended(Collection<?> keys) {
        for (Object key : keys) {
            if (recent.getIfPresent(key) != null) {
                return true;
            }
        }
        return false;
    }

    /** A movement naming these accounts lost a race: remember all of them (which one it was, nobody knows). */
    void lostRace(Collection<?> keys) {
        for (Object key : keys) {
            recent.put(key, Boolean.TRUE);
        }
    }

    /**
     * A locked movement ran on these accounts: keep remembering those already remembered (they are
     * still busy), without spreading the mark to the others it touched.
     */
    void stillBusy(Collection<?> keys) {
        for (Object key : keys) {
            if (recent.getIfPresent(key) != null) {
                recent.put(key, Boolean.TRUE);
            }
        }
    }
}
