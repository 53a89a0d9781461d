package io.paystream.bench;

import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.ThreadLocalRandom;

/** What one request of a workload is: a path, a JSON body and the API key of the client sending it. */
interface Workload {

    record Request(String path, String body, String apiKey) {
    }

    String name();

    /** The next request of load client {@code client} (0 .. number of clients - 1). */
    Request next(ThreadLocalRandom random, int client);

    /**
     * Transfers of 1 to 100 minor units from a random account of the sending client to a random other
     * account among all numbered accounts (any client's: paying someone else is allowed).
     */
    static Workload uniform(Seeder.Accounts accounts, Clients clients) {
        String[] all = accounts.numbered().stream().map(UUID::toString).toArray(String[]::new);
        String[][] own = own(accounts, clients);
        return new Workload() {
            public String name() {
                return "uniform";
            }

            public Request next(ThreadLocalRandom random, int client) {
                String[] mine = own[client];
                String from = mine[random.nextInt(mine.length)];
                String to;
                do {
                    to = all[random.nextInt(all.length)];
                } while (to.equals(from));
                return transfer(from, to, 1 + random.nextInt(100), clients.load.get(client).key());
            }
        };
    }

    /**
     * A marketplace: {@code sharePercent}% of the transfers pay one merchant account (owned by a client
     * of its own) from a random account of the sending client; the rest are uniform.
     */
    static Workload hot(Seeder.Accounts accounts, Clients clients, UUID merchant, int sharePercent) {
        Workload uniform = uniform(accounts, clients);
        String[][] own = own(accounts, clients);
        String merchantId = merchant.toString();
        return new Workload() {
            public String name() {
                return "hot";
            }

            public Request next(ThreadLocalRandom random, int client) {
                if (random.nextInt(100) < sharePercent) {
                    String[] mine = own[client];
                    return transfer(mine[random.nextInt(mine.length)], merchantId, 1 + random.nextInt(100),
                            clients.load.get(client).key());
                }
                return uniform.next(random, client);
            }
        };
    }

    /**
     * Withdrawals of a fixed amount from one account by its owner, from all load clients at once, until
     * (and after) it runs out of money. During the warm-up (before {@code switchAtNanos}) they go to
     * another, well-funded account of the same owner, so that the measured window starts full.
     */
    static Workload drain(Clients clients, UUID warmupAccount, UUID account, long amount, long switchAtNanos) {
        String body = "{\"amount\":" + amount + ",\"currency\":\"EUR\"}";
        String key = clients.drain.key();
        Request warmup = new Request("/v1/accounts/" + warmupAccount + "/withdrawals", body, key);
        Request measured = new Request("/v1/accounts/" + account + "/withdrawals", body, key);
        return new Workload() {
            public String name() {
                return "drain";
            }

            public Request next(ThreadLocalRandom random, int client) {
                return System.nanoTime() < switchAtNanos ? warmup : measured;
            }
        };
    }

    static Request transfer(String from, String to, long amount, String apiKey) {
        return new Request("/v1/transfers", "{\"fromAccountId\":\"" + from + "\",\"toAccountId\":\"" + to
                + "\",\"amount\":" + amount + ",\"currency\":\"EUR\"}", apiKey);
    }

    /** The numbered accounts of each client. */
    static String[][] own(Seeder.Accounts accounts, Clients clients) {
        List<List<String>> lists = new ArrayList<>();
        for (int i = 0; i < clients.size(); i++) {
            lists.add(new ArrayList<>());
        }
        for (int n = 0; n < accounts.numbered().size(); n++) {
            lists.get(accounts.client()[n] % clients.size()).add(accounts.numbered().get(n).toString());
        }
        String[][] own = new String[clients.size()][];
        for (int i = 0; i < own.length; i++) {
            if (lists.get(i).isEmpty()) {
                throw new IllegalStateException("load client " + i + " owns no account: seed at least as many accounts as clients");
            }
            own[i] = lists.get(i).toArray(String[]::new);
        }
        return own;
    }
}
