package io.paystream.deploy;

import java.time.Duration;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** The duration and size notations the checks compare: Spring Boot's, and nginx's. */
final class Sizes {

    private static final Pattern SPRING_DURATION = Pattern.compile("(\\d+)(ms|s|m|h|d)");

    private static final Pattern SPRING_SIZE = Pattern.compile("(\\d+)(B|KB|MB|GB)?");

    private static final Pattern NGINX_SIZE = Pattern.compile("(\\d+)([kmg]?)");

    private Sizes() {
    }

    static Duration springDuration(String value) {
        Matcher m = SPRING_DURATION.matcher(value.trim());
        if (!m.matches()) {
            throw new IllegalArgumentException("not a duration these checks understand (e.g. 20s, 1h): " + value);
        }
        long n = Long.parseLong(m.group(1));
        return switch (m.group(2)) {
            case "ms" -> Duration.ofMillis(n);
            case "s" -> Duration.ofSeconds(n);
            case "m" -> Duration.ofMinutes(n);
            case "h" -> Duration.ofHours(n);
            default -> Duration.ofDays(n);
        };
    }

    /** Spring's DataSize: KB, MB and GB are binary. */
    static long springBytes(String value) {
        Matcher m = SPRING_SIZE.matcher(value.trim());
        if (!m.matches()) {
            throw new IllegalArgumentException("not a data size these checks understand (e.g. 256KB): " + value);
        }
        return Long.parseLong(m.group(1)) * unit(m.group(2) == null ? "" : m.group(2).substring(0, 1));
    }

    /** nginx's client_max_body_size: k, m and g are binary. */
    static long nginxBytes(String value) {
        Matcher m = NGINX_SIZE.matcher(value.trim().toLowerCase(Locale.ROOT));
        if (!m.matches()) {
            throw new IllegalArgumentException("not an nginx size (e.g. 512k, 1m): " + value);
        }
        return Long.parseLong(m.group(1)) * unit(m.group(2).toUpperCase(Locale.ROOT));
    }

    private static long unit(String prefix) {
        return switch (prefix) {
            case "K" -> 1024L;
            case "M" -> 1024L * 1024;
            case "G" -> 1024L * 1024 * 1024;
            default -> 1L;
        };
    }
}
