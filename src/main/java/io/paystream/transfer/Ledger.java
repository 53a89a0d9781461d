package io.paystream.transfer;

import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Function;
import java.util.function.Supplier;

import io.paystream.idempotency.IdempotencyKey;
import io.paystream.idempotency.IdempotencyKeys;
import io.paystream.idempotency.StoredResponse;
import io.paystream.security.Caller;
import io.paystream.system.ApiException;
import io.paystream.system.Problem;
import io.paystream.stream.BalanceChanges;
import io.paystream.system.ProblemExceptionHandler;
import io.r2dbc.spi.Readable;
import org.springframework.r2dbc.core.DatabaseClient;
import org.springframework.r2dbc.core.DatabaseClient.GenericExecuteSpec;
import org.springframework.stereotype.Service;
import org.springframework.transaction.ReactiveTransactionManager;
import org.springframework.transaction.TransactionDefinition;
import org.springframework.transaction.reactive.TransactionalOperator;
import org.springframework.transaction.support.DefaultTransactionDefinition;
import reactor.core.publisher.Mono;
import reactor.util.context.Context;
import reactor.util.retry.RetryBackoffSpec;
import tools.jackson.databind.json.JsonMapper;

/**
 * How money moves. Read this class top to bottom.
 *
 * <p>Every money movement (transfer, deposit, withdrawal, hold, capture, void, batch, reversal) is
 * one database transaction, run by {@link #run}:
 * <ol>
 * <li><b>Claim the idempotency key</b>: a second request with the same key while this one is in
 * flight gets 409; one that already completed gets its stored response back, byte for byte.</li>
 * <li><b>Lock</b> the account rows the movement touches with {@code SELECT ... FOR NO KEY UPDATE}, in
 * ascending id order, in one statement ({@link #lockAccounts}). One order for everyone means crossing
 * movements (A to B while B to A) queue instead of deadlocking. {@code FOR NO KEY UPDATE}, not
 * {@code FOR UPDATE}: a movement never changes an account's key, and the weaker lock does not block
 * the foreign-key checks ({@code FOR KEY SHARE}) of concurrent inserts that merely reference it.</li>
 * <li><b>Check and write</b> in one statement ({@link #post}): read the head of each account's
 * balance chain, check funds and limits, and insert the transaction row and one balance row per side
 * only if allowed. It returns the verdict, so a refusal costs no extra round trip.</li>
 * <li><b>Record the response</b> with the idempotency key, then <b>commit</b>. A deferred trigger
 * checks at commit that each transaction is balanced (one debit of -amount, one credit of +amount).</li>
 * </ol>
 *
 * <p>Isolation is chosen per mode, on purpose. Pessimistic runs at READ COMMITTED: every statement
 * takes a fresh snapshot, so the read in step 3 sees everything committed by whoever held the lock
 * before us. (Under REPEATABLE READ or SERIALIZABLE the snapshot would be taken by the first
 * statement, before the lock wait, and the head read after the wait could be stale.) Optimistic takes
 * no locks and runs at SERIALIZABLE: PostgreSQL turns a conflicting concurrent movement into 40001.
 * An optimistic movement that lost a race, or that names an account that lately lost one, runs its
 * attempts as a pessimistic one does ({@link Contention}), so a hot account is not a retry storm.
 * In both modes the chain's {@code UNIQUE(account_id, version)} is the backstop: a stale head can only
 * ever produce a duplicate version, which is refused (23505) and retried, never a wrong balance.
 *
 * <p>The whole unit, not a statement inside it, is retried on 40001, 40P01 and the unique keys that
 * mean "lost a race" ({@link LedgerRetry}). Each attempt is a new transaction; a failed one is rolled
 * back whole.
 *
 * <p>Transfers that arrive together share one transaction, each with its own outcome: the same steps,
 * for many at once ({@link TransferGroups}, run by {@link #runGroup}).
 */
@Service
class Ledger {

