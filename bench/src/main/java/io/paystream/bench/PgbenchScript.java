package io.paystream.bench;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * {@code java -jar bench/target/paystream-bench.jar pgbench-script --accounts N --out FILE [--mode M]
 * [--project-dir DIR] [--announce]}: writes the transfer transaction the SQL-only phase runs
 * ({@link Pgbench#script}, generated from the application's sources in DIR) to FILE, for other
 * benchmarks that commit transfers with pgbench (bench/streams). It picks accounts 1..N from
 * {@code bench.accounts(n, id, client, owner)}, as filled by {@link Seeder} or by the caller.
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
        try {
            for (int i = 1; i < args.length; i++) {
                switch (args[i]) {
                    case "--project-dir" -> projectDir = Path.of(value(args, ++i));
                    case "--mode" -> mode = value(args, ++i);
                    case "--accounts" -> accounts = Integer.parseInt(value(args, ++i));
                    case "--out" -> out = Path.of(value(args, ++i));
                    case "--announce" -> announce = true;
                    default -> throw new IllegalArgumentException("unknown option " + args[i]);
                }
            }
            if (!mode.equals("pessimistic") && !mode.equals("optimistic")) {
                throw new IllegalArgumentException("--mode is pessimistic or optimistic");
            }
            if (accounts < 2 || out == null) {
                throw new IllegalArgumentException("--accounts N (at least 2) and --out FILE are required");
            }
        } catch (IllegalArgumentException e) {
            System.err.println("pgbench-script: " + e.getMessage());
            System.exit(2);
            return;
        }
        try {
            String script = Pgbench.script(AppSql.load(projectDir), mode, accounts);
            if (announce) {
                String source = Files.readString(projectDir.resolve(LISTENER), StandardCharsets.UTF_8);
                script = announcingAfterCommit(script, AppSql.stringLiteral(source, "CHANNEL", LISTENER));
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
     * makes for a committed transfer. A replica coalesces the accounts of its commits for up to 10 ms
     * (BalanceChanges.FLUSH_MS) into one NOTIFY; this sends one per transaction, at once.
     */
    static String announcingAfterCommit(String script, String channel) {
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
                SELECT pg_notify('%s', CAST(:debit AS text) || ',' || CAST(:credit AS text));
                """.formatted(channel);
    }
}
