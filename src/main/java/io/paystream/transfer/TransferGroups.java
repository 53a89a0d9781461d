package io.paystream.transfer;

import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import io.paystream.idempotency.IdempotencyKey;
import io.paystream.idempotency.IdempotencyKeys;
import io.paystream.idempotency.StoredResponse;
import io.paystream.security.Caller;
import io.paystream.system.ApiException;
import io.paystream.system.Problem;
import io.paystream.system.Problems;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.r2dbc.core.DatabaseClient;
import org.springframework.stereotype.Service;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;
import tools.jackson.databind.json.JsonMapper;

/**
 * Transfers that arrive together commit together. While earlier transfers are in the database, the
 * ones arriving wait, and the next free slot takes all of them (up to {@link #maxPerTransaction}) into
 * one transaction: one statement claims every key, locks every account and reads each one's head, one
 * writes every transfer, its balance rows and every key's response. Two statements for the group
 * instead of three for each transfer. At most {@code transfer-transactions-in-flight} groups are in
 * the database at once, and up to {@link #BACKLOG_SLOTS} more while a full group is waiting. A transfer
 * that arrives when a slot is free runs at once, alone,
 * so a quiet ledger adds no wait.
 *
 * <p>Each transfer keeps its own outcome. They are decided one by one, in arrival order, on the heads
 * the group locked and read, exactly as the transfers would have been decided one after another: a
 * refusal (insufficient funds, an account that is not the caller's) refuses only its own transfer, is
 * stored with its own key and is answered as usual; the others go on. A key already answered replays
 * its response; a key in flight elsewhere, or twice in one group, gets 409.
 *
 * <p>The database still checks everything a single transfer's statements check: the chain trigger
 * checks each new version against the one before it (several in a row for a busy account), the
 * double-entry trigger checks every transaction at commit, and UNIQUE(account_id, version) refuses a
 * stale head. A group that lost a race is retried whole, like any unit ({@link Ledger#runGroup}). When
 * the database cannot be reached every member gets the answer it would get alone; a group that fails for
 * any other reason is not answered as a failure: each of its transfers runs again on its own, through
 * {@link Ledger#run}, so one transfer can never fail the others. A transfer whose client went away
 * while it waited is still decided with its group; alone it would have been rolled back. Either way it
 * is applied at most once, and a retry with its key replays it.
 */
@Service
class TransferGroups {

    private static final Logger log = LoggerFactory.getLogger(TransferGroups.class);


    /** Transfers waiting for a slot, at most; beyond that a transfer is refused with 503 at once. */
    static final int MAX_WAITING = 4096;