    /** 10^15 minor units: ten trillion euros. Far from bigint's limit, so sums cannot overflow. */
    static final long MAX_AMOUNT_MINOR = 1_000_000_000_000_000L;

    /**
     * No balance may leave [-10^18, 10^18]: with amounts capped at 10^15, a balance near that bound
     * is a runaway, and refusing it keeps every sum far from bigint overflow.
     */
    static final long MAX_BALANCE_MAGNITUDE = 1_000_000_000_000_000_000L;

    /**
     * Step 2. The accounts a movement names, plus, for a deposit or withdrawal, its currency's system
     * account. ORDER BY id happens below the row locking, so the rows are locked in ascending id
     * order. The optimistic mode runs the same read without the locking clause.
     */
    private static final String SELECT_ACCOUNTS = """
            SELECT id, currency, kind, allow_negative, owner_id
              FROM accounts
             WHERE id = ANY(:ids) OR (:withWorld AND kind = 'system' AND currency = :currency)
             ORDER BY id""";

    static final String LOCK_CLAUSE = "\n   FOR NO KEY UPDATE";

    private static final String LOCK_ACCOUNTS = SELECT_ACCOUNTS + LOCK_CLAUSE;

    /**
     * Steps 1 and 2 in one round trip, for units that know up front which accounts they lock
     * (transfers, deposits, withdrawals): claim the key, and only if it is ours and unanswered, lock
     * the accounts in ascending id order. The claim is evaluated once, first (the locking part
     * depends on it), so a request whose key is in flight elsewhere or already answered takes no row
     * lock and waits for nobody. One row per locked account, or one row with no account when the
     * claim says no.
     */
    private static final String CLAIM_AND_SELECT_ACCOUNTS = """
            WITH claim AS MATERIALIZED %s,
            locked AS MATERIALIZED (
                SELECT id, currency, kind, allow_negative, owner_id
                  FROM accounts
                 WHERE (SELECT c.claimed AND c.fingerprint IS NULL FROM claim c)
                   AND (id = ANY(:ids) OR (:withWorld AND kind = 'system' AND currency = :currency))
                 ORDER BY id%s
            )
            SELECT c.claimed, c.fingerprint, c.status_code, c.location, c.response_body,
                   l.id, l.currency, l.kind, l.allow_negative, l.owner_id
              FROM claim c LEFT JOIN locked l ON true""";

