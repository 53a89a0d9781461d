package io.paystream.account;

import java.time.Instant;
import java.util.Map;
import java.util.UUID;

import io.paystream.security.Caller;
import io.r2dbc.spi.Readable;
import org.springframework.r2dbc.core.DatabaseClient;
import org.springframework.stereotype.Repository;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import tools.jackson.core.type.TypeReference;
import tools.jackson.databind.json.JsonMapper;

/** Accounts and their balance reads, in explicit SQL. */
@Repository
class AccountRepository {

    private static final TypeReference<Map<String, String>> METADATA = new TypeReference<>() {
    };

    /**
     * Creates the account, and the currency's system account (the outside world) if this is the
     * currency's first account, in one statement. Concurrent first accounts of one currency are safe:
     * the partial unique index makes all but one system insert do nothing.
     */
    private static final String INSERT = """
            WITH world AS (
                INSERT INTO accounts (currency, name, kind, allow_negative)
                VALUES (:currency, 'Outside world (' || :currency || ')', 'system', true)
                ON CONFLICT (currency) WHERE kind = 'system' DO NOTHING
            )
            INSERT INTO accounts (currency, name, kind, metadata, owner_id)
            VALUES (:currency, :name, 'user', CAST(:metadata AS jsonb), :owner)
            RETURNING id, currency, name, kind, metadata, created_at
            """;

    /** Accounts with their current balance. A client sees only its own; an admin, all. */
    private static final String SELECT = """
            SELECT a.id, a.currency, a.name, a.kind, a.metadata, a.created_at,
                   b.balance, b.held, b.version, b.created_at AS updated_at
              FROM accounts a
              LEFT JOIN LATERAL (
                   SELECT balance, held, version, created_at FROM balances
                    WHERE account_id = a.id ORDER BY version DESC LIMIT 1) b ON true
            """;

    private static final String FIND = SELECT + " WHERE a.id = :id AND (:admin OR a.owner_id = :owner)";

    /** Keyset pagination in id order: each page is one index range scan, however deep. */
    private static final String LIST = SELECT + """
             WHERE (:admin OR a.owner_id = :owner) AND a.id > :after
             ORDER BY a.id
             LIMIT :limit""";

    /** created_at never decreases along a chain (the ledger enforces it), so time order is version order. */
    private static final String BALANCE_AS_OF = """
            SELECT a.id, a.currency, b.balance, b.held, b.version, b.created_at AS updated_at
              FROM accounts a
              LEFT JOIN LATERAL (
                   SELECT balance, held, version, created_at FROM balances
                    WHERE account_id = a.id AND created_at <= :asOf
                    ORDER BY created_at DESC, version DESC LIMIT 1) b ON true
             WHERE a.id = :id AND (:admin OR a.owner_id = :owner)
            """;

    private static final String ENTRIES = """
            SELECT version, transaction_id, hold_id, delta, balance, held_delta, held, created_at
              FROM balances
             WHERE account_id = :id AND version < :beforeVersion
             ORDER BY version DESC
             LIMIT :limit
            """;

    private final DatabaseClient db;
    private final JsonMapper json;

    AccountRepository(DatabaseClient db, JsonMapper json) {
        this.db = db;
        this.json = json;
    }

    Mono<Account> create(CreateAccountRequest request, Caller owner) {
        Map<String, String> metadata = request.metadata() == null ? Map.of() : request.metadata();
        return db.sql(INSERT)
                .bind("currency", request.currency())
                .bind("name", request.name())
                .bind("metadata", json.writeValueAsString(metadata))
                .bind("owner", owner.clientId())
                .map(row -> new Account(row.get("id", UUID.class), row.get("currency", String.class),
                        row.get("name", String.class), row.get("kind", String.class), metadata(row),
                        row.get("created_at", Instant.class), 0, 0, 0, 0, null))
                .one();
    }

    Mono<Account> find(UUID id, Caller caller) {
        return db.sql(FIND).bind("id", id).bind("admin", caller.isAdmin()).bind("owner", caller.clientId())
                .map(this::account)
                .one();
    }

    Flux<Account> list(Caller caller, UUID after, int limit) {
        return db.sql(LIST).bind("admin", caller.isAdmin()).bind("owner", caller.clientId())
                .bind("after", after).bind("limit", limit)
                .map(this::account)
                .all();
    }

    private Account account(Readable row) {
        return new Account(row.get("id", UUID.class), row.get("currency", String.class),
                row.get("name", String.class), row.get("kind", String.class), metadata(row),
                row.get("created_at", Instant.class), longOrZero(row, "balance"), longOrZero(row, "held"),
                longOrZero(row, "balance") - longOrZero(row, "held"), longOrZero(row, "version"),
                row.get("updated_at", Instant.class));
    }

    Mono<Balance> balanceAsOf(UUID id, Instant asOf, Caller caller) {
        return db.sql(BALANCE_AS_OF).bind("id", id).bind("asOf", asOf)
                .bind("admin", caller.isAdmin()).bind("owner", caller.clientId())
                .map(row -> new Balance(row.get("id", UUID.class), row.get("currency", String.class),
                        longOrZero(row, "balance"), longOrZero(row, "held"),
                        longOrZero(row, "balance") - longOrZero(row, "held"), longOrZero(row, "version"),
                        row.get("updated_at", Instant.class)))
                .one();
    }

    Flux<Entry> entries(UUID id, long beforeVersion, int limit) {
        return db.sql(ENTRIES).bind("id", id).bind("beforeVersion", beforeVersion).bind("limit", limit)
                .map(row -> new Entry(row.get("version", Long.class), row.get("transaction_id", UUID.class),
                        row.get("hold_id", UUID.class), row.get("delta", Long.class), row.get("balance", Long.class),
                        row.get("held_delta", Long.class), row.get("held", Long.class), row.get("created_at", Instant.class)))
                .all();
    }

    private Map<String, String> metadata(Readable row) {
        String text = row.get("metadata", String.class);
        return text == null ? Map.of() : json.readValue(text, METADATA);
    }

    private static long longOrZero(Readable row, String column) {
        Long value = row.get(column, Long.class);
        return value == null ? 0 : value;
    }
}