    /**
     * Claim every key of the group, lock every account it names and read each one's head, in one
     * statement. The claims never wait (try-locks); the row locks are taken in ascending id order, the
     * order every movement takes them in, so groups and single movements queue and never deadlock. One
     * row per claim ({@code ord} set), then one row per locked account with its head.
     *
     * <p>Each head is read by {@code ledger_head(id)} after that account's lock is held. The function is
     * VOLATILE, so at READ COMMITTED each of its calls reads with a snapshot of its own, taken then: it
     * sees every movement committed by whoever held the lock before, which the statement's own
     * snapshot, taken before it waited for the locks, may not. (A stale head could not do harm, only
     * cost a retry: the write would extend a version someone else already wrote, which the primary key
     * and the chain trigger refuse.) Every row carries the database's clock: the group's time.
     */
    private static final String CLAIM_LOCK_AND_READ = """
            WITH claims AS MATERIALIZED (
                SELECT r.ord, pg_try_advisory_xact_lock(r.lock_id) AS claimed,
                       k.fingerprint, k.status_code, k.location, k.response_body
                  FROM unnest(CAST(:lockIds AS bigint[]), CAST(:scopes AS text[]), CAST(:keys AS text[]))
                       WITH ORDINALITY AS r(lock_id, scope, key, ord)
                  LEFT JOIN idempotency_keys k ON k.scope = r.scope AND k.key = r.key
            ),
            locked AS MATERIALIZED (
                SELECT id, currency, kind, allow_negative, owner_id
                  FROM accounts
                 WHERE id = ANY(CAST(:ids AS uuid[]))
                 ORDER BY id
                   FOR NO KEY UPDATE
            )
            SELECT c.ord, c.claimed, c.fingerprint, c.status_code, c.location, c.response_body,
                   CAST(NULL AS uuid) AS id, CAST(NULL AS text) AS currency, CAST(NULL AS text) AS kind,
                   CAST(NULL AS boolean) AS allow_negative, CAST(NULL AS uuid) AS owner_id,
                   CAST(NULL AS bigint) AS version, CAST(NULL AS bigint) AS balance, CAST(NULL AS bigint) AS held,
                   CAST(NULL AS timestamptz) AS created_at, clock_timestamp() AS now
              FROM claims c
            UNION ALL
            SELECT NULL, NULL, NULL, NULL, NULL, NULL, l.id, l.currency, l.kind, l.allow_negative, l.owner_id,
                   coalesce(h.head_version, 0), coalesce(h.head_balance, 0), coalesce(h.head_held, 0),
                   h.head_created_at, clock_timestamp()
              FROM locked l
              LEFT JOIN LATERAL ledger_head(l.id) h ON true""";

    /**
     * Every transfer the group applies, its two balance rows each (in chain order, so each new version
     * follows the one before it, written by the same statement or earlier), and every key's response.
     * Answers the counts, checked against what was sent.
     */
    private static final String WRITE = """
            WITH tx AS (
                INSERT INTO transactions (id, type, debit_account_id, credit_account_id, amount, currency,
                                          description, metadata, created_at)
                SELECT t.id, 'transfer', t.debit, t.credit, t.amount, t.currency,
                       CASE WHEN t.has_description THEN t.description END, CAST(t.metadata AS jsonb), CAST(:at AS timestamptz)
                  FROM unnest(CAST(:txIds AS uuid[]), CAST(:debits AS uuid[]), CAST(:credits AS uuid[]),
                              CAST(:amounts AS bigint[]), CAST(:currencies AS text[]), CAST(:hasDescriptions AS boolean[]),
                              CAST(:descriptions AS text[]), CAST(:metadata AS text[]))
                       AS t(id, debit, credit, amount, currency, has_description, description, metadata)
                RETURNING id
            ),
            entries AS (
                INSERT INTO balances (account_id, version, delta, balance, held_delta, held, currency,
                                      transaction_id, created_at)
                SELECT e.account_id, e.version, e.delta, e.balance, 0, e.held, e.currency, e.transaction_id,
                       CAST(:at AS timestamptz)
                  FROM unnest(CAST(:entryAccounts AS uuid[]), CAST(:entryVersions AS bigint[]),
                              CAST(:entryDeltas AS bigint[]), CAST(:entryBalances AS bigint[]),
                              CAST(:entryHelds AS bigint[]), CAST(:entryCurrencies AS text[]),
                              CAST(:entryTransactions AS uuid[]))
                       AS e(account_id, version, delta, balance, held, currency, transaction_id)
                 ORDER BY e.account_id, e.version
                RETURNING account_id
            ),
            answered AS (
                INSERT INTO idempotency_keys (scope, key, fingerprint, status_code, location, response_body)
                SELECT k.scope, k.key, decode(k.fingerprint, 'hex'), k.status,
                       CASE WHEN k.status = 201 THEN '/v1/transfers/' || k.tx END, decode(k.body, 'hex')
                  FROM unnest(CAST(:answerScopes AS text[]), CAST(:answerKeys AS text[]),
                              CAST(:answerFingerprints AS text[]), CAST(:answerStatuses AS int[]),
                              CAST(:answerTransactions AS text[]), CAST(:answerBodies AS text[]))
                       AS k(scope, key, fingerprint, status, tx, body)
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM tx) AS transactions, (SELECT count(*) FROM entries) AS entries,
                   (SELECT count(*) FROM answered) AS answers""";