    /**
     * Step 3, in one round trip: read both chain heads, decide, and (only if allowed) insert the
     * transaction and its two balance rows, plus a capture's hold outcome. The final SELECT returns
     * the verdict either way. {@code available = balance - held}; a capture releases its hold
     * ({@code debitHeldDelta < 0}) in the same balance row that pays it.
     */
    private static final String CHECK_AND_POST = """
            WITH sides (account_id, delta, held_delta) AS (
                VALUES (CAST(:debit AS uuid), -CAST(:amount AS bigint), CAST(:debitHeldDelta AS bigint)),
                       (CAST(:credit AS uuid), CAST(:amount AS bigint), CAST(0 AS bigint))
            ),
            head AS (
                -- The latest link of each chain: one backward probe of the (account_id, version) key,
                -- the same cost with ten entries as with ten million.
                SELECT s.account_id, s.delta, s.held_delta,
                       coalesce(b.version, 0) AS version,
                       coalesce(b.balance, 0) AS balance,
                       coalesce(b.held, 0) AS held,
                       b.created_at
                  FROM sides s
                  LEFT JOIN LATERAL (
                       SELECT version, balance, held, created_at
                         FROM balances
                        WHERE account_id = s.account_id
                        ORDER BY version DESC
                        LIMIT 1) b ON true
            ),
            verdict AS (
                SELECT (SELECT h.balance + h.delta - h.held - h.held_delta >= 0 FROM head h WHERE h.account_id = :debit)
                           OR :debitMayGoNegative AS funded,
                       CAST(:dailyDepositLimit AS bigint) IS NULL
                           OR (SELECT coalesce(sum(t.amount), 0)
                                 FROM transactions t
                                WHERE t.type = 'deposit' -- today's, by transactions_deposits_by_account;
                                  AND t.credit_account_id = :credit -- a stable clock bounds that index scan
                                  AND t.created_at >= date_trunc('day', statement_timestamp() AT TIME ZONE 'UTC')
                                                      AT TIME ZONE 'UTC')
                              + :amount <= :dailyDepositLimit
                           AS within_deposit_limit,
                       (SELECT bool_and(abs(h.balance + h.delta) <= :maxBalance) FROM head h) AS within_bounds,
                       -- Time never runs backwards along a chain, even if the clock does.
                       greatest(clock_timestamp(), (SELECT max(h.created_at) FROM head h)) AS at
            ),
            tx AS (
                INSERT INTO transactions (type, debit_account_id, credit_account_id, amount, currency,
                                          description, metadata, reversal_of, hold_id, created_at)
                SELECT :type, :debit, :credit, :amount, :currency, :description, CAST(:metadata AS jsonb),
                       CAST(:reversalOf AS uuid), CAST(:holdId AS uuid), v.at
                  FROM verdict v
                 WHERE v.funded AND v.within_deposit_limit AND v.within_bounds
                RETURNING id, created_at
            ),
            entries AS (
                INSERT INTO balances (account_id, version, delta, balance, held_delta, held, currency,
                                      transaction_id, hold_id, created_at)
                SELECT h.account_id, h.version + 1, h.delta, h.balance + h.delta, h.held_delta, h.held + h.held_delta,
                       :currency, tx.id, CASE WHEN h.held_delta <> 0 THEN CAST(:holdId AS uuid) END, tx.created_at
                  FROM head h CROSS JOIN tx
                 -- Rows go in in ascending account order, so that where two movements wait on each
                 -- other's uncommitted chain versions (the optimistic mode takes no row locks), they
                 -- wait in one global order and cannot deadlock.
                 ORDER BY h.account_id
                RETURNING account_id
            ),
            outcome AS (
                INSERT INTO hold_events (hold_id, status, captured_amount, transaction_id, created_at)
                SELECT CAST(:holdId AS uuid), 'posted', :amount, tx.id, tx.created_at
                  FROM tx
                 WHERE CAST(:holdId AS uuid) IS NOT NULL
            )
            SELECT v.funded, v.within_deposit_limit, v.within_bounds, tx.id, tx.created_at,
                   (SELECT count(*) FROM entries) AS entry_count
              FROM verdict v LEFT JOIN tx ON true""";

    private final DatabaseClient db;
    private final JsonMapper json;
    private final LedgerProperties properties;
    private final IdempotencyKeys idempotencyKeys;
    private final BalanceChanges balanceChanges;
    private final TransactionalOperator transactions;
    private final TransactionalOperator lockingTransactions;
    private final String claimAndSelectAccounts;
    private final String claimAndLockAccounts;
    private final Contention contention = new Contention();
    private final RetryBackoffSpec retry;
    private final boolean pessimistic;
    private final LedgerMetrics metrics;

    Ledger(DatabaseClient db, JsonMapper json, ReactiveTransactionManager transactionManager,
            LedgerProperties properties, IdempotencyKeys idempotencyKeys, BalanceChanges balanceChanges,
            LedgerMetrics metrics) {
        this.db = db;
        this.json = json;
        this.properties = properties;
        this.idempotencyKeys = idempotencyKeys;
        this.balanceChanges = balanceChanges;
        this.pessimistic = properties.concurrencyMode() == ConcurrencyMode.PESSIMISTIC;
        this.lockingTransactions = operator(transactionManager, TransactionDefinition.ISOLATION_READ_COMMITTED);
        this.transactions = pessimistic ? lockingTransactions
                : operator(transactionManager, TransactionDefinition.ISOLATION_SERIALIZABLE);
        this.claimAndSelectAccounts = CLAIM_AND_SELECT_ACCOUNTS.formatted(IdempotencyKeys.CLAIM_SUBQUERY, "");
        this.claimAndLockAccounts = CLAIM_AND_SELECT_ACCOUNTS.formatted(IdempotencyKeys.CLAIM_SUBQUERY, LOCK_CLAUSE);
        this.retry = LedgerRetry.spec(properties.retry(), metrics::retried);
        this.metrics = metrics;
    }

