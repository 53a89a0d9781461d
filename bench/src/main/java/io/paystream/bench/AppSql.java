package io.paystream.bench;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The application's own SQL for a transfer, read from its sources at run time (so the SQL-only phase
 * runs exactly what the checked-out application runs, never a stale copy):
 * {@code Ledger.CLAIM_AND_SELECT_ACCOUNTS} (with {@code IdempotencyKeys.CLAIM} and {@code Ledger.LOCK_CLAUSE}
 * put in as the application does), {@code Ledger.CHECK_AND_POST} and {@code IdempotencyKeys.RECORD}.
 *
 * <p>The application binds typed parameters ({@code :name}); pgbench sends untyped ones. Each
 * parameter is therefore wrapped in a cast to the type the application binds, which makes PostgreSQL
 * give the parameter that type: the statement planned and executed is the same. Parameters the
 * application binds as NULL for a plain transfer become typed NULL literals.
 */
final class AppSql {

    static final String LEDGER = "src/main/java/io/paystream/transfer/Ledger.java";
    static final String IDEMPOTENCY = "src/main/java/io/paystream/idempotency/IdempotencyKeys.java";
    static final String TRANSFERS = "src/main/java/io/paystream/transfer/TransferRepository.java";

    /** The SQL type each named parameter is bound with by the application for a transfer; "NULL ..." when bound as null. */
    static final Map<String, String> PARAMETER_TYPES = Map.ofEntries(
            Map.entry("ids", "uuid[]"),
            Map.entry("withWorld", "boolean"),
            Map.entry("currency", "varchar"),
            Map.entry("type", "varchar"),
            Map.entry("debit", "uuid"),
            Map.entry("credit", "uuid"),
            Map.entry("amount", "int8"),
            Map.entry("debitMayGoNegative", "boolean"),
            Map.entry("debitHeldDelta", "int8"),
            Map.entry("maxBalance", "int8"),
            Map.entry("metadata", "varchar"),
            Map.entry("dailyDepositLimit", "NULL int8"),
            Map.entry("description", "NULL varchar"),
            Map.entry("reversalOf", "NULL uuid"),
            Map.entry("holdId", "NULL uuid"),
            Map.entry("lockId", "int8"),
            Map.entry("scope", "varchar"),
            Map.entry("key", "varchar"),
            Map.entry("fingerprint", "bytea"),
            Map.entry("status", "int4"),
            Map.entry("location", "varchar"),
            Map.entry("body", "bytea"));

    private static final Pattern PARAMETER = Pattern.compile("(?<![:\\w]):([A-Za-z]\\w*)");

    /** Claim the key and (when ours) select the accounts, with {@code %s} where the lock clause goes. */
    final String claimAndSelectAccounts;
    final String lockClause;
    final String checkAndPost;
    final String claim;
    final String record;
    /** A batch's statements: {@code Ledger.SELECT_ACCOUNTS} (lock clause not yet added) and {@code TransferRepository.HEADS}. */
    final String selectAccounts;
    final String heads;

    private AppSql(String claimAndSelectAccounts, String lockClause, String checkAndPost, String claim, String record,
            String selectAccounts, String heads) {
        this.claimAndSelectAccounts = claimAndSelectAccounts;
        this.lockClause = lockClause;
        this.checkAndPost = checkAndPost;
        this.claim = claim;
        this.record = record;
        this.selectAccounts = selectAccounts;
        this.heads = heads;
    }

    static AppSql load(Path projectDir) throws IOException {
        String ledger = Files.readString(projectDir.resolve(LEDGER), StandardCharsets.UTF_8);
        String keys = Files.readString(projectDir.resolve(IDEMPOTENCY), StandardCharsets.UTF_8);
        String transfers = Files.readString(projectDir.resolve(TRANSFERS), StandardCharsets.UTF_8);
        String claim = textBlock(keys, "CLAIM", IDEMPOTENCY);
        // As Ledger's constructor fills it in: the claim as a subquery, then the lock clause (left as %s).
        String claimAndSelect = textBlock(ledger, "CLAIM_AND_SELECT_ACCOUNTS", LEDGER)
                .formatted("(" + claim + ")", "%s");
        return new AppSql(claimAndSelect, stringLiteral(ledger, "LOCK_CLAUSE", LEDGER),
                textBlock(ledger, "CHECK_AND_POST", LEDGER), claim, textBlock(keys, "RECORD", IDEMPOTENCY),
                textBlock(ledger, "SELECT_ACCOUNTS", LEDGER), textBlock(transfers, "HEADS", TRANSFERS));
    }

    /** The value of {@code NAME = """...""";}, with the compiler's indentation stripping and escapes. */
    static String textBlock(String source, String name, String file) {
        Matcher m = Pattern.compile("\\b" + name + "\\s*=\\s*\"\"\"[ \\t]*\\R(.*?)\"\"\"", Pattern.DOTALL).matcher(source);
        if (!m.find()) {
            throw new IllegalStateException("cannot find the text block " + name + " in " + file
                    + "; the harness reads the application's SQL from there");
        }
        return m.group(1).stripIndent().translateEscapes();
    }

    static String stringLiteral(String source, String name, String file) {
        Matcher m = Pattern.compile("\\b" + name + "\\s*=\\s*\"((?:[^\"\\\\]|\\\\.)*)\"\\s*;").matcher(source);
        if (!m.find()) {
            throw new IllegalStateException("cannot find the string " + name + " in " + file);
        }
        return m.group(1).translateEscapes();
    }

    /**
     * {@code :name} becomes {@code CAST(:name AS type)} (a pgbench variable), or a typed NULL.
     * {@code renames} maps a parameter to another pgbench variable where one name carries different
     * values in different statements (the application binds :currency as "" when locking a transfer's
     * accounts, and as the currency when posting it).
     */
    static String forPgbench(String sql, Map<String, String> renames) {
        Matcher m = PARAMETER.matcher(sql);
        StringBuilder out = new StringBuilder();
        while (m.find()) {
            String name = m.group(1);
            String type = PARAMETER_TYPES.get(name);
            if (type == null) {
                throw new IllegalStateException("the application's SQL has a parameter :" + name
                        + " the harness does not know; add its type to AppSql.PARAMETER_TYPES");
            }
            String replacement = type.startsWith("NULL ") ? "CAST(NULL AS " + type.substring(5) + ")"
                    : "CAST(:" + renames.getOrDefault(name, name) + " AS " + type + ")";
            m.appendReplacement(out, Matcher.quoteReplacement(replacement));
        }
        m.appendTail(out);
        return out.toString().strip();
    }
}
