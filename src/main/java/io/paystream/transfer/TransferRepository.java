package io.paystream.transfer;

import java.time.Instant;
import java.util.Map;
import java.util.UUID;

import org.springframework.r2dbc.core.DatabaseClient;
import org.springframework.stereotype.Repository;
import reactor.core.publisher.Mono;
import tools.jackson.core.type.TypeReference;
import tools.jackson.databind.json.JsonMapper;

/** Reads posted movements back. Writes happen only in {@link Ledger}. */
@Repository
class TransferRepository {

    private static final TypeReference<Map<String, String>> METADATA = new TypeReference<>() {
    };

    private static final String FIND = """
            SELECT id, type, debit_account_id, credit_account_id, amount, currency, description, metadata, created_at
              FROM transactions
             WHERE id = :id""";

    private final DatabaseClient db;
    private final JsonMapper json;

    TransferRepository(DatabaseClient db, JsonMapper json) {
        this.db = db;
        this.json = json;
    }

    Mono<Transfer> find(UUID id) {
        return db.sql(FIND).bind("id", id)
                .map(row -> new Transfer(row.get("id", UUID.class), row.get("type", String.class), Transfer.POSTED,
                        row.get("debit_account_id", UUID.class), row.get("credit_account_id", UUID.class),
                        row.get("amount", Long.class), row.get("currency", String.class),
                        row.get("description", String.class), json.readValue(row.get("metadata", String.class), METADATA),
                        row.get("created_at", Instant.class)))
                .one();
    }
}