    private static TransactionalOperator operator(ReactiveTransactionManager transactionManager, int isolation) {
        DefaultTransactionDefinition definition = new DefaultTransactionDefinition();
        definition.setIsolationLevel(isolation);
        definition.setName("paystream-movement");
        return TransactionalOperator.create(transactionManager, definition);
    }

    /** What a unit of work answers: a status, a Location (or null) and a body to send as JSON. */
    record Reply(int status, String location, Object body) {
    }

    // Step 1, and the frame around all steps -------------------------------------------------

    /**
     * Runs one unit of work as one transaction, retried whole, guarded by an idempotency key.
     *
     * <p>A refusal about the request (404, 409 hold_not_pending, 422) is an answer like any other: it
     * is stored with the key and the transaction commits, so a replay is refused the same way, even
     * after the account has been funded. Every unit refuses before it writes anything to the ledger,
     * so committing a refusal commits only the key.
     */
    Mono<StoredResponse> run(IdempotencyKey key, String path, Supplier<Mono<Reply>> work) {
        return run(transactions, key, path, work);
    }

    /** The accounts a unit locks before anything else: those named, and a currency's system account. */
    record Locks(Collection<UUID> ids, String worldCurrency) {

        /** These accounts as {@link Contention} knows them. */
        List<Object> contentionKeys() {
            List<Object> keys = new ArrayList<>(ids);
            if (worldCurrency != null) {
                keys.add(Contention.world(worldCurrency));
            }
            return keys;
        }
    }

    /**
     * As {@link #run}, for a unit that names its accounts up front: the key is claimed and the accounts
     * locked in one statement, and the unit gets the locked rows. One round trip less per movement.
     */
    Mono<StoredResponse> run(IdempotencyKey key, String path, Locks locks, Function<List<AccountRow>, Mono<Reply>> work) {
        return attempts(transactions, locks::contentionKeys, locking -> claimAndLock(key, locks, locking)
                .flatMap(claim -> claim.refusalOrReplay() != null ? claim.refusalOrReplay()
                        : execute(key, path, () -> work.apply(claim.accounts()))));
    }

    private record ClaimAndLock(Mono<StoredResponse> refusalOrReplay, List<AccountRow> accounts) {
    }

    /** One row of {@link #CLAIM_AND_SELECT_ACCOUNTS}: the claim, repeated, and one locked account (or none). */
    private record ClaimRow(IdempotencyKeys.Claim claim, AccountRow account) {
    }

    private Mono<ClaimAndLock> claimAndLock(IdempotencyKey key, Locks locks, boolean locking) {
        String sql = locking ? claimAndLockAccounts : claimAndSelectAccounts;
        Mono<ClaimAndLock> claimed = bindAccounts(IdempotencyKeys.bindClaim(db.sql(sql), key),
                        locks.ids(), locks.worldCurrency())
                .map(row -> new ClaimRow(IdempotencyKeys.Claim.of(row),
                        row.get("id", UUID.class) == null ? null : AccountRow.of(row)))
                .all()
                .collectList()
                .map(rows -> {
                    IdempotencyKeys.Claim claim = rows.get(0).claim(); // the claim always answers one row at least
                    if (!claim.runs()) {
                        return new ClaimAndLock(claim.resolve(key), List.of());
                    }
                    List<AccountRow> accounts = new ArrayList<>(rows.size());
                    for (ClaimRow row : rows) {
                        if (row.account() != null) {
                            accounts.add(row.account());
                        }
                    }
                    accounts.sort(Comparator.comparing(AccountRow::id));
                    return new ClaimAndLock(null, accounts);
                });
        return locking ? metrics.lockWait("accounts", claimed) : claimed;
    }

