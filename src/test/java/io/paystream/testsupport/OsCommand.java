package io.paystream.testsupport;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Runs an external command with a hard upper bound on how long it may take.
 *
 * <p>Output goes to a temporary file rather than a pipe: pg_ctl leaves a daemon behind, and a daemon that
 * inherited a pipe would keep it open and make a pipe reader wait forever.
 */
final class OsCommand {

    /** Exit code and the combined stdout/stderr of one finished command. */
    record Result(List<String> command, int exitCode, String output) {

        boolean succeeded() {
            return exitCode == 0;
        }

        String describe() {
            return String.join(" ", command) + " exited with " + exitCode + (output.isBlank() ? "" : ":\n" + output.strip());
        }
    }

    private OsCommand() {
    }

    /**
     * Runs {@code command} in {@code workingDir}, waiting at most {@code timeoutMs}; on timeout the process and
     * everything it spawned are killed and an exception is thrown.
     */
    static Result run(List<String> command, Path workingDir, long timeoutMs) {
        Path outputFile = null;
        try {
            outputFile = Files.createTempFile("paystream-cmd-", ".out");
            ProcessBuilder builder = new ProcessBuilder(command)
                    .directory(workingDir.toFile())
                    .redirectErrorStream(true)
                    .redirectOutput(outputFile.toFile())
                    .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
            scrubPostgresEnvironment(builder.environment());
            Process process = builder.start();
            if (!process.waitFor(timeoutMs, TimeUnit.MILLISECONDS)) {
                process.descendants().forEach(ProcessHandle::destroyForcibly);
                process.destroyForcibly();
                process.waitFor(5, TimeUnit.SECONDS);
                throw new IllegalStateException("Timed out after " + timeoutMs + " ms: " + String.join(" ", command)
                        + "\n" + Files.readString(outputFile, StandardCharsets.UTF_8).strip());
            }
            return new Result(List.copyOf(command), process.exitValue(), Files.readString(outputFile, StandardCharsets.UTF_8));
        }
        catch (IOException ex) {
            throw new IllegalStateException("Could not run " + String.join(" ", command) + ": " + ex.getMessage(), ex);
        }
        catch (InterruptedException ex) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("Interrupted while running " + String.join(" ", command), ex);
        }
        finally {
            if (outputFile != null) {
                try {
                    Files.deleteIfExists(outputFile);
                }
                catch (IOException ignored) {
                    // A leftover temp file is harmless.
                }
            }
        }
    }

    /** Like {@link #run} but throws with the command's output when it does not exit with 0. */
    static Result runChecked(List<String> command, Path workingDir, long timeoutMs) {
        Result result = run(command, workingDir, timeoutMs);
        if (!result.succeeded()) {
            throw new IllegalStateException(result.describe());
        }
        return result;
    }

    /**
     * Whether this JVM runs as root. PostgreSQL refuses to run as root, so the launcher then switches to an
     * unprivileged account.
     */
    static boolean runningAsRoot() {
        if (!System.getProperty("os.name", "").toLowerCase().contains("win")) {
            try {
                Result id = run(List.of("id", "-u"), Path.of(System.getProperty("java.io.tmpdir")), 10_000);
                if (id.succeeded()) {
                    return id.output().strip().equals("0");
                }
            }
            catch (RuntimeException ignored) {
                // Fall back to the user name below.
            }
        }
        return "root".equals(System.getProperty("user.name"));
    }

    /** Prefixes {@code command} with {@code runuser -u osUser --} when {@code osUser} is not null. */
    static List<String> asUser(String osUser, List<String> command) {
        if (osUser == null) {
            return command;
        }
        List<String> wrapped = new ArrayList<>(List.of("runuser", "-u", osUser, "--"));
        wrapped.addAll(command);
        return wrapped;
    }

    /**
     * PG* variables of the calling shell (PGDATA, PGPORT, PGHOST, ...) would silently change what pg_ctl and
     * initdb do; English messages make the server log readable in failure reports.
     */
    private static void scrubPostgresEnvironment(Map<String, String> environment) {
        environment.keySet().removeIf(name -> name.startsWith("PG"));
        environment.remove("LC_ALL");
        environment.put("LC_MESSAGES", "C");
    }
}
