package io.paystream.transfer;

import java.util.List;
import java.util.Map;
import java.util.UUID;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.paystream.audit.Burst;
import io.paystream.audit.HttpResult;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.test.context.TestPropertySource;

import static org.assertj.core.api.Assertions.assertThat;

@TestPropertySource(properties = "paystream.ledger.concurrency-mode=optimistic")
class OptimisticMoneyMovementIntegrationTests extends MoneyMovementConcurrencyIntegrationTests {

    @Autowired
    MeterRegistry registry;

    /**
     * On a hot account, optimistic movements stop wasting transactions: one that lost a race takes
     * row locks on its next attempt, and the movements that follow on that account take them from
     * their first. Every withdrawal is still applied exactly once.
     */
    @Test
    void movementsOnAHotAccountTakeTheLocksAfterLosingARace() {
        double lostRace = escalations("lost_race");
        double remembered = escalations("remembered");
        UUID account = account("SEK");
        deposit(account, 10_000);

        List<HttpResult> first = withdrawals(account, 100);
        List<HttpResult> second = withdrawals(account, 100);

        assertThat(first).allSatisfy(r -> assertThat(r.status()).as(r.toString()).isEqualTo(201));
        assertThat(second).allSatisfy(r -> assertThat(r.status()).as(r.toString()).isEqualTo(201));
        assertThat(audit.balanceOf(account)).isEqualTo(10_000 - 200);
        audit.assertPresentExactlyOnce(ids(first));
        audit.assertPresentExactlyOnce(ids(second));
        assertThat(escalations("lost_race")).isGreaterThan(lostRace);
        assertThat(escalations("remembered")).isGreaterThan(remembered);
    }

    private List<HttpResult> withdrawals(UUID account, int count) {
        return burst.post(count, count,
                i -> new Burst.Call("/v1/accounts/" + account + "/withdrawals", Map.of("amount", 1, "currency", "SEK")),
                java.time.Duration.ofSeconds(120));
    }

    private double escalations(String reason) {
        Counter counter = registry.find("paystream.ledger.lock.escalations").tag("reason", reason).counter();
        return counter == null ? 0 : counter.count();
    }
}