    /**
     * As {@link #run}, but always with row locks at READ COMMITTED, whatever the mode. For units that
     * write many chains in an order set by the client (batches): without locks taken up front in one
     * global order, their waits on each other's uncommitted chain versions could form cycles.
     */
    Mono<StoredResponse> runLocked(IdempotencyKey key, String path, Supplier<Mono<Reply>> work) {
        return run(lockingTransactions, key, path, work);
    }

    private Mono<StoredResponse> run(TransactionalOperator operator, IdempotencyKey key, String path,
            Supplier<Mono<Reply>> work) {
        return attempts(operator, List::of, locking -> idempotencyKeys.claim(key)
                .switchIfEmpty(Mono.defer(() -> execute(key, path, work))));
    }

    /**
     * Runs a unit that writes many chains for many clients at once (a group of transfers,
     * {@link TransferGroups}): always with row locks at READ COMMITTED, whatever the mode, each attempt
     * one transaction, retried whole, announced once committed. The unit claims its own keys.
     */
    <T> Mono<T> runGroup(Supplier<Mono<T>> unit) {
        return attempts(lockingTransactions, List::of, locking -> Mono.defer(unit));
    }

    /** Runs one unit of work that answers no client (the hold expiry sweeper), with the same frame. */
    <T> Mono<T> runInternal(Supplier<Mono<T>> work) {
        return attempts(transactions, List::of, locking -> Mono.defer(work));
    }

    /**
     * The frame of every unit: one transaction per attempt, retried whole. The timeout bounds the work
     * inside the transaction, not its COMMIT: a unit cut short is rolled back, so a timeout never hides
     * a committed movement. Once an attempt has committed, the accounts it wrote are announced to
     * balance streams; a failed attempt's are forgotten with it.
     *
     * <p>{@code unit} is told whether its attempt takes row locks. Pessimistic attempts always do. An
     * optimistic unit's attempt does once the unit has lost a race, or from the first attempt when
     * {@code named} (the accounts it names up front) lately lost one ({@link Contention}); such an
     * attempt runs as a pessimistic one does, at READ COMMITTED after its locks. Mixing the two on one
     * account is safe: each new chain version is computed from the head it read, and the chain's
     * UNIQUE(account_id, version) refuses a second successor of any head, so a stale read can only lose
     * and run again, in either mode.
     */
    private <T> Mono<T> attempts(TransactionalOperator operator, Supplier<Collection<Object>> named,
            Function<Boolean, Mono<T>> unit) {
        // defer: every retry builds a fresh unit and so runs in a fresh transaction.
        if (operator == lockingTransactions) { // pessimistic, or a unit that always locks: nothing to escalate
            return Mono.defer(() -> attempt(lockingTransactions, true, unit, null)).retryWhen(retry);
        }
        Collection<Object> upFront = named.get();
        // Every account the unit named, up front or when it locked them (lockAccounts adds its own).
        Set<Object> accounts = ConcurrentHashMap.newKeySet();
        accounts.addAll(upFront);
        AtomicBoolean escalated = new AtomicBoolean();
        return Mono.defer(() -> {
            if (!escalated.get() && contention.anyContended(upFront)) {
                escalated.set(true);
                metrics.escalated(LedgerMetrics.Escalation.REMEMBERED);
            }
            boolean locking = escalated.get();
            if (locking) {
                contention.stillBusy(accounts);
            }
            return attempt(locking ? lockingTransactions : operator, locking, unit, accounts);
        }).doOnError(failure -> {
            if (LedgerRetry.isLostRace(failure)) {
                contention.lostRace(accounts);
                if (!escalated.getAndSet(true)) {
                    metrics.escalated(LedgerMetrics.Escalation.LOST_RACE);
                }
            }
        }).retryWhen(retry);
    }

