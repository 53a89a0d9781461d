package io.paystream.transfer;

import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import io.paystream.security.Caller;
import org.springframework.r2dbc.core.DatabaseClient;
import org.springframework.stereotype.Repository;
import reactor.core.publisher.Mono;
import tools.jackson.core.type.TypeReference;
import tools.jackson.databind.json.JsonMapper;

/** Reads posted movements back. Writes happen only through {@link Ledger#post}. */
@Repository
class TransferRepository {

    private static final TypeReference<Map<String, String>> METADATA = new TypeReference<>() {
    };

    /** A movement is visible to an admin and to the owners of its two accounts, to no one else. */
    private static final String FIND = """
            SELECT t.id, t.type, t.debit_account_id, t.credit_account_id, t.amount, t.currency, t.description,
                   t.metadata, t.reversal_of, t.hold_id, t.created_at
              FROM transactions t
             WHERE t.id = :id
               AND (:admin OR EXISTS (SELECT 1 FROM accounts a
                                       WHERE a.id IN (t.debit_account_id, t.credit_account_id) AND a.owner_id = :owner))""";

    /** Read after the accounts are locked, so it sees every reversal committed before ours. */
    private static final String REVERSED_SO_FAR = """
            SELECT coalesce(sum(amount), 0) AS reversed FROM transactions WHERE reversal_of = :id""";

    /** The current head of each account: one backward index probe per account. */
    private static final String HEADS = """
            SELECT a.id, coalesce(b.balance, 0) AS balance, coalesce(b.held, 0) AS held
              FROM unnest(CAST(:ids AS uuid[])) AS a(id)
              LEFT JOIN LATERAL (
                   SELECT balance, held FROM balances WHERE account_id = a.id ORDER BY version DESC LIMIT 1) b ON true""";

    private final DatabaseClient db;
    private final JsonMapper json;

    TransferRepository(DatabaseClient db, JsonMapper json) {
        this.db = db;
        this.json = json;
    }

    Mono<Transfer> find(UUID id, Caller caller) {
        return db.sql(FIND).bind("id", id).bind("admin", caller.isAdmin()).bind("owner", caller.clientId())
                .map(row -> new Transfer(row.get("id", UUID.class), row.get("type", String.class), Transfer.POSTED,
                        row.get("debit_account_id", UUID.class), row.get("credit_account_id", UUID.class),
                        row.get("amount", Long.class), row.get("currency", String.class),
                        row.get("description", String.class), json.readValue(row.get("metadata", String.class), METADATA),
                        row.get("reversal_of", UUID.class), row.get("hold_id", UUID.class),
                        row.get("created_at", Instant.class)))
                .one();
    }

    Mono<Long> reversedSoFar(UUID transferId) {
        return db.sql(REVERSED_SO_FAR).bind("id", transferId).map(row -> row.get("reversed", Long.class)).one();
    }

    record Head(UUID accountId, long balance, long held) {
    }

    Mono<List<Head>> heads(List<UUID> accountIds) {
        return db.sql(HEADS).bind("ids", accountIds.toArray(UUID[]::new))
                .map(row -> new Head(row.get("id", UUID.class), row.get("balance", Long.class), row.get("held", Long.class)))
                .all().collectList();
    }
}
