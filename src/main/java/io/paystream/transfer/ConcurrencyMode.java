package io.paystream.transfer;

/**
 * How concurrent movements on one account are kept apart.
 *
 * <ul>
 * <li>{@code PESSIMISTIC} (default): lock the accounts' rows in ascending id order, then read and
 * write at READ COMMITTED. Contending movements queue on the lock; none is wasted.</li>
 * <li>{@code OPTIMISTIC}: take no row locks; run at SERIALIZABLE and let PostgreSQL detect a
 * conflicting concurrent movement (40001), or the chain's unique version catch it (23505), and retry.
 * Cheaper when movements rarely touch the same accounts. Where they do, it would waste all but one
 * transaction of every round, so it escalates ({@link Contention}): a movement that lost a race
 * retries with row locks, and for a second after, movements on the accounts it named take them from
 * their first attempt.</li>
 * </ul>
 */
enum ConcurrencyMode {
    PESSIMISTIC,
    OPTIMISTIC
}