    /** One attempt: one transaction; {@code named} collects the accounts it names (null: nobody asks). */
    private <T> Mono<T> attempt(TransactionalOperator operator, boolean locking, Function<Boolean, Mono<T>> unit,
            Set<Object> named) {
        Set<UUID> touched = ConcurrentHashMap.newKeySet();
        Context context = named == null ? Context.of(TOUCHED, touched, LOCKING, locking)
                : Context.of(TOUCHED, touched, LOCKING, locking, NAMED, named);
        return metrics.transaction(operator.transactional(unit.apply(locking).timeout(properties.attemptTimeout())))
                .contextWrite(context)
                .doOnSuccess(result -> balanceChanges.committed(touched));
    }

    /** Where the current attempt collects the accounts whose balance rows it wrote. */
    private static final String TOUCHED = Ledger.class.getName() + ".touched";
    /** Whether the current attempt takes row locks (a Boolean). */
    private static final String LOCKING = Ledger.class.getName() + ".locking";
    /** Where the current unit collects the accounts it named (for {@link Contention}). */
    private static final String NAMED = Ledger.class.getName() + ".named";

    /** Notes, once {@code write} has succeeded, that it wrote balance rows of these accounts. */
    static <T> Mono<T> touching(Mono<T> write, UUID... accounts) {
        return write.flatMap(result -> Mono.deferContextual(context -> {
            context.<Set<UUID>>getOrEmpty(TOUCHED).ifPresent(set -> set.addAll(List.of(accounts)));
            return Mono.just(result);
        }));
    }

    private Mono<StoredResponse> execute(IdempotencyKey key, String path, Supplier<Mono<Reply>> work) {
        return work.get()
                .map(this::stored)
                .onErrorResume(ApiException.class, refusal -> refusal.isStoredWithIdempotencyKey()
                        ? Mono.just(stored(refusal, path))
                        : Mono.error(refusal))
                .flatMap(response -> idempotencyKeys.record(key, response).thenReturn(response));
    }

    /** A unit's reply as it is sent and stored with its key: the body as JSON, byte for byte. */
    StoredResponse stored(Reply reply) {
        return StoredResponse.of(reply.status(), reply.location(), json.writeValueAsBytes(reply.body()));
    }

    /** A refusal as it is sent and stored with its key (for those {@link ApiException#isStoredWithIdempotencyKey}). */
    StoredResponse stored(ApiException refusal, String path) {
        return StoredResponse.of(refusal.problem().status().value(), null,
                json.writeValueAsBytes(ProblemExceptionHandler.body(refusal, path)));
    }

    boolean isPessimistic() {
        return pessimistic;
    }

    // Step 2 -----------------------------------------------------------------------------------

    record AccountRow(UUID id, String currency, String kind, boolean allowNegative, UUID ownerId) {

        /** From the columns {@code id, currency, kind, allow_negative, owner_id} of {@code accounts}. */
        static AccountRow of(Readable row) {
            return new AccountRow(row.get("id", UUID.class), row.get("currency", String.class),
                    row.get("kind", String.class), Boolean.TRUE.equals(row.get("allow_negative", Boolean.class)),
                    row.get("owner_id", UUID.class));
        }

        boolean isSystem() {
            return "system".equals(kind);
        }
    }

    /**
     * Locks (pessimistic) or reads (optimistic) the named accounts, and the system account of
     * {@code worldCurrency} if it is not null, in ascending id order.
     */
    Mono<List<AccountRow>> lockAccounts(Collection<UUID> ids, String worldCurrency) {
        return Mono.deferContextual(context -> {
            context.<Set<Object>>getOrEmpty(NAMED)
                    .ifPresent(named -> named.addAll(new Locks(ids, worldCurrency).contentionKeys()));
            boolean locking = context.<Boolean>getOrDefault(LOCKING, pessimistic);
            return selectAccounts(locking ? LOCK_ACCOUNTS : SELECT_ACCOUNTS, ids, worldCurrency);
        });
    }

