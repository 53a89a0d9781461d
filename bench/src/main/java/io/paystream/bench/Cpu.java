package io.paystream.bench;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Who used the two cores during a phase: the application, PostgreSQL (the postmaster and its
 * backends), this load generator (and pgbench, its child), and everything else on the machine, from
 * /proc. On a machine shared with other work, "other" says how much the figures were disturbed.
 */
final class Cpu {

    private static final double TICKS_PER_SECOND = 100.0; // USER_HZ on Linux

    record Sample(long nanos, long app, long postgres, long self, long machineBusy) {
    }

    private Cpu() {
    }

    static Sample sample(long appPid, long postmasterPid) {
        return new Sample(System.nanoTime(), appPid > 0 ? ticks(appPid, true) : 0,
                postmasterPid > 0 ? treeTicks(postmasterPid) : 0, ticks(ProcessHandle.current().pid(), true), machineBusy());
    }

    /** Cores used between two samples, by each party. */
    static Map<String, Double> cores(Sample a, Sample b) {
        double seconds = (b.nanos() - a.nanos()) / 1e9;
        Map<String, Double> m = new LinkedHashMap<>();
        if (seconds <= 0) {
            return m;
        }
        double app = Math.max(0, b.app() - a.app()) / TICKS_PER_SECOND / seconds;
        double pg = Math.max(0, b.postgres() - a.postgres()) / TICKS_PER_SECOND / seconds;
        double self = Math.max(0, b.self() - a.self()) / TICKS_PER_SECOND / seconds;
        double busy = Math.max(0, b.machineBusy() - a.machineBusy()) / TICKS_PER_SECOND / seconds;
        m.put("app", app);
        m.put("postgres", pg);
        m.put("loadGenerator", self);
        m.put("other", Math.max(0, busy - app - pg - self));
        m.put("machineBusy", busy);
        return m;
    }

    static String describe(Map<String, Double> cores) {
        if (cores == null || cores.isEmpty()) {
            return "";
        }
        return String.format("app %.2f, PostgreSQL %.2f, load %.2f, other %.2f", cores.get("app"), cores.get("postgres"),
                cores.get("loadGenerator"), cores.get("other"));
    }

    /** utime + stime (+ reaped children's when {@code withChildren}) of one process, in ticks. */
    static long ticks(long pid, boolean withChildren) {
        String[] f = statFields(pid);
        if (f == null) {
            return 0;
        }
        // Fields after "(comm)": index 0 = state (field 3); utime = field 14, stime 15, cutime 16, cstime 17.
        long t = Long.parseLong(f[11]) + Long.parseLong(f[12]);
        if (withChildren) {
            t += Long.parseLong(f[13]) + Long.parseLong(f[14]);
        }
        return t;
    }

    /** A process and its live children (one level: PostgreSQL's backends are the postmaster's children). */
    static long treeTicks(long pid) {
        long total = ticks(pid, true);
        try (DirectoryStream<Path> procs = Files.newDirectoryStream(Path.of("/proc"), p -> p.getFileName().toString().matches("\\d+"))) {
            for (Path p : procs) {
                long child = Long.parseLong(p.getFileName().toString());
                String[] f = statFields(child);
                if (f != null && Long.parseLong(f[1]) == pid) {
                    total += Long.parseLong(f[11]) + Long.parseLong(f[12]);
                }
            }
        } catch (IOException | RuntimeException e) {
            // best effort
        }
        return total;
    }

    static long machineBusy() {
        try {
            List<String> lines = Files.readAllLines(Path.of("/proc/stat"));
            String[] f = lines.get(0).trim().split("\\s+");
            // cpu user nice system idle iowait irq softirq steal
            return Long.parseLong(f[1]) + Long.parseLong(f[2]) + Long.parseLong(f[3]) + Long.parseLong(f[6])
                    + Long.parseLong(f[7]) + (f.length > 8 ? Long.parseLong(f[8]) : 0);
        } catch (IOException | RuntimeException e) {
            return 0;
        }
    }

    private static String[] statFields(long pid) {
        try {
            String stat = Files.readString(Path.of("/proc", Long.toString(pid), "stat"));
            return stat.substring(stat.lastIndexOf(')') + 2).split(" ");
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }
}
