package io.paystream.transfer;

import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import io.paystream.system.ApiException;
import io.paystream.system.Problem;
import org.springframework.r2dbc.core.DatabaseClient;
import org.springframework.r2dbc.core.DatabaseClient.GenericExecuteSpec;
import org.springframework.stereotype.Service;
import org.springframework.transaction.ReactiveTransactionManager;
import org.springframework.transaction.TransactionDefinition;
import org.springframework.transaction.reactive.TransactionalOperator;
import org.springframework.transaction.support.DefaultTransactionDefinition;
import reactor.core.publisher.Mono;
import reactor.util.retry.RetryBackoffSpec;
import tools.jackson.databind.json.JsonMapper;

/**
 * How money moves. Read this class top to bottom.
 *
 * <p>Every movement (transfer, deposit, withdrawal) is one database transaction, run by a
 * {@link TransactionalOperator}:
 * <ol>
 * <li><b>Lock</b> the account rows it touches with {@code SELECT ... FOR NO KEY UPDATE}, in ascending
 * id order, in one statement. One order for everyone means crossing movements (A to B while B to A)
 * queue instead of deadlocking. {@code FOR NO KEY UPDATE}, not {@code FOR UPDATE}: the movement never
 * changes an account's key, and the weaker lock does not block the foreign-key checks
 * ({@code FOR KEY SHARE}) of concurrent inserts that merely reference the account.</li>
 * <li><b>Check and write</b> in one statement: read the head of each account's balance chain, check
 * funds and limits, insert the transaction row and one balance row per side. It returns the verdict,
 * so a refusal costs no extra round trip.</li>
 * <li><b>Commit</b>. A deferred trigger checks, at commit, that the transaction is balanced (one debit
 * of -amount, one credit of +amount).</li>
 * </ol>
 *
 * <p>Isolation is chosen per mode, on purpose. Pessimistic runs at READ COMMITTED: every statement
 * takes a fresh snapshot, so the read in step 2 sees everything committed by whoever held the lock
 * before us. (Under REPEATABLE READ or SERIALIZABLE the snapshot would be taken by the lock statement
 * itself, before its lock wait, and the head read after the wait could be stale.) Optimistic takes no
 * locks and runs at SERIALIZABLE: PostgreSQL turns a conflicting concurrent movement into 40001. In
 * both modes the chain's {@code UNIQUE(account_id, version)} is the backstop: a stale head can only
 * ever produce a duplicate version, which is refused (23505) and retried, never a wrong balance.
 *
 * <p>The whole unit, not a statement inside it, is retried on 40001, 40P01 and a taken chain
 * version ({@link LedgerRetry}). Each attempt is a new transaction; a failed one is rolled back.
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
     * Step 1. The accounts a movement names, plus, for a deposit or withdrawal, its currency's system
     * account. ORDER BY id happens below the row locking, so the rows are locked in ascending id
     * order. The optimistic mode runs the same read without the locking clause.
     */
    private static final String SELECT_ACCOUNTS = """
            SELECT id, currency, kind, allow_negative
              FROM accounts
             WHERE id = ANY(:ids) OR (:withWorld AND kind = 'system' AND currency = :currency)
             ORDER BY id""";

    private static final String LOCK_CLAUSE = "\n   FOR NO KEY UPDATE";

    /**
     * Step 2, in one round trip: read both chain heads, decide, and (only if allowed) insert the
     * transaction and its two balance rows. The final SELECT returns the verdict either way.
     */
    private static final String CHECK_AND_POST = """
            WITH sides (account_id, delta) AS (
                VALUES (CAST(:debit AS uuid), -CAST(:amount AS bigint)),
                       (CAST(:credit AS uuid), CAST(:amount AS bigint))
            ),
            head AS (
                -- The latest link of each chain: one backward probe of the (account_id, version) key,
                -- the same cost with ten entries as with ten million.
                SELECT s.account_id, s.delta,
                       coalesce(b.version, 0) AS version,
                       coalesce(b.balance, 0) AS balance,
                       b.created_at
                  FROM sides s
                  LEFT JOIN LATERAL (
                       SELECT version, balance, created_at
                         FROM balances
                        WHERE account_id = s.account_id
                        ORDER BY version DESC
                        LIMIT 1) b ON true
            ),
            verdict AS (
                SELECT (SELECT balance FROM head WHERE account_id = :debit) >= :amount OR :debitMayGoNegative
                           AS funded,
                       CAST(:dailyDepositLimit AS bigint) IS NULL
                           OR (SELECT coalesce(sum(t.amount), 0)
                                 FROM transactions t
                                WHERE t.type = 'deposit'
                                  AND t.credit_account_id = :credit
                                  AND t.created_at >= date_trunc('day', clock_timestamp() AT TIME ZONE 'UTC')
                                                      AT TIME ZONE 'UTC')
                              + :amount <= :dailyDepositLimit
                           AS within_deposit_limit,
                       (SELECT bool_and(abs(h.balance + h.delta) <= :maxBalance) FROM head h) AS within_bounds,
                       -- Time never runs backwards along a chain, even if the clock does.
                       greatest(clock_timestamp(), (SELECT max(h.created_at) FROM head h)) AS at
            ),
            tx AS (
                INSERT INTO transactions (type, debit_account_id, credit_account_id, amount, currency,
                                          description, metadata, created_at)
                SELECT :type, :debit, :credit, :amount, :currency, :description, CAST(:metadata AS jsonb), v.at
                  FROM verdict v
                 WHERE v.funded AND v.within_deposit_limit AND v.within_bounds
                RETURNING id, created_at
            ),
            entries AS (
                INSERT INTO balances (account_id, version, delta, balance, currency, transaction_id, created_at)
                SELECT h.account_id, h.version + 1, h.delta, h.balance + h.delta, :currency, tx.id, tx.created_at
                  FROM head h CROSS JOIN tx
                RETURNING account_id
            )
            SELECT v.funded, v.within_deposit_limit, v.within_bounds, tx.id, tx.created_at,
                   (SELECT count(*) FROM entries) AS entry_count
              FROM verdict v LEFT JOIN tx ON true""";

    private final DatabaseClient db;
    private final JsonMapper json;
    private final LedgerProperties properties;
    private final TransactionalOperator transactions;
    private final String selectAccounts;
    private final RetryBackoffSpec retry;

    Ledger(DatabaseClient db, JsonMapper json, ReactiveTransactionManager transactionManager,
            LedgerProperties properties) {
        this.db = db;
        this.json = json;
        this.properties = properties;
        boolean pessimistic = properties.concurrencyMode() == ConcurrencyMode.PESSIMISTIC;
        DefaultTransactionDefinition definition = new DefaultTransactionDefinition();
        definition.setIsolationLevel(pessimistic
                ? TransactionDefinition.ISOLATION_READ_COMMITTED
                : TransactionDefinition.ISOLATION_SERIALIZABLE);
        definition.setName("paystream-movement");
        this.transactions = TransactionalOperator.create(transactionManager, definition);
        this.selectAccounts = pessimistic ? SELECT_ACCOUNTS + LOCK_CLAUSE : SELECT_ACCOUNTS;
        this.retry = LedgerRetry.spec(properties.retry());
    }

    /** A movement as a client asked for it. {@code null} on one side means the outside world. */
    record Movement(MovementType type, UUID fromAccountId, UUID toAccountId, long amount, String currency,
            String description, Map<String, String> metadata) {
    }

    /** Moves the money, or refuses with an {@link ApiException}; never both, never half. */
    Mono<Transfer> move(Movement movement) {
        if (movement.fromAccountId() != null && movement.fromAccountId().equals(movement.toAccountId())) {
            return Mono.error(new ApiException(Problem.SAME_ACCOUNT, "A transfer needs two different accounts"));
        }
        // defer: every retry builds a fresh unit and so runs in a fresh transaction.
        return Mono.defer(() -> transactions.transactional(attempt(movement))
                        .timeout(properties.attemptTimeout()))
                .retryWhen(retry);
    }

    private Mono<Transfer> attempt(Movement movement) {
        return lockAccounts(movement)
                .map(accounts -> sides(movement, accounts))
                .flatMap(sides -> checkAndPost(movement, sides));
    }

    // Step 1 -----------------------------------------------------------------------------------

    private record AccountRow(UUID id, String currency, String kind, boolean allowNegative) {

        boolean isSystem() {
            return "system".equals(kind);
        }
    }

    private Mono<List<AccountRow>> lockAccounts(Movement movement) {
        List<UUID> named = new ArrayList<>(2);
        if (movement.fromAccountId() != null) {
            named.add(movement.fromAccountId());
        }
        if (movement.toAccountId() != null) {
            named.add(movement.toAccountId());
        }
        return db.sql(selectAccounts)
                .bind("ids", named.toArray(UUID[]::new))
                .bind("withWorld", movement.type() != MovementType.TRANSFER)
                .bind("currency", movement.currency())
                .map(row -> new AccountRow(row.get("id", UUID.class), row.get("currency", String.class),
                        row.get("kind", String.class), Boolean.TRUE.equals(row.get("allow_negative", Boolean.class))))
                .all()
                .collectList();
    }

    /** The two sides of the movement, once the accounts are known to exist and to fit it. */
    private record Sides(AccountRow debit, AccountRow credit) {
    }

    private static Sides sides(Movement movement, List<AccountRow> accounts) {
        AccountRow from = movement.fromAccountId() == null ? world(movement, accounts)
                : userAccount(movement.fromAccountId(), movement.currency(), accounts);
        AccountRow to = movement.toAccountId() == null ? world(movement, accounts)
                : userAccount(movement.toAccountId(), movement.currency(), accounts);
        return new Sides(from, to);
    }

    private static AccountRow userAccount(UUID id, String currency, List<AccountRow> accounts) {
        AccountRow account = accounts.stream().filter(a -> a.id().equals(id)).findFirst()
                .orElseThrow(() -> new ApiException(Problem.ACCOUNT_NOT_FOUND, "No account " + id));
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
    private static AccountRow world(Movement movement, List<AccountRow> accounts) {
        return accounts.stream().filter(a -> a.isSystem() && a.currency().equals(movement.currency())).findFirst()
                .orElseThrow(() -> new IllegalStateException("no system account for " + movement.currency()));
    }

    // Step 2 -----------------------------------------------------------------------------------

    private Mono<Transfer> checkAndPost(Movement movement, Sides sides) {
        Long depositLimit = movement.type() == MovementType.DEPOSIT ? properties.dailyDepositLimitOrNull() : null;
        Map<String, String> metadata = movement.metadata() == null ? Map.of() : movement.metadata();
        GenericExecuteSpec statement = db.sql(CHECK_AND_POST)
                .bind("type", movement.type().sql())
                .bind("debit", sides.debit().id())
                .bind("credit", sides.credit().id())
                .bind("amount", movement.amount())
                .bind("currency", movement.currency())
                .bind("debitMayGoNegative", sides.debit().allowNegative())
                .bind("maxBalance", MAX_BALANCE_MAGNITUDE)
                .bind("metadata", json.writeValueAsString(metadata));
        statement = depositLimit == null ? statement.bindNull("dailyDepositLimit", Long.class)
                : statement.bind("dailyDepositLimit", depositLimit);
        statement = movement.description() == null ? statement.bindNull("description", String.class)
                : statement.bind("description", movement.description());
        return statement
                .map(row -> new Verdict(Boolean.TRUE.equals(row.get("funded", Boolean.class)),
                        Boolean.TRUE.equals(row.get("within_deposit_limit", Boolean.class)),
                        Boolean.TRUE.equals(row.get("within_bounds", Boolean.class)),
                        row.get("id", UUID.class), row.get("created_at", Instant.class),
                        row.get("entry_count", Long.class)))
                .one()
                .map(verdict -> toTransfer(movement, sides, metadata, verdict));
    }

    private record Verdict(boolean funded, boolean withinDepositLimit, boolean withinBounds, UUID transactionId,
            Instant createdAt, Long entryCount) {
    }

    private static Transfer toTransfer(Movement movement, Sides sides, Map<String, String> metadata, Verdict verdict) {
        if (!verdict.funded()) {
            throw new ApiException(Problem.INSUFFICIENT_FUNDS,
                    "Account " + sides.debit().id() + " has insufficient funds for " + movement.amount());
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
        return new Transfer(verdict.transactionId(), movement.type().sql(), Transfer.POSTED, sides.debit().id(),
                sides.credit().id(), movement.amount(), movement.currency(), movement.description(), metadata,
                verdict.createdAt());
    }
}
