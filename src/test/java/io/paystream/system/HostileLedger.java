package io.paystream.system;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import tools.jackson.databind.JsonNode;

/**
 * The suite's own account of the money it moved, from the responses alone: every POST answered 2xx
 * (and not a replay) that posted a movement is applied here, so at the end the ledger must hold exactly
 * these movements and these balances. Anything the server did without saying so (or said and did
 * not do) shows up as a difference.
 *
 * <p>It also remembers ids the API handed out (transfers, pending holds), so later hostile requests can
 * aim at real resources and not only at random UUIDs.
 */
final class HostileLedger {

    private final Map<UUID, Long> expectedBalances = new HashMap<>();
    private long movements;
    private long acknowledgedPosts;
    private final List<UUID> transfers = new ArrayList<>();
    private final List<UUID> pendingHolds = new ArrayList<>();

    synchronized void observe(HostileResponses.Exchange exchange) {
        if (!"POST".equals(exchange.request().method()) || exchange.status() < 200 || exchange.status() >= 300
                || exchange.replayed()) {
            return;
        }
        JsonNode json = exchange.json();
        if (json == null || !json.isObject()) {
            return;
        }
        acknowledgedPosts++;
        if (json.get("transfers") != null && json.get("transfers").isArray()) {
            for (JsonNode transfer : json.get("transfers")) {
                movement(transfer);
            }
        } else if (json.get("type") != null && json.get("amount") != null && json.get("fromAccountId") != null) {
            movement(json); // a transfer, deposit, withdrawal or reversal
        } else if (json.get("status") != null && json.get("capturedAmount") != null && json.get("fromAccountId") != null) {
            String status = json.get("status").asString();
            UUID hold = UUID.fromString(json.get("id").asString());
            pendingHolds.remove(hold);
            if ("pending".equals(status)) {
                pendingHolds.add(hold);
            } else if ("posted".equals(status)) {
                move(json.get("fromAccountId").asString(), json.get("toAccountId").asString(),
                        json.get("capturedAmount").asLong());
            }
        }
    }

    private void movement(JsonNode transfer) {
        move(transfer.get("fromAccountId").asString(), transfer.get("toAccountId").asString(), transfer.get("amount").asLong());
        UUID id = UUID.fromString(transfer.get("id").asString());
        if ("transfer".equals(transfer.get("type").asString())) {
            transfers.add(id);
        }
    }

    private void move(String from, String to, long amount) {
        expectedBalances.merge(UUID.fromString(from), -amount, Long::sum);
        expectedBalances.merge(UUID.fromString(to), amount, Long::sum);
        movements++;
    }

    synchronized long movements() {
        return movements;
    }

    synchronized long acknowledgedPosts() {
        return acknowledgedPosts;
    }

    synchronized Map<UUID, Long> expectedBalances() {
        return Map.copyOf(expectedBalances);
    }

    synchronized UUID transfer(int pick) {
        return transfers.isEmpty() ? null : transfers.get(Math.floorMod(pick, transfers.size()));
    }

    synchronized UUID pendingHold(int pick) {
        return pendingHolds.isEmpty() ? null : pendingHolds.get(Math.floorMod(pick, pendingHolds.size()));
    }
}