    /** One transfer waiting for, or in, a group. */
    private record Member(IdempotencyKey key, String path, TransferRequest request, Caller caller,
            Executor answerOn, Sinks.One<StoredResponse> result) {

        /**
         * Hands the member its outcome on its connection's event loop: the response is encoded and
         * written there, beside that connection's other work, while the group's own thread (and its
         * slot) moves on to the next group.
         */
        void answer(StoredResponse response, Throwable error) {
            Runnable emit = response != null ? () -> result.tryEmitValue(response) : () -> result.tryEmitError(error);
            try {
                answerOn.execute(emit);
            } catch (RejectedExecutionException shuttingDown) {
                emit.run(); // the loop is closing, and its connections with it: answer here
            }
        }

        String scopedKey() {
            return key.scope() + '\n' + key.key();
        }
    }

    private final DatabaseClient db;
    private final Ledger ledger;
    private final Transfers transfers;
    private final JsonMapper json;
    private final LedgerMetrics metrics;
    private final int maxPerTransaction;
    /**
     * Groups in the database at once. Each slot more makes the groups smaller, and a small group costs
     * nearly what its transfers cost alone: on two cores one slot served the most transfers and had the
     * shortest tails (bench/README.md). More slots let transfers pass a group that waits on a lock.
     * While a full group waits, up to {@link #BACKLOG_SLOTS} more run beside them.
     */
    private final int slots;
    private final Queue<Member> waiting = new ConcurrentLinkedQueue<>();
    private final AtomicInteger waitingCount = new AtomicInteger();
    private final AtomicInteger running = new AtomicInteger();
    private final AtomicInteger mostInFlight = new AtomicInteger();
    private final AtomicLong groups = new AtomicLong();
    private final AtomicLong groupedTransfers = new AtomicLong();

    TransferGroups(DatabaseClient db, Ledger ledger, Transfers transfers, JsonMapper json, LedgerMetrics metrics,
            @Value("${paystream.ledger.max-transfers-per-transaction}") int maxPerTransaction,
            @Value("${paystream.ledger.transfer-transactions-in-flight}") int slots) {
        if (maxPerTransaction < 1 || maxPerTransaction > 1000) {
            throw new IllegalArgumentException("paystream.ledger.max-transfers-per-transaction is 1 to 1000, not "
                    + maxPerTransaction);
        }
        if (slots < 1 || slots > 1000) {
            throw new IllegalArgumentException("paystream.ledger.transfer-transactions-in-flight is 1 to 1000, not " + slots);
        }
        this.slots = slots;
        this.db = db;
        this.ledger = ledger;
        this.transfers = transfers;
        this.json = json;
        this.metrics = metrics;
        this.maxPerTransaction = maxPerTransaction;
    }

    /** Whether transfers share transactions at all (a limit of 1 runs each on its own). */
    boolean enabled() {
        return maxPerTransaction > 1;
    }

    /** Groups run so far (a group of one counts), and the transfers they decided: for tests and benchmarks. */
    long groups() {
        return groups.get();
    }

    long groupedTransfers() {
        return groupedTransfers.get();
    }

    /** The most groups that were ever in the database at once: for tests. */
    int mostInFlight() {
        return mostInFlight.get();
    }

    /**
     * The transfer's response, decided in the next group with a free slot and answered on
     * {@code answerOn} (the request's event loop).
     */
    Mono<StoredResponse> submit(IdempotencyKey key, String path, TransferRequest request, Caller caller,
            Executor answerOn) {
        return Mono.defer(() -> {
            if (waitingCount.incrementAndGet() > MAX_WAITING) {
                waitingCount.decrementAndGet();
                return Mono.error(new ApiException(Problem.DATABASE_UNAVAILABLE,
                        "Too many transfers are waiting for the ledger; retry shortly"));
            }
            Member member = new Member(key, path, request, caller, answerOn, Sinks.one());
            waiting.add(member);
            drain();
            return member.result().asMono();
        });
    }

