package io.paystream.bench;

import java.util.List;
import java.util.UUID;
import java.util.concurrent.ThreadLocalRandom;

/** What one request of a workload is: a path and a JSON body. */
interface Workload {

    record Request(String path, String body) {
    }

    String name();

    Request next(ThreadLocalRandom random);

    /** Transfers between random pairs of all numbered accounts, 1 to 100 minor units each. */
    static Workload uniform(List<UUID> accounts) {
        String[] ids = accounts.stream().map(UUID::toString).toArray(String[]::new);
        return new Workload() {
            public String name() {
                return "uniform";
            }

            public Request next(ThreadLocalRandom random) {
                int a = random.nextInt(ids.length);
                int b = random.nextInt(ids.length - 1);
                if (b >= a) {
                    b++;
                }
                return transfer(ids[a], ids[b], 1 + random.nextInt(100));
            }
        };
    }

    /**
     * A marketplace: {@code sharePercent}% of the transfers pay one merchant account from a random
     * customer; the rest are uniform transfers between customers.
     */
    static Workload hot(List<UUID> accounts, UUID merchant, int sharePercent) {
        Workload uniform = uniform(accounts);
        String[] ids = accounts.stream().map(UUID::toString).toArray(String[]::new);
        String merchantId = merchant.toString();
        return new Workload() {
            public String name() {
                return "hot";
            }

            public Request next(ThreadLocalRandom random) {
                if (random.nextInt(100) < sharePercent) {
                    return transfer(ids[random.nextInt(ids.length)], merchantId, 1 + random.nextInt(100));
                }
                return uniform.next(random);
            }
        };
    }

    /**
     * Withdrawals of a fixed amount from one account, until (and after) it runs out of money. During the
     * warm-up (before {@code switchAtNanos}) they go to another, well-funded account, so that the
     * measured window starts with the drained account full.
     */
    static Workload drain(UUID warmupAccount, UUID account, long amount, long switchAtNanos) {
        String body = "{\"amount\":" + amount + ",\"currency\":\"EUR\"}";
        Request warmup = new Request("/v1/accounts/" + warmupAccount + "/withdrawals", body);
        Request measured = new Request("/v1/accounts/" + account + "/withdrawals", body);
        return new Workload() {
            public String name() {
                return "drain";
            }

            public Request next(ThreadLocalRandom random) {
                return System.nanoTime() < switchAtNanos ? warmup : measured;
            }
        };
    }

    static Request transfer(String from, String to, long amount) {
        return new Request("/v1/transfers", "{\"fromAccountId\":\"" + from + "\",\"toAccountId\":\"" + to
                + "\",\"amount\":" + amount + ",\"currency\":\"EUR\"}");
    }
}
