package io.paystream.bench;

import java.time.LocalTime;
import java.time.format.DateTimeFormatter;

/** Progress lines on standard output, with the wall-clock time. */
final class Log {

    private static final DateTimeFormatter TIME = DateTimeFormatter.ofPattern("HH:mm:ss");

    private Log() {
    }

    static synchronized void info(String format, Object... args) {
        System.out.println("[bench " + LocalTime.now().format(TIME) + "] " + String.format(format, args));
        System.out.flush();
    }

    static synchronized void warn(String format, Object... args) {
        System.out.println("[bench " + LocalTime.now().format(TIME) + "] WARNING: " + String.format(format, args));
        System.out.flush();
    }
}