    /**
     * Groups that may run beside the configured slots while a backlog lasts: each only while a full
     * group is waiting, so it is as large (and as cheap per transfer) as a group can be. Bounded so a
     * backlog never takes more than this many of the pool's connections on top of the slots.
     */
    static final int BACKLOG_SLOTS = 2;

    /** Starts groups while slots are free and transfers wait. */
    private void drain() {
        while (!waiting.isEmpty()) {
            int now = running.get();
            if (now >= slots && (now >= slots + BACKLOG_SLOTS || waitingCount.get() < maxPerTransaction)) {
                // All slots busy, and no full group waiting for a backlog slot: the group ending next drains again.
                return;
            }
            if (!running.compareAndSet(now, now + 1)) {
                continue;
            }
            mostInFlight.accumulateAndGet(now + 1, Math::max);
            List<Member> group = take();
            if (group.isEmpty()) {
                running.decrementAndGet();
                continue;
            }
            groups.incrementAndGet();
            groupedTransfers.addAndGet(group.size());
            run(group).doFinally(signal -> {
                running.decrementAndGet();
                drain();
            }).subscribe();
        }
    }

    /**
     * The next group: waiting transfers in arrival order, up to the limit. A second transfer with the
     * same key as one already in the group is answered 409 at once, as a twin in flight always is.
     */
    private List<Member> take() {
        List<Member> group = new ArrayList<>();
        Set<String> keys = new HashSet<>();
        Member member;
        while (group.size() < maxPerTransaction && (member = waiting.poll()) != null) {
            waitingCount.decrementAndGet();
            if (!keys.add(member.scopedKey())) {
                member.result().tryEmitError(new ApiException(Problem.IDEMPOTENCY_REQUEST_IN_PROGRESS,
                        "A request with this Idempotency-Key is still in progress; retry shortly"));
                continue;
            }
            group.add(member);
        }
        return group;
    }

    private Mono<Void> run(List<Member> group) {
        return ledger.runGroup(() -> attempt(group))
                .doOnNext(outcomes -> {
                    for (int i = 0; i < group.size(); i++) {
                        group.get(i).answer(outcomes.get(i).response(), outcomes.get(i).error());
                    }
                })
                .then()
                .onErrorResume(failure -> {
                    if (group.size() == 1 || isAnswer(failure)) {
                        group.forEach(m -> m.answer(null, failure));
                        return Mono.empty();
                    }
                    // Not a race that a retry won, and not an outage: something about one transfer (a rule
                    // the checks here did not foresee, a lock wait on one account that ran out the time or
                    // the retries). Each runs again on its own, so it fails alone; a few at a time, inside
                    // this group's slot, since they share the pool with everything else.
                    log.warn("A group of {} transfers failed ({}, SQLSTATE {}); running each on its own", group.size(),
                            failure.getClass().getSimpleName(), LedgerRetry.sqlState(failure).orElse("none"));
                    return Flux.fromIterable(group)
                            .flatMap(m -> alone(m)
                                    .doOnNext(response -> m.answer(response, null))
                                    .doOnError(error -> m.answer(null, error))
                                    .onErrorResume(e -> Mono.empty()), FALLBACK_CONCURRENCY)
                            .then();
                });
    }

    /** Members of a failed group run again on their own at most this many at a time. */
    static final int FALLBACK_CONCURRENCY = 4;

    /**
     * Failures answered to every member of a group as they are: the database cannot be reached
     * (connection lost or refused, server shutting down), which every member alone would meet too. A
     * timeout (the attempt's, a statement's, a lock wait's, the pool's acquire time) or exhausted
     * retries may be one member's wait on one busy account: those run each member again on its own.
     */
    private static boolean isAnswer(Throwable failure) {
        return !(failure instanceof ApiException) && !Problems.isDatabaseTimeout(failure)
                && Problems.isDatabaseUnreachable(failure);
    }

