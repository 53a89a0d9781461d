package io.paystream.transfer;

import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

class ContentionTests {

    private final AtomicLong nanos = new AtomicLong();
    private final Contention contention = new Contention(nanos::get);
    private final UUID a = UUID.randomUUID();
    private final UUID b = UUID.randomUUID();
    private final UUID c = UUID.randomUUID();

    @Test
    void aLostRaceMarksEveryAccountTheMovementNamed() {
        contention.lostRace(List.of(a, Contention.world("EUR")));

        assertThat(contention.anyContended(List.of(a))).isTrue();
        assertThat(contention.anyContended(List.of(c, Contention.world("EUR")))).isTrue();
        assertThat(contention.anyContended(List.of(b, c))).isFalse();
        assertThat(contention.anyContended(List.of(Contention.world("USD")))).isFalse();
    }

    @Test
    void theMarkFadesASecondAfterTheLastLostRace() {
        contention.lostRace(List.of(a));
        advance(Contention.MEMORY.toMillis() - 1);
        assertThat(contention.anyContended(List.of(a))).isTrue();

        advance(2);
        assertThat(contention.anyContended(List.of(a))).isFalse();
    }

    @Test
    void aBusyAccountStaysMarkedWithoutSpreadingTheMarkToItsCounterparts() {
        contention.lostRace(List.of(a));
        for (int i = 0; i < 5; i++) {
            advance(Contention.MEMORY.toMillis() / 2);
            contention.stillBusy(List.of(a, b)); // a locked movement from a to b
        }

        assertThat(contention.anyContended(List.of(a))).isTrue();
        assertThat(contention.anyContended(List.of(b))).isFalse();

        advance(Contention.MEMORY.toMillis() + 1);
        assertThat(contention.anyContended(List.of(a))).isFalse();
    }

    private void advance(long millis) {
        nanos.addAndGet(TimeUnit.MILLISECONDS.toNanos(millis));
    }
}
