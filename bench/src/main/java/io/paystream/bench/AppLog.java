package io.paystream.bench;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/** The application's WARN and ERROR lines, grouped with ids and numbers blanked out. */
final class AppLog {

    private AppLog() {
    }

    static Map<String, Long> warningsAndErrors(Path log, int top) {
        if (!Files.exists(log)) {
            return Map.of();
        }
        try (Stream<String> lines = Files.lines(log, StandardCharsets.UTF_8)) {
            Map<String, Long> counts = lines
                    .filter(l -> l.contains(" WARN ") || l.contains(" ERROR "))
                    .map(AppLog::normalize)
                    .collect(Collectors.groupingBy(s -> s, Collectors.counting()));
            Map<String, Long> sorted = new LinkedHashMap<>();
            counts.entrySet().stream().sorted(Map.Entry.<String, Long>comparingByValue().reversed()).limit(top)
                    .forEach(e -> sorted.put(e.getKey(), e.getValue()));
            return sorted;
        } catch (IOException | java.io.UncheckedIOException e) {
            return Map.of();
        }
    }

    static long count(Path log, String level) {
        if (!Files.exists(log)) {
            return 0;
        }
        try (Stream<String> lines = Files.lines(log, StandardCharsets.UTF_8)) {
            return lines.filter(l -> l.contains(" " + level + " ")).count();
        } catch (IOException | java.io.UncheckedIOException e) {
            return 0;
        }
    }

    /** "2026-... WARN 123 --- [paystream] [thread] o.s.Logger : message" becomes "WARN o.s.Logger: message". */
    static String normalize(String line) {
        String level = line.contains(" ERROR ") ? "ERROR" : "WARN";
        String rest = line;
        int sep = line.indexOf(" : ");
        String logger = "";
        if (sep > 0) {
            String head = line.substring(0, sep).trim();
            logger = head.substring(head.lastIndexOf(' ') + 1);
            rest = line.substring(sep + 3);
        }
        rest = rest.replaceAll("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>")
                .replaceAll("\\b\\d+\\b", "N");
        return Phase.truncate(level + " " + logger + ": " + rest.strip(), 220);
    }
}