    /** One transfer through the single-movement path. */
    private Mono<StoredResponse> alone(Member m) {
        return ledger.run(m.key(), m.path(), Transfers.locks(m.request()),
                accounts -> transfers.transfer(m.request(), m.caller(), accounts)
                        .map(t -> new Ledger.Reply(201, "/v1/transfers/" + t.id(), t)));
    }

    /** What one member gets: a response, or an error that is not stored (409 in flight, 422 key reused). */
    private record Outcome(StoredResponse response, Throwable error) {
    }

    /** A claim as the group statement returns it, by member (0-based). */
    private record Claimed(int member, IdempotencyKeys.Claim claim, Instant now) {
    }

    /** One attempt: one transaction (run by {@link Ledger#runGroup}). */
    private Mono<List<Outcome>> attempt(List<Member> group) {
        LinkedHashSet<UUID> named = new LinkedHashSet<>();
        for (Member m : group) {
            named.add(m.request().fromAccountId());
            named.add(m.request().toAccountId());
        }
        UUID[] ids = named.toArray(UUID[]::new);
        Mono<List<Object>> claimed = db.sql(CLAIM_LOCK_AND_READ)
                .bind("lockIds", group.stream().map(m -> m.key().advisoryLockId()).toArray(Long[]::new))
                .bind("scopes", group.stream().map(m -> m.key().scope()).toArray(String[]::new))
                .bind("keys", group.stream().map(m -> m.key().key()).toArray(String[]::new))
                .bind("ids", ids)
                .map(row -> {
                    Long ord = row.get("ord", Long.class);
                    if (ord != null) {
                        return (Object) new Claimed((int) (ord - 1), IdempotencyKeys.Claim.of(row),
                                row.get("now", Instant.class));
                    }
                    return new Locked(Ledger.AccountRow.of(row), new Head(row.get("id", UUID.class),
                            row.get("version", Long.class), row.get("balance", Long.class), row.get("held", Long.class),
                            row.get("created_at", Instant.class), row.get("now", Instant.class)));
                })
                .all()
                .collectList();
        return metrics.lockWait("accounts", claimed).flatMap(rows -> {
            IdempotencyKeys.Claim[] claims = new IdempotencyKeys.Claim[group.size()];
            List<Ledger.AccountRow> accounts = new ArrayList<>();
            List<Head> heads = new ArrayList<>();
            Instant now = null;
            for (Object row : rows) {
                if (row instanceof Claimed c) {
                    claims[c.member()] = c.claim();
                    now = later(now, c.now());
                } else {
                    Locked l = (Locked) row;
                    accounts.add(l.account());
                    heads.add(l.head());
                    now = later(now, l.head().now());
                }
            }
            return decideAndWrite(group, claims, accounts, heads, now);
        });
    }

    private static Instant later(Instant a, Instant b) {
        return a == null || b.isAfter(a) ? b : a;
    }

    /** A locked account as the group statement returns it, with its head. */
    private record Locked(Ledger.AccountRow account, Head head) {
    }

    private record Head(UUID accountId, long version, long balance, long held, Instant createdAt, Instant now) {
    }

    /** An account's chain as the group extends it: the head, then each version the group adds. */
    private static final class Chain {
        long version;
        long balance;
        final long held;

        Chain(Head head) {
            this.version = head.version();
            this.balance = head.balance();
            this.held = head.held();
        }
    }

