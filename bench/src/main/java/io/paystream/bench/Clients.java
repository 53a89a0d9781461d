package io.paystream.bench;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;

/**
 * The API clients a run speaks as. Each load client has its own API key (created by the admin key,
 * as an operator would) and owns its own accounts: it debits only those and pays any account, as the
 * API allows. One client per simulated client also keeps each under the per-client rate limit, as
 * in production with many clients. The merchant of the hot workload and the drained account belong
 * to clients of their own.
 *
 * <p>An application without API keys (older than the security change) gets every request with the
 * admin key, and accounts without an owner.
 */
final class Clients {

    record Client(String name, String key, UUID id) {
    }

    final List<Client> load;
    final Client merchant;
    final Client drain;
    final boolean perClientKeys;

    private Clients(List<Client> load, Client merchant, Client drain, boolean perClientKeys) {
        this.load = List.copyOf(load);
        this.merchant = merchant;
        this.drain = drain;
        this.perClientKeys = perClientKeys;
    }

    int size() {
        return load.size();
    }

    static Clients create(App app, int count) {
        List<Client> clients = new ArrayList<>();
        try (Http http = new Http(app.port, app.apiKey, 8, Duration.ofSeconds(30), "keys")) {
            for (int i = 0; i < count + 2; i++) {
                String name = i < count ? "bench client " + i : i == count ? "bench merchant" : "bench drain";
                Http.Response r = http.post("/v1/api-keys", "{\"name\":\"" + name + "\",\"role\":\"client\"}", null,
                        app.apiKey).block();
                if (r == null || r.status() != 201) {
                    if (i == 0 && r != null && (r.status() == 404 || r.status() == 405)) {
                        Log.warn("the application has no /v1/api-keys (%s): every request uses the admin key", r.label());
                        Client admin = new Client("admin", app.apiKey, null);
                        List<Client> same = new ArrayList<>();
                        for (int j = 0; j < count; j++) {
                            same.add(admin);
                        }
                        return new Clients(same, admin, admin, false);
                    }
                    throw new IllegalStateException("creating an API key answered " + (r == null ? "nothing" : r.label()
                            + ": " + r.body()));
                }
                clients.add(new Client(name, Json.field(r.body(), "key"), UUID.fromString(Json.field(r.body(), "clientId"))));
            }
        }
        Log.info("Created %d client API keys (one per load client, one merchant, one drain)", clients.size());
        return new Clients(clients.subList(0, count), clients.get(count), clients.get(count + 1), true);
    }
}
