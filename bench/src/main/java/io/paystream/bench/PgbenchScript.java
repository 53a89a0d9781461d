package io.paystream.bench;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * {@code java -jar bench/target/paystream-bench.jar pgbench-script --accounts N --out FILE [--mode M]
 * [--project-dir DIR] [--announce] [--batch K]}: writes the transfer transaction the SQL-only phase runs
 * ({@link Pgbench#script}, generated from the application's sources in DIR) to FILE, for other
 * benchmarks that commit transfers with pgbench (bench/streams). It picks accounts 1..N from
 * {@code bench.accounts(n, id, client, owner)}, as filled by {@link Seeder} or by the caller.
 *
 * <p>With {@code --batch K} (K at least 2) the script is instead the transaction of
 * {@code POST /v1/transfer-batches} with K transfers ({@link #batchScript}), as the application runs it:
 * always with row locks, whatever the mode.
 *
 * <p>With {@code --announce}, after COMMIT the script announces the two accounts it changed exactly as a
 * replica does after a commit: {@code pg_notify} on the listener's channel (read from the application's
 * {@code BalanceListener.CHANNEL}) with the account ids, comma-separated, which is the payload
 * {@code BalanceHub.onNotification} parses. Exit status: 0 written, 2 bad options, 1 the application's
 * sources could not be read.
 */
final class PgbenchScript {

    static final String LISTENER = "src/main/java/io/paystream/stream/BalanceListener.java";

    private PgbenchScript() {
    }

    static void main(String[] args) {
        Path projectDir = Path.of(".");
        String mode = "pessimistic";
        int accounts = 0;
        Path out = null;
        boolean announce = false;
        int batch = 1;
        try {
            for (int i = 1; i < args.length; i++) {
                switch (args[i]) {
                    case "--project-dir" -> projectDir = Path.of(value(args, ++i));
                    case "--mode" -> mode = value(args, ++i);
                    case "--accounts" -> accounts = Integer.parseInt(value(args, ++i));
                    case "--out" -> out = Path.of(value(args, ++i));
                    case "--announce" -> announce = true;
                    case "--batch" -> batch = Integer.parseInt(value(args, ++i));
                    default -> throw new IllegalArgumentException("unknown option " + args[i]);
                }
            }
            if (!mode.equals("pessimistic") && !mode.equals("optimistic")) {
                throw new IllegalArgumentException("--mode is pessimistic or optimistic");
            }
            if (accounts < 2 || out == null) {
                throw new IllegalArgumentException("--accounts N (at least 2) and --out FILE are required");
            }
            if (batch < 1 || batch > MAX_BATCH) {
                throw new IllegalArgumentException("--batch is 1 to " + MAX_BATCH);
            }
        } catch (IllegalArgumentException e) {
            System.err.println("pgbench-script: " + e.getMessage());
            System.exit(2);
            return;
        }
        try {
            AppSql sql = AppSql.load(projectDir);
            String script = batch == 1 ? Pgbench.script(sql, mode, accounts) : batchScript(sql, accounts, batch);
            if (announce) {
                String source = Files.readString(projectDir.resolve(LISTENER), StandardCharsets.UTF_8);
                script = announcingAfterCommit(script, AppSql.stringLiteral(source, "CHANNEL", LISTENER),
                        batch == 1 ? List.of("debit", "credit") : sides(batch));
            }
            Files.writeString(out, script, StandardCharsets.UTF_8);
        } catch (Exception e) {
            System.err.println("pgbench-script: " + e.getMessage());
            System.exit(1);
        }
    }

    private static String value(String[] args, int i) {
        if (i >= args.length) {
            throw new IllegalArgumentException(args[i - 1] + " needs a value");
        }
        return args[i];
    }

    /**
     * The script followed, after its COMMIT and outside the transaction, by the announcement a replica
     * makes for a committed transfer (or batch): the accounts in the pgbench variables {@code accounts}.
     * A replica coalesces the accounts of its commits for up to 10 ms (BalanceChanges.FLUSH_MS) into one
     * NOTIFY; this sends one per transaction, at once.
     */
    static String announcingAfterCommit(String script, String channel, List<String> accounts) {
        if (!script.endsWith("COMMIT;\n")) {
            throw new IllegalStateException("the transfer script does not end with its COMMIT");
        }
        if (!channel.matches("[a-z_][a-z0-9_]*")) {
            throw new IllegalStateException("unexpected channel name " + channel + " in " + LISTENER);
        }
        return script + """
                -- After COMMIT, in a statement of its own, as a replica announces committed changes
                -- (BalanceChanges, on BalanceListener.CHANNEL). The payload is the changed accounts,
                -- comma-separated, as BalanceHub.onNotification reads it.
                SELECT pg_notify('%s', %s);
                """.formatted(channel, accounts.stream().map(v -> "CAST(:" + v + " AS text)")
                        .collect(Collectors.joining(" || ',' || ")));
    }

    /** Transfers per batch at most: the batch endpoint takes 100; a script this long is already unwieldy. */
    static final int MAX_BATCH = 100;

    /** The pgbench variables naming a batch's accounts: debit1, credit1, debit2, ... */
    static List<String> sides(int transfers) {
        List<String> names = new ArrayList<>(2 * transfers);
        for (int i = 1; i <= transfers; i++) {
            names.add("debit" + i);
            names.add("credit" + i);
        }
        return names;
    }

    /**
     * The transaction of {@code POST /v1/transfer-batches} with {@code transfers} transfers, each between
     * two distinct random accounts, statement for statement as {@code Ledger.runLocked} and
     * {@code Transfers.batch} run it: claim the key ({@code IdempotencyKeys.CLAIM}); lock every account of
     * the batch in one statement, in id order ({@code Ledger.SELECT_ACCOUNTS} + {@code LOCK_CLAUSE}); read
     * their heads ({@code TransferRepository.HEADS}); post each transfer ({@code Ledger.CHECK_AND_POST});
     * record the response ({@code IdempotencyKeys.RECORD}); COMMIT. A batch always takes row locks, at
     * READ COMMITTED, in both modes.
     */
    static String batchScript(AppSql sql, int accounts, int transfers) {
        StringBuilder pick = new StringBuilder();
        List<String> columns = new ArrayList<>();
        List<String> from = new ArrayList<>();
        List<String> items = new ArrayList<>();
        StringBuilder posts = new StringBuilder();
        for (int i = 1; i <= transfers; i++) {
            pick.append("""
                    \\set a%1$d random(1, %2$d)
                    \\set b%1$d random(1, %3$d)
                    \\set b%1$d CASE WHEN :b%1$d >= :a%1$d THEN :b%1$d + 1 ELSE :b%1$d END
                    \\set amount%1$d random(1, 100)
                    """.formatted(i, accounts, accounts - 1));
            columns.add("d%1$d.id AS debit%1$d, c%1$d.id AS credit%1$d".formatted(i));
            from.add("bench.accounts d%1$d, bench.accounts c%1$d".formatted(i));
            items.add("json_build_object('fromAccountId', d%1$d.id, 'toAccountId', c%1$d.id, 'amount', CAST(:amount%1$d AS int8))"
                    .formatted(i));
            posts.append("-- Ledger.CHECK_AND_POST, transfer ").append(i).append('\n')
                    .append(AppSql.forPgbench(sql.checkAndPost,
                            Map.of("debit", "debit" + i, "credit", "credit" + i, "amount", "amount" + i)))
                    .append(";\n");
        }
        String where = java.util.stream.IntStream.rangeClosed(1, transfers)
                .mapToObj(i -> "d%1$d.n = :a%1$d AND c%1$d.n = :b%1$d".formatted(i))
                .collect(Collectors.joining(" AND "));
        String ids = sides(transfers).stream().map(v -> v.replaceAll("^debit", "d").replaceAll("^credit", "c") + ".id")
                .collect(Collectors.joining(" || ',' || "));
        return """
                -- Paystream's transfer-batch transaction (%2$d transfers), generated by bench/ from the application's
                -- sources (%3$s, %4$s, %5$s). Always with row locks, as the application runs a batch.
                -- Before the transaction, outside it: pick the accounts and compute what the application
                -- computes in Java (key, advisory lock id, fingerprint, response body).
                -- (No colon may follow a letter in this file outside a variable: pgbench would take it for one.)
                %1$s\\set withWorld 0
                \\set debitMayGoNegative 0
                \\set debitHeldDelta 0
                \\set maxBalance 1000000000000000000
                \\set status 201
                SELECT %6$s, '{' || %7$s || '}' AS ids,
                       'transfer' AS type, 'EUR' AS currency, 'none' AS "worldCurrency", '{}' AS metadata,
                       coalesce(d1.owner::text, '-') AS scope, k.key, ('x' || substr(md5(k.key), 1, 16))::bit(64)::bigint AS "lockId",
                       sha256(convert_to(k.key, 'UTF8')) AS fingerprint, CAST(NULL AS text) AS location,
                       convert_to(json_build_object('transfers', json_build_array(%8$s))::text, 'UTF8') AS body
                  FROM %9$s,
                       (SELECT 'pgbench-batch-' || gen_random_uuid() AS key) k
                 WHERE %10$s \\gset
                BEGIN ISOLATION LEVEL READ COMMITTED;
                -- IdempotencyKeys.CLAIM
                %11$s;
                -- Ledger.SELECT_ACCOUNTS + LOCK_CLAUSE
                %12$s;
                -- TransferRepository.HEADS
                %13$s;
                %14$s-- IdempotencyKeys.RECORD
                %15$s;
                COMMIT;
                """.formatted(pick, transfers, AppSql.LEDGER, AppSql.IDEMPOTENCY, AppSql.TRANSFERS,
                String.join(", ", columns), ids, String.join(", ", items), String.join(", ", from), where,
                AppSql.forPgbench(sql.claim, Map.of()),
                AppSql.forPgbench(sql.selectAccounts + sql.lockClause, Map.of("currency", "worldCurrency")),
                AppSql.forPgbench(sql.heads, Map.of()), posts, AppSql.forPgbench(sql.record, Map.of()));
    }
}