    private Mono<List<Outcome>> decideAndWrite(List<Member> group, IdempotencyKeys.Claim[] claims,
            List<Ledger.AccountRow> accounts, List<Head> heads, Instant now) {
        // The group's time: the database's clock, read after the locks, but never before any head it extends.
        Instant at = now;
        Map<UUID, Chain> chains = new HashMap<>();
        for (Head head : heads) {
            chains.put(head.accountId(), new Chain(head));
            if (head.createdAt() != null && head.createdAt().isAfter(at)) {
                at = head.createdAt();
            }
        }
        Write write = new Write(at);
        List<Outcome> outcomes = new ArrayList<>(group.size());
        for (int i = 0; i < group.size(); i++) {
            Member m = group.get(i);
            IdempotencyKeys.Claim claim = claims[i];
            if (claim == null) {
                throw new IllegalStateException("no claim row for member " + i);
            }
            if (!claim.runs()) {
                // Answered before (a replay), in flight elsewhere, or reused: as a single transfer answers.
                try {
                    outcomes.add(new Outcome(claim.resolveNow(m.key()), null));
                } catch (ApiException refusal) {
                    outcomes.add(new Outcome(null, refusal));
                }
                continue;
            }
            outcomes.add(decide(m, accounts, chains, write));
        }
        if (write.answers.isEmpty()) {
            return Mono.just(outcomes);
        }
        return write.execute().thenReturn(outcomes);
    }

    /** One transfer, decided on the chains as the group has extended them so far. */
    private Outcome decide(Member m, List<Ledger.AccountRow> accounts, Map<UUID, Chain> chains, Write write) {
        TransferRequest request = m.request();
        try {
            // The checks of a transfer alone, in its order: same account, whose accounts, then funds and bounds.
            Transfers.requireDistinct(request);
            Ledger.AccountRow debit = Ledger.debitAccount(request.fromAccountId(), request.currency(), accounts, m.caller());
            Ledger.AccountRow credit = Ledger.creditAccount(request.toAccountId(), request.currency(), accounts, m.caller());
            Chain from = chains.get(debit.id());
            Chain to = chains.get(credit.id());
            long amount = request.amount();
            Transfers.check(debit, from.balance, from.held, to.balance, amount);
            UUID id = UUID.randomUUID();
            Map<String, String> metadata = request.metadata() == null ? Map.of() : request.metadata();
            from.version++;
            from.balance -= amount;
            to.version++;
            to.balance += amount;
            Transfer transfer = new Transfer(id, MovementType.TRANSFER.sql(), Transfer.POSTED, debit.id(), credit.id(),
                    amount, request.currency(), request.description(), metadata, null, null, write.at);
            write.transfer(transfer, json.writeValueAsString(metadata), from, to);
            StoredResponse response = ledger.stored(new Ledger.Reply(201, "/v1/transfers/" + id, transfer));
            write.answer(m.key(), response, id);
            return new Outcome(response, null);
        } catch (ApiException refusal) {
            if (!refusal.isStoredWithIdempotencyKey()) {
                return new Outcome(null, refusal);
            }
            StoredResponse response = ledger.stored(refusal, m.path());
            write.answer(m.key(), response, null);
            return new Outcome(response, null);
        }
    }

    /** The group's writes, gathered as its transfers are decided, then sent in one statement. */
    private final class Write {

        final Instant at;
        final List<UUID> txIds = new ArrayList<>();
        final List<UUID> debits = new ArrayList<>();
        final List<UUID> credits = new ArrayList<>();
        final List<Long> amounts = new ArrayList<>();
        final List<String> currencies = new ArrayList<>();
        final List<Boolean> hasDescriptions = new ArrayList<>();
        final List<String> descriptions = new ArrayList<>();
        final List<String> metadata = new ArrayList<>();
        final List<UUID> entryAccounts = new ArrayList<>();
        final List<Long> entryVersions = new ArrayList<>();
        final List<Long> entryDeltas = new ArrayList<>();
        final List<Long> entryBalances = new ArrayList<>();
        final List<Long> entryHelds = new ArrayList<>();
        final List<String> entryCurrencies = new ArrayList<>();
        final List<UUID> entryTransactions = new ArrayList<>();
        final List<IdempotencyKey> answers = new ArrayList<>();
        final List<Integer> answerStatuses = new ArrayList<>();
        final List<String> answerTransactions = new ArrayList<>();
        final List<String> answerBodies = new ArrayList<>();

