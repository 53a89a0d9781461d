package io.paystream.stream;

import java.time.Duration;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** The per-replica stream limit: unset, it is what fits in half the heap. */
class StreamLimitTests {

    private static final long MB = 1024 * 1024;

    @Test
    void anUnsetLimitFitsTheStreamsInHalfTheHeap() {
        assertThat(BalanceStreams.fittingStreams(540 * MB)).isEqualTo(6912); // a production pod's heap
        assertThat(BalanceStreams.fittingStreams(512 * MB)).isEqualTo(6553);
        assertThat(BalanceStreams.fittingStreams(1024 * MB)).isEqualTo(13107);
        assertThat(BalanceStreams.fittingStreams(1)).isEqualTo(1);
        assertThat(BalanceStreams.fittingStreams(Long.MAX_VALUE)).isEqualTo(Integer.MAX_VALUE);

        assertThat(streams(0).maxTotal()).isEqualTo(BalanceStreams.fittingStreams(Runtime.getRuntime().maxMemory()));
    }

    @Test
    void aSetLimitIsKeptEvenBeyondTheHeapAndANegativeOneRefused() {
        assertThat(streams(3).maxTotal()).isEqualTo(3);
        assertThat(streams(Integer.MAX_VALUE).maxTotal()).isEqualTo(Integer.MAX_VALUE); // with a warning in the log
        assertThatThrownBy(() -> streams(-1)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("max-per-replica");
    }

    private static BalanceStreams streams(int maxPerReplica) {
        return new BalanceStreams(null, null, tools.jackson.databind.json.JsonMapper.builder().build(), Duration.ofSeconds(15),
                Duration.ofSeconds(2), Duration.ofHours(1), 100, maxPerReplica);
    }
}
