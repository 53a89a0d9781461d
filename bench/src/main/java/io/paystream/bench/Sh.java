package io.paystream.bench;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Runs an external command with a hard upper bound on its duration. Output goes to a temporary file,
 * never a pipe: pg_ctl leaves a daemon behind that would otherwise hold the pipe open forever.
 */
final class Sh {

    record Result(List<String> command, int exitCode, String output) {

        boolean ok() {
            return exitCode == 0;
        }

        String describe() {
            return String.join(" ", command) + " exited with " + exitCode
                    + (output.isBlank() ? "" : ":\n" + output.strip());
        }
    }

    private Sh() {
    }

    static Result run(List<String> command, Path dir, Duration timeout, Map<String, String> env) {
        Path out = null;
        try {
            out = Files.createTempFile("paystream-bench-cmd-", ".out");
            ProcessBuilder builder = new ProcessBuilder(command).directory(dir.toFile()).redirectErrorStream(true)
                    .redirectOutput(out.toFile()).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
            // PG* variables of the calling shell would silently change what pg_ctl, initdb and pgbench do.
            builder.environment().keySet().removeIf(k -> k.startsWith("PG"));
            builder.environment().put("LC_MESSAGES", "C");
            if (env != null) {
                builder.environment().putAll(env);
            }
            Process process = builder.start();
            if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                process.descendants().forEach(ProcessHandle::destroyForcibly);
                process.destroyForcibly();
                process.waitFor(5, TimeUnit.SECONDS);
                throw new IllegalStateException("Timed out after " + timeout.toSeconds() + " s: "
                        + String.join(" ", command) + "\n" + Files.readString(out, StandardCharsets.UTF_8).strip());
            }
            return new Result(List.copyOf(command), process.exitValue(), Files.readString(out, StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new IllegalStateException("Could not run " + String.join(" ", command) + ": " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("Interrupted while running " + String.join(" ", command), e);
        } finally {
            if (out != null) {
                try {
                    Files.deleteIfExists(out);
                } catch (IOException ignored) {
                    // harmless
                }
            }
        }
    }

    static Result run(List<String> command, Path dir, Duration timeout) {
        return run(command, dir, timeout, null);
    }

    static Result check(List<String> command, Path dir, Duration timeout) {
        Result result = run(command, dir, timeout, null);
        if (!result.ok()) {
            throw new IllegalStateException(result.describe());
        }
        return result;
    }

    /** A one-line answer of a command, or "" when it fails. */
    static String firstLine(List<String> command) {
        try {
            Result r = run(command, Path.of("/tmp"), Duration.ofSeconds(20));
            if (!r.ok()) {
                return "";
            }
            String s = r.output().strip();
            int nl = s.indexOf('\n');
            return nl < 0 ? s : s.substring(0, nl);
        } catch (RuntimeException e) {
            return "";
        }
    }

    static boolean isRoot() {
        return "0".equals(firstLine(List.of("id", "-u")));
    }

    /** {@code runuser -u user -- command} when user is not null. */
    static List<String> asUser(String user, List<String> command) {
        if (user == null) {
            return command;
        }
        List<String> wrapped = new ArrayList<>(List.of("runuser", "-u", user, "--"));
        wrapped.addAll(command);
        return wrapped;
    }

    static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        }
    }
}