        Write(Instant at) {
            this.at = at;
        }

        void transfer(Transfer t, String metadataJson, Chain from, Chain to) {
            txIds.add(t.id());
            debits.add(t.fromAccountId());
            credits.add(t.toAccountId());
            amounts.add(t.amount());
            currencies.add(t.currency());
            hasDescriptions.add(t.description() != null);
            descriptions.add(t.description() == null ? "" : t.description());
            metadata.add(metadataJson);
            entry(t.fromAccountId(), from, -t.amount(), t);
            entry(t.toAccountId(), to, t.amount(), t);
        }

        private void entry(UUID account, Chain chain, long delta, Transfer t) {
            entryAccounts.add(account);
            entryVersions.add(chain.version);
            entryDeltas.add(delta);
            entryBalances.add(chain.balance);
            entryHelds.add(chain.held);
            entryCurrencies.add(t.currency());
            entryTransactions.add(t.id());
        }

        void answer(IdempotencyKey key, StoredResponse response, UUID transaction) {
            answers.add(key);
            answerStatuses.add(response.status());
            answerTransactions.add(transaction == null ? "" : transaction.toString());
            answerBodies.add(HexFormat.of().formatHex(response.body()));
        }

        Mono<Void> execute() {
            HexFormat hex = HexFormat.of();
            Mono<long[]> counts = db.sql(WRITE)
                    .bind("at", at)
                    .bind("txIds", txIds.toArray(UUID[]::new))
                    .bind("debits", debits.toArray(UUID[]::new))
                    .bind("credits", credits.toArray(UUID[]::new))
                    .bind("amounts", amounts.toArray(Long[]::new))
                    .bind("currencies", currencies.toArray(String[]::new))
                    .bind("hasDescriptions", hasDescriptions.toArray(Boolean[]::new))
                    .bind("descriptions", descriptions.toArray(String[]::new))
                    .bind("metadata", metadata.toArray(String[]::new))
                    .bind("entryAccounts", entryAccounts.toArray(UUID[]::new))
                    .bind("entryVersions", entryVersions.toArray(Long[]::new))
                    .bind("entryDeltas", entryDeltas.toArray(Long[]::new))
                    .bind("entryBalances", entryBalances.toArray(Long[]::new))
                    .bind("entryHelds", entryHelds.toArray(Long[]::new))
                    .bind("entryCurrencies", entryCurrencies.toArray(String[]::new))
                    .bind("entryTransactions", entryTransactions.toArray(UUID[]::new))
                    .bind("answerScopes", answers.stream().map(IdempotencyKey::scope).toArray(String[]::new))
                    .bind("answerKeys", answers.stream().map(IdempotencyKey::key).toArray(String[]::new))
                    .bind("answerFingerprints", answers.stream().map(k -> hex.formatHex(k.fingerprint())).toArray(String[]::new))
                    .bind("answerStatuses", answerStatuses.toArray(Integer[]::new))
                    .bind("answerTransactions", answerTransactions.toArray(String[]::new))
                    .bind("answerBodies", answerBodies.toArray(String[]::new))
                    .map(row -> new long[] {row.get("transactions", Long.class), row.get("entries", Long.class),
                            row.get("answers", Long.class)})
                    .one()
                    .doOnNext(c -> {
                        // Pair assertion: the statement wrote exactly what the group decided.
                        if (c[0] != txIds.size() || c[1] != entryAccounts.size() || c[2] != answers.size()) {
                            throw new IllegalStateException("group wrote " + c[0] + " transactions, " + c[1]
                                    + " balance rows, " + c[2] + " answers; expected " + txIds.size() + ", "
                                    + entryAccounts.size() + ", " + answers.size());
                        }
                    });
            return Ledger.touching(counts, entryAccounts.toArray(UUID[]::new)).then();
        }
    }
}