    /** Locks the named accounts in ascending id order, whatever the mode (for {@link #runLocked}). */
    Mono<List<AccountRow>> lockAccountsAlways(Collection<UUID> ids) {
        return selectAccounts(LOCK_ACCOUNTS, ids, null);
    }

    /** The parameters of the accounts a unit locks: {@code :ids}, {@code :withWorld}, {@code :currency}. */
    private static GenericExecuteSpec bindAccounts(GenericExecuteSpec statement, Collection<UUID> ids, String worldCurrency) {
        return statement.bind("ids", ids.toArray(UUID[]::new))
                .bind("withWorld", worldCurrency != null)
                .bind("currency", worldCurrency == null ? "" : worldCurrency);
    }

    private Mono<List<AccountRow>> selectAccounts(String sql, Collection<UUID> ids, String worldCurrency) {
        Mono<List<AccountRow>> rows = bindAccounts(db.sql(sql), ids, worldCurrency)
                .map(AccountRow::of)
                .all()
                .collectList();
        return sql.endsWith(LOCK_CLAUSE) ? metrics.lockWait("accounts", rows) : rows;
    }

    /**
     * The account a movement debits: the caller's own (an admin's: any), checked to fit a movement in
     * {@code currency}. Someone else's account answers exactly as a missing one does.
     */
    static AccountRow debitAccount(UUID id, String currency, List<AccountRow> accounts, Caller caller) {
        AccountRow account = accounts.stream().filter(a -> a.id().equals(id) && caller.owns(a.ownerId())).findFirst()
                .orElseThrow(() -> accountNotFound(id));
        return userAccount(account, currency);
    }

    /**
     * The account a movement credits: any user account of the same currency (paying someone). A client
     * learns nothing about an account it does not own: missing, of another currency or a system
     * account, it answers 404 all the same.
     */
    static AccountRow creditAccount(UUID id, String currency, List<AccountRow> accounts, Caller caller) {
        AccountRow account = accounts.stream().filter(a -> a.id().equals(id)).findFirst()
                .orElseThrow(() -> accountNotFound(id));
        if (!caller.owns(account.ownerId()) && (account.isSystem() || !account.currency().equals(currency))) {
            throw accountNotFound(id);
        }
        return userAccount(account, currency);
    }

    static ApiException accountNotFound(UUID id) {
        return new ApiException(Problem.ACCOUNT_NOT_FOUND, "No account " + id);
    }

    private static AccountRow userAccount(AccountRow account, String currency) {
        UUID id = account.id();
        if (account.isSystem()) {
            throw new ApiException(Problem.SYSTEM_ACCOUNT_NOT_ALLOWED,
                    "Account " + id + " is a system account; money reaches it only through deposits and withdrawals");
        }
        if (!account.currency().equals(currency)) {
            throw new ApiException(Problem.CURRENCY_MISMATCH,
                    "Account " + id + " holds " + account.currency() + ", not " + currency);
        }
        return account;
    }

    /** The currency's system account: it exists as soon as any account in that currency does. */
    static AccountRow world(String currency, List<AccountRow> accounts) {
        return accounts.stream().filter(a -> a.isSystem() && a.currency().equals(currency)).findFirst()
                .orElseThrow(() -> new IllegalStateException("no system account for " + currency));
    }

    // Step 3 -----------------------------------------------------------------------------------

    /**
     * One posting: money from {@code debit} to {@code credit}. {@code debitHeldDelta} is 0, or minus
     * the hold a capture releases ({@code holdId} then names it); {@code reversalOf} names the
     * transfer a reversal mirrors.
     */
    record Posting(MovementType type, AccountRow debit, AccountRow credit, long amount, String currency,
            String description, Map<String, String> metadata, long debitHeldDelta, UUID holdId, UUID reversalOf) {

        static Posting of(MovementType type, AccountRow debit, AccountRow credit, long amount, String currency,
                String description, Map<String, String> metadata) {
            return new Posting(type, debit, credit, amount, currency, description, metadata, 0, null, null);
        }
    }

    Mono<Transfer> post(Posting posting) {
        Long depositLimit = posting.type() == MovementType.DEPOSIT ? properties.dailyDepositLimitOrNull() : null;
        Map<String, String> metadata = posting.metadata() == null ? Map.of() : posting.metadata();
        GenericExecuteSpec statement = db.sql(CHECK_AND_POST)
                .bind("type", posting.type().sql())
                .bind("debit", posting.debit().id())
                .bind("credit", posting.credit().id())
                .bind("amount", posting.amount())
                .bind("currency", posting.currency())
                .bind("debitMayGoNegative", posting.debit().allowNegative())
                .bind("debitHeldDelta", posting.debitHeldDelta())
                .bind("maxBalance", MAX_BALANCE_MAGNITUDE)
                .bind("metadata", json.writeValueAsString(metadata));
        statement = bindOrNull(statement, "dailyDepositLimit", depositLimit, Long.class);
        statement = bindOrNull(statement, "description", posting.description(), String.class);
        statement = bindOrNull(statement, "reversalOf", posting.reversalOf(), UUID.class);
        statement = bindOrNull(statement, "holdId", posting.holdId(), UUID.class);
        return touching(statement
                .map(row -> new Verdict(Boolean.TRUE.equals(row.get("funded", Boolean.class)),
                        Boolean.TRUE.equals(row.get("within_deposit_limit", Boolean.class)),
                        Boolean.TRUE.equals(row.get("within_bounds", Boolean.class)),
                        row.get("id", UUID.class), row.get("created_at", Instant.class),
                        row.get("entry_count", Long.class)))
                .one()
                .map(verdict -> toTransfer(posting, metadata, verdict)), posting.debit().id(), posting.credit().id());
    }

    static <T> GenericExecuteSpec bindOrNull(GenericExecuteSpec statement, String name, T value, Class<T> type) {
        return value == null ? statement.bindNull(name, type) : statement.bind(name, value);
    }

    private record Verdict(boolean funded, boolean withinDepositLimit, boolean withinBounds, UUID transactionId,
            Instant createdAt, Long entryCount) {
    }

    private static Transfer toTransfer(Posting posting, Map<String, String> metadata, Verdict verdict) {
        if (!verdict.funded()) {
            throw insufficientFunds(posting.debit().id(), posting.amount());
        }
        if (!verdict.withinDepositLimit()) {
            throw new ApiException(Problem.DEPOSIT_LIMIT_EXCEEDED,
                    "This deposit would exceed the account's daily deposit limit");
        }
        if (!verdict.withinBounds()) {
            throw new ApiException(Problem.BALANCE_LIMIT_EXCEEDED,
                    "This movement would take a balance beyond " + MAX_BALANCE_MAGNITUDE + " minor units");
        }
        // Pair assertion: the statement said it posted; it must have written exactly both sides.
        if (verdict.transactionId() == null || verdict.entryCount() == null || verdict.entryCount() != 2) {
            throw new IllegalStateException("posting wrote " + verdict.entryCount() + " balance rows, expected 2");
        }
        return new Transfer(verdict.transactionId(), posting.type().sql(), Transfer.POSTED, posting.debit().id(),
                posting.credit().id(), posting.amount(), posting.currency(), posting.description(), metadata,
                posting.reversalOf(), posting.holdId(), verdict.createdAt());
    }

    static ApiException insufficientFunds(UUID account, long amount) {
        return new ApiException(Problem.INSUFFICIENT_FUNDS,
                "Account " + account + " has insufficient available funds for " + amount);
    }
}
